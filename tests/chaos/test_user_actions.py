"""What a user's clear, mark-success and mark-failed do to a deferred create that waits for its own
job, on a real Airflow (api-server, scheduler, dag-processor, triggerer as separate processes) driven
through its REST API. Airflow 3.3 calls the trigger's ``on_kill`` for all three alike.

The emulator's jobs run until the test ends them (a frozen clock), so no step races a clock: every wait
polls the REST API or the emulator until a condition holds.
"""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_gemini._compat import HAS_TRIGGER_ON_KILL
from airflow_provider_gemini.testing.emulator import EmulatorClient
from tests.e2e.stack import API_KEY, AirflowStack, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not HAS_TRIGGER_ON_KILL, reason="Airflow calls a trigger's on_kill from 3.3"),
]
DAG_ID = "gemini_user_actions"
SUBMITTED = "gemini_batch_submitted"


@pytest.fixture
def airflow(chaos: AirflowStack, emulator: EmulatorClient) -> AirflowStack:
    chaos.wait_for_dag(DAG_ID)
    return chaos


def deferred_run(airflow: AirflowStack, day: str) -> tuple[str, str]:
    """A run whose create task has submitted its job and deferred, and whose trigger has polled the
    job once (a trigger the triggerer has not started yet is removed without an ``on_kill``); its run
    id and the job's name."""
    run_id = airflow.trigger(DAG_ID, f"{day}T00:00:00Z")
    airflow.wait_for_task(DAG_ID, run_id, "create", {"deferred"}, timeout=300)
    batch_name = airflow.xcom(DAG_ID, run_id, "create", key=SUBMITTED)["batch_name"]
    wait_until(lambda: said(airflow, run_id, f"{batch_name} RUNNING: "), 120, "the trigger's first poll")
    return run_id, batch_name


def job_state(airflow: AirflowStack, batch_name: str) -> str:
    response = httpx.get(
        f"{airflow.emulator_url}/v1beta/{batch_name}", headers={"x-goog-api-key": API_KEY}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["metadata"]["state"]).removeprefix("BATCH_STATE_")


def said(airflow: AirflowStack, run_id: str, text: str) -> bool:
    """Whether the create task's first try (its trigger included) logged ``text``."""
    return text in airflow.task_log(DAG_ID, run_id, "create", try_number=1) or text in airflow.log_tail(
        "triggerer", 5000
    )


def set_state(airflow: AirflowStack, run_id: str, state: str) -> None:
    assert airflow.api is not None
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/create"
    airflow.api.patch(path, json={"new_state": state}).raise_for_status()


def test_a_cleared_deferred_create_reattaches_to_its_job_and_cancels_nothing(airflow: AirflowStack) -> None:
    emulator = EmulatorClient(airflow.emulator_url)
    before = emulator.stats()
    run_id, batch_name = deferred_run(airflow, "2026-11-01")
    assert airflow.api is not None
    airflow.api.post(
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={"dry_run": False, "task_ids": ["create"], "dag_run_id": run_id, "only_failed": False},
    ).raise_for_status()
    wait_until(
        lambda: (
            "keeps running (only marking the task failed cancels it)"
            in airflow.task_log(DAG_ID, run_id, "create", try_number=1)
        ),
        120,
        "the killed trigger to say it keeps the job",
    )
    airflow.wait_for_task(DAG_ID, run_id, "create", {"deferred"}, timeout=300)  # the re-run, deferred again
    assert job_state(airflow, batch_name) == "RUNNING"
    emulator.advance(3600)  # the job ends
    assert airflow.wait_for_run(DAG_ID, run_id) == "success"
    result = airflow.xcom(DAG_ID, run_id, "create")
    assert (result["batch_name"], result["reattached"], result["state"]) == (batch_name, True, "SUCCEEDED")
    after = emulator.stats()
    assert after["jobs_created"] - before["jobs_created"] == 1
    assert after["calls"]["cancels"] == before["calls"]["cancels"]


def test_marking_a_deferred_create_successful_leaves_its_job_alone(airflow: AirflowStack) -> None:
    emulator = EmulatorClient(airflow.emulator_url)
    cancels = emulator.stats()["calls"]["cancels"]
    run_id, batch_name = deferred_run(airflow, "2026-11-02")
    set_state(airflow, run_id, "success")
    wait_until(
        lambda: said(
            airflow, run_id, f"marked successful by a user: Gemini batch {batch_name} keeps running"
        ),
        120,
        "the killed trigger to say it keeps the job",
    )
    assert job_state(airflow, batch_name) == "RUNNING"
    assert emulator.stats()["calls"]["cancels"] == cancels


def test_marking_a_deferred_create_failed_cancels_its_job(airflow: AirflowStack) -> None:
    run_id, batch_name = deferred_run(airflow, "2026-11-03")
    set_state(airflow, run_id, "failed")
    wait_until(lambda: job_state(airflow, batch_name) == "CANCELLED", 120, f"{batch_name} to be cancelled")
    assert said(airflow, run_id, f"The task was marked failed: cancelling Gemini batch {batch_name}")
