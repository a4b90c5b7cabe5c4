"""Create -> wait through real Airflow (``dag.test()``) against the emulator over HTTP."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.lifecycle.dag_sources import RECORDS, create_and_wait

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")

RECORD_INPUT = {"records": RECORDS, "prompt_template": "Describe {name} in one line.", "key_field": "id"}


def test_create_then_deferred_sensor_succeeds(gemini_emulator, trigger_spy, capfd):
    # Three polls see the job running: the sensor finds it running and defers, however slowly it starts.
    gemini_emulator.freeze(step_per_get=10)
    gemini_emulator.configure(pending_seconds=10, running_seconds=30)
    source = create_and_wait(
        "lc_happy", create_kwargs=RECORD_INPUT, sensor_kwargs={"deferrable": True, "poke_interval": 0.2}
    )
    dag_run = run_dag("lc_happy", source)

    assert task_states(dag_run) == {"create": "success", "wait": "success"}
    assert trigger_spy == {"trigger_runs": 1, "sensor_resumed": 1}
    xcoms = xcom_values("lc_happy", dag_run.run_id)
    created = xcoms[("create", "return_value")]
    assert created["request_count"] == 5
    assert created["reattached"] is False
    assert created["batch_name"].startswith("batches/")
    waited = xcoms[("wait", "return_value")]
    assert waited["state"] == "SUCCEEDED"
    assert waited["stats"]["succeeded"] == 5
    # The connection points at the emulator: the link opens the emulator's page of the job.
    link = xcoms[("create", "_link_GeminiBatchJobLink")]
    assert link == f"{gemini_emulator.url}/_emulator/{created['batch_name']}"
    job_page = httpx.get(link, timeout=30)
    assert job_page.status_code == 200
    assert "<td>SUCCEEDED</td>" in job_page.text
    assert "SUCCEEDED: 5/5 done, 0 failed, 100%" in capfd.readouterr().out + capfd.readouterr().err
    assert gemini_emulator.stats()["jobs_created"] == 1


def test_poke_mode_sensor_succeeds_without_the_triggerer(gemini_emulator, trigger_spy):
    gemini_emulator.freeze(step_per_get=10)  # the job ends after a set number of polls, at any speed
    gemini_emulator.configure(running_seconds=30)
    source = create_and_wait(
        "lc_poke", create_kwargs=RECORD_INPUT, sensor_kwargs={"deferrable": False, "poke_interval": 0.2}
    )
    dag_run = run_dag("lc_poke", source)
    assert task_states(dag_run) == {"create": "success", "wait": "success"}
    assert trigger_spy["trigger_runs"] == 0


def test_create_can_wait_itself_deferred(gemini_emulator, trigger_spy):
    gemini_emulator.freeze(step_per_get=10)  # the job ends after a set number of polls, at any speed
    gemini_emulator.configure(running_seconds=30)
    kwargs = {**RECORD_INPUT, "wait_for_completion": True, "deferrable": True, "poll_interval": 0.2}
    dag_run = run_dag("lc_create_waits", create_and_wait("lc_create_waits", create_kwargs=kwargs))
    assert task_states(dag_run) == {"create": "success"}
    assert trigger_spy["trigger_runs"] == 1
    result = xcom_values("lc_create_waits", dag_run.run_id)[("create", "return_value")]
    assert result["state"] == "SUCCEEDED"
    assert result["job"]["stats"]["request_count"] == 5


def test_large_input_goes_through_an_uploaded_file(gemini_emulator, tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text(
        "".join(
            f'{{"key": "k{i}", "request": {{"contents": [{{"parts": [{{"text": "item {i}"}}]}}]}}}}\n'
            for i in range(50)
        )
    )
    kwargs = {"input_path": str(path), "input_mode": "file"}
    dag_run = run_dag(
        "lc_file", create_and_wait("lc_file", create_kwargs=kwargs, sensor_kwargs={"poke_interval": 0.2})
    )
    assert task_states(dag_run) == {"create": "success", "wait": "success"}
    created = xcom_values("lc_file", dag_run.run_id)[("create", "return_value")]
    assert created["input_file"].startswith("files/")
    assert created["request_count"] == 50
    assert gemini_emulator.stats()["calls"]["uploads"] == 1


def test_operator_rejects_two_inputs_at_parse_time():
    with pytest.raises(ValueError, match="exactly one input"):
        GeminiBatchCreateOperator(task_id="t", model="m", requests=[{}], input_path="x.jsonl")
    with pytest.raises(ValueError, match="Give one input"):
        GeminiBatchCreateOperator(task_id="t", model="m")
