"""Timeouts on a deferred create whose job never ends, on a real Airflow: ``execution_timeout`` (which
Airflow 3.3 does not enforce on a deferred task: the trigger keeps it) and ``wait_timeout`` each end the
wait, cancel the job (``cancel_on_kill`` is on by default) and fail the task saying so."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_gemini.testing.emulator import EmulatorClient
from tests.e2e.stack import API_KEY, AirflowStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
DAG_ID = "chaos_timeouts"
SUBMITTED = "gemini_batch_submitted"


def test_a_deferred_wait_that_times_out_cancels_its_job_and_says_so(
    chaos: AirflowStack, emulator: EmulatorClient
) -> None:
    chaos.wait_for_dag(DAG_ID)
    cancels = emulator.stats()["calls"]["cancels"]
    run_id = chaos.trigger(DAG_ID, "2026-10-04T00:00:00Z")  # both tasks time out after 20 s
    assert chaos.wait_for_run(DAG_ID, run_id) == "failed"
    assert chaos.task_states(DAG_ID, run_id) == {"execution_timeout": "failed", "wait_timeout": "failed"}
    for task_id in ("execution_timeout", "wait_timeout"):
        batch_name = chaos.xcom(DAG_ID, run_id, task_id, key=SUBMITTED)["batch_name"]
        response = httpx.get(
            f"{chaos.emulator_url}/v1beta/{batch_name}", headers={"x-goog-api-key": API_KEY}, timeout=30
        )
        assert response.json()["metadata"]["state"] == "BATCH_STATE_CANCELLED", task_id
        log = chaos.task_log(DAG_ID, run_id, task_id)
        assert f"Stopped waiting for Gemini batch {batch_name}: the timeout passed" in log, task_id
        assert "The job was cancelled (cancel_on_kill)." in log, task_id
    assert emulator.stats()["calls"]["cancels"] - cancels == 2
