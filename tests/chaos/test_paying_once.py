"""Paying once when a task process dies, and a new job when the bill changes, on a real Airflow.

The account holds 5 000 finished jobs from the last 30 days (list pages of 100): a first try lists none
of them, and the retry of a try killed with its create in flight lists only back to that try's intent.
"""

from __future__ import annotations

import re

import httpx
import pytest

from airflow_provider_gemini._compat import HAS_TASK_STATE_STORE
from airflow_provider_gemini.testing.emulator import EmulatorClient
from tests.chaos.conftest import kill_running_task, wait_for_try
from tests.e2e.stack import API_KEY, AirflowStack, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="the intent is kept in the task state store (3.3)"),
]
ACCOUNT_JOBS = 5000
KILLED = "chaos_killed_create"
MODEL_FROM_VARIABLE = "chaos_model_from_variable"


@pytest.fixture(scope="module")
def account(chaos: AirflowStack) -> int:
    """The account's past: finished jobs created over the last 30 days."""
    return EmulatorClient(chaos.emulator_url).add_history(ACCOUNT_JOBS, days=30)


def job(stack: AirflowStack, batch_name: str) -> dict[str, str]:
    response = httpx.get(
        f"{stack.emulator_url}/v1beta/{batch_name}", headers={"x-goog-api-key": API_KEY}, timeout=30
    )
    response.raise_for_status()
    meta = response.json()["metadata"]
    return {"state": meta["state"].removeprefix("BATCH_STATE_"), "model": meta["model"]}


def calls(before: dict, after: dict) -> dict[str, int]:
    return {name: after["calls"][name] - before["calls"][name] for name in ("lists", "creates", "cancels")}


def test_a_first_try_lists_nothing_in_a_full_account(
    chaos: AirflowStack, emulator: EmulatorClient, account: int
) -> None:
    assert account >= ACCOUNT_JOBS
    chaos.wait_for_dag(MODEL_FROM_VARIABLE)
    set_variable(chaos, "chaos_model", "gemini-2.5-flash")
    before = emulator.stats()
    run_id = chaos.trigger(MODEL_FROM_VARIABLE, "2026-10-01T00:00:00Z")
    assert chaos.wait_for_run(MODEL_FROM_VARIABLE, run_id) == "success"
    assert calls(before, emulator.stats()) == {"lists": 0, "creates": 1, "cancels": 0}


def test_a_create_killed_in_flight_runs_one_job_to_completion_and_cancels_the_duplicate_while_pending(
    chaos: AirflowStack, emulator: EmulatorClient, account: int
) -> None:
    chaos.wait_for_dag(KILLED)
    emulator.configure(pending_seconds=3600, running_seconds=60)  # both jobs pending when the duplicate shows
    before = emulator.stats()
    # The server holds the first try's create, received whole, until the retry has listed twice (before
    # and after its wait) and submitted its own: it lands at the retry's third list, a late duplicate.
    emulator.add_fault(operations=["creates"], hold_until_lists=3, count=1)
    run_id = chaos.trigger(KILLED, "2026-10-02T00:00:00Z")
    wait_until(lambda: emulator.stats()["held_requests"] == 1, 300, "the server to hold the create")
    assert kill_running_task(chaos, KILLED, run_id, "create") == 1
    wait_for_try(chaos, KILLED, run_id, "create", 2)
    chaos.wait_for_task(KILLED, run_id, "create", {"deferred", "failed"}, timeout=300)

    log = chaos.task_log(KILLED, run_id, "create", try_number=2)
    assert "died before it was answered; waiting 10 s" in log
    found = re.search(r"keeping (batches/\S+) \(the earliest\) and cancelling (batches/\S+)", log)
    assert found, log
    kept, cancelled = found.groups()
    assert job(chaos, cancelled)["state"] == "CANCELLED"
    assert job(chaos, kept)["state"] == "PENDING"
    # Each of the retry's three lists read one page: back to the intent, not the 50 pages of the account.
    assert calls(before, emulator.stats()) == {"lists": 3, "creates": 2, "cancels": 1}

    emulator.advance(3600 + 60)  # the kept job runs to completion
    assert chaos.wait_for_run(KILLED, run_id) == "success"
    assert chaos.xcom(KILLED, run_id, "create")["batch_name"] == kept
    assert job(chaos, kept)["state"] == "SUCCEEDED"
    assert job(chaos, cancelled)["state"] == "CANCELLED"
    assert emulator.stats()["jobs_created"] - before["jobs_created"] == 2


def test_a_changed_model_gets_a_new_job_and_the_log_says_why(
    chaos: AirflowStack, emulator: EmulatorClient
) -> None:
    chaos.wait_for_dag(MODEL_FROM_VARIABLE)
    set_variable(chaos, "chaos_model", "gemini-2.5-flash")
    run_id = chaos.trigger(MODEL_FROM_VARIABLE, "2026-10-03T00:00:00Z")
    assert chaos.wait_for_run(MODEL_FROM_VARIABLE, run_id) == "success"
    flash = chaos.xcom(MODEL_FROM_VARIABLE, run_id, "create")["batch_name"]
    before = emulator.stats()

    set_variable(chaos, "chaos_model", "gemini-2.5-pro")
    clear(chaos, MODEL_FROM_VARIABLE, run_id, "create")
    wait_for_try(chaos, MODEL_FROM_VARIABLE, run_id, "create", 2)
    assert chaos.wait_for_run(MODEL_FROM_VARIABLE, run_id) == "success"
    result = chaos.xcom(MODEL_FROM_VARIABLE, run_id, "create")
    assert result["batch_name"] != flash
    assert (result["model"], result["reattached"]) == ("models/gemini-2.5-pro", False)
    assert job(chaos, result["batch_name"])["model"] == "models/gemini-2.5-pro"
    assert job(chaos, flash)["state"] == "RUNNING"  # the old job is left alone
    log = chaos.task_log(MODEL_FROM_VARIABLE, run_id, "create", try_number=2)
    said_why = f"Not re-using {flash} from an earlier try: this task instance submitted it for another model"
    assert said_why in log
    assert calls(before, emulator.stats()) == {"lists": 0, "creates": 1, "cancels": 0}


def set_variable(stack: AirflowStack, key: str, value: str) -> None:
    assert stack.api is not None
    if stack.api.get(f"/variables/{key}").status_code == 404:
        stack.api.post("/variables", json={"key": key, "value": value}).raise_for_status()
    else:
        stack.api.patch(f"/variables/{key}", json={"key": key, "value": value}).raise_for_status()


def clear(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> None:
    assert stack.api is not None
    stack.api.post(
        f"/dags/{dag_id}/clearTaskInstances",
        json={"dry_run": False, "task_ids": [task_id], "dag_run_id": run_id, "only_failed": False},
    ).raise_for_status()
