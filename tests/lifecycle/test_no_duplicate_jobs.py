"""A retry, a cleared task or a restarted triggerer never creates a second paid job."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from datetime import datetime, timezone

import pytest

from airflow_provider_gemini._compat import HAS_TASK_STATE_STORE
from airflow_provider_gemini.batch.events import BatchEvent, EventStatus
from airflow_provider_gemini.hooks.gemini import GeminiHook
from airflow_provider_gemini.triggers.batch import GeminiBatchTrigger
from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.lifecycle.dag_sources import (
    RECORDS,
    create_and_wait,
    dying_with_create_in_flight,
    failing_after_submit,
)

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")

RECORD_INPUT = {"records": RECORDS, "prompt_template": "Describe {name}.", "key_field": "id"}
DAY = datetime(2026, 11, 20, tzinfo=timezone.utc)


def retrying(dag_id: str, create_class: str, class_source: str, create_kwargs: dict) -> str:
    """A DAG of one create task of ``create_class`` (defined in ``class_source``) with one retry."""
    return create_and_wait(
        dag_id, create_kwargs=create_kwargs, create_class=create_class, extra_source=class_source, retries=1
    )


def creates_take_at_most_a_fifth_of_a_second(monkeypatch) -> None:
    """A connection whose create calls give up after 0.2 s without a retry: the wait for a create in
    flight is then 0.2 s."""
    conn = json.loads(os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"])
    conn["extra"].update(timeout=0.2, retry_attempts=1)
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))


# A worker that dies right after the job was created, before anything recorded it.
CRASHING_CREATE = """
class CrashAfterSubmit(GeminiBatchCreateOperator):
    def _remember(self, context, batch_name, *identity):
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost just after the job was submitted")
        super()._remember(context, batch_name, *identity)
"""


# A try that fails after its job was submitted and recorded (a lost worker, a failing callback).
FAILING_AFTER_SUBMIT = failing_after_submit()

# A try that records its intent and dies before its create is sent.
DYING_BEFORE_CREATE = """
class DieBeforeCreate(GeminiBatchCreateOperator):
    def execute(self, context):
        self.first_try = context["ti"].try_number == 1
        return super().execute(context)

    def _submit(self, prepared, display_name):
        if self.first_try:
            raise RuntimeError("worker lost before the create was sent")
        return super()._submit(prepared, display_name)
"""


@pytest.mark.parametrize("ended", [False, True], ids=["running", "succeeded"])
def test_a_retry_reattaches_to_the_job_its_first_try_paid_for(gemini_emulator, ended):
    gemini_emulator.freeze()  # running (or already succeeded) when the retry looks
    gemini_emulator.configure(running_seconds=0 if ended else 60)
    source = retrying("nd_retry", "FailAfterSubmit", FAILING_AFTER_SUBMIT, RECORD_INPUT)
    dag_run = run_dag("nd_retry", source)
    assert task_states(dag_run) == {"create": "success"}
    result = xcom_values("nd_retry", dag_run.run_id)[("create", "return_value")]
    assert result["reattached"] is True
    assert result["state"] == ("SUCCEEDED" if ended else "RUNNING")
    stats = gemini_emulator.stats()
    assert stats["jobs_created"] == 1
    if HAS_TASK_STATE_STORE:  # the first try listed nothing, the retry read its record back
        assert stats["calls"]["lists"] == 0


@pytest.mark.skipif(
    HAS_TASK_STATE_STORE,
    reason="dag.test() re-creates the run, which with a task state store is a new run (and a first try "
    "lists nothing); a real clear keeps the record and re-attaches: tests/e2e/test_user_actions.py",
)
def test_without_a_state_store_a_rerun_finds_its_job_by_display_name(gemini_emulator):
    gemini_emulator.freeze()  # still running when the task runs again, however long that takes
    gemini_emulator.configure(running_seconds=60)
    source = create_and_wait("nd_clear", create_kwargs=RECORD_INPUT)
    first = run_dag("nd_clear", source, logical_date=DAY)
    second = run_dag("nd_clear", logical_date=DAY)  # dag.test clears the same run and runs it again

    assert first.run_id == second.run_id
    assert task_states(second) == {"create": "success"}
    result = xcom_values("nd_clear", second.run_id)[("create", "return_value")]
    assert result["reattached"] is True
    assert gemini_emulator.stats()["jobs_created"] == 1


@pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="the intent is kept in the task state store (3.3)")
def test_a_retry_after_a_create_never_sent_waits_then_pays_once(gemini_emulator, monkeypatch, capfd):
    creates_take_at_most_a_fifth_of_a_second(monkeypatch)
    source = retrying("nd_intent", "DieBeforeCreate", DYING_BEFORE_CREATE, RECORD_INPUT)
    dag_run = run_dag("nd_intent", source)
    assert task_states(dag_run) == {"create": "success"}
    stats = gemini_emulator.stats()
    assert stats["jobs_created"] == 1
    assert stats["calls"]["lists"] == 3  # before and after the wait, and after its own create
    assert "died before it was answered; waiting 0 s" in capfd.readouterr().out


# A try that dies while its create is on its way: the server has it whole, holds it, and acts on it
# later, whatever the client did (a proxy held it).
DYING_WITH_CREATE_IN_FLIGHT = dying_with_create_in_flight()


@pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="the intent is kept in the task state store (3.3)")
def test_a_create_in_flight_when_its_try_died_is_found_after_the_wait_not_paid_twice(
    gemini_emulator, monkeypatch, capfd
):
    creates_take_at_most_a_fifth_of_a_second(monkeypatch)
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    # The dead try's create lands between the retry's list before its wait and the one after it.
    gemini_emulator.add_fault(operations=["creates"], hold_until_lists=2, count=1)
    source = retrying("nd_in_flight", "DieWithCreateInFlight", DYING_WITH_CREATE_IN_FLIGHT, RECORD_INPUT)
    dag_run = run_dag("nd_in_flight", source)
    assert task_states(dag_run) == {"create": "success"}
    result = xcom_values("nd_in_flight", dag_run.run_id)[("create", "return_value")]
    assert result["reattached"] is True
    stats = gemini_emulator.stats()
    assert (stats["jobs_created"], stats["calls"]["creates"], stats["calls"]["lists"]) == (1, 1, 2)
    assert "died before it was answered; waiting 0 s" in capfd.readouterr().out


@pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="the intent is kept in the task state store (3.3)")
def test_a_create_in_flight_that_lands_after_the_retry_paid_is_cancelled_while_pending(
    gemini_emulator, monkeypatch, capfd
):
    creates_take_at_most_a_fifth_of_a_second(monkeypatch)
    gemini_emulator.configure(pending_seconds=3600)  # both jobs pending when the duplicate is seen
    # The dead try's create lands only after the retry submitted its own: at the list that follows.
    gemini_emulator.add_fault(operations=["creates"], hold_until_lists=3, count=1)
    source = retrying("nd_late", "DieWithCreateInFlight", DYING_WITH_CREATE_IN_FLIGHT, RECORD_INPUT)
    dag_run = run_dag("nd_late", source)
    assert task_states(dag_run) == {"create": "success"}
    result = xcom_values("nd_late", dag_run.run_id)[("create", "return_value")]
    jobs = {job.name: job for job in GeminiHook().list_batches()}
    assert len(jobs) == 2
    [kept] = [name for name, job in jobs.items() if job.state.value == "PENDING"]
    [cancelled] = [name for name, job in jobs.items() if job.state.value == "CANCELLED"]
    assert result["batch_name"] == kept
    assert kept == min(jobs.values(), key=lambda j: (j.create_time or "", j.name)).name
    assert f"keeping {kept} (the earliest) and cancelling {cancelled}" in capfd.readouterr().out


@pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="the intent is kept in the task state store (3.3)")
def test_a_create_the_api_refused_leaves_no_intent_so_the_retry_does_not_wait(gemini_emulator, capfd):
    gemini_emulator.add_fault(operations=["creates"], status=400, count=1)
    source = create_and_wait("nd_refused", create_kwargs=RECORD_INPUT, retries=1)
    dag_run = run_dag("nd_refused", source)
    assert task_states(dag_run) == {"create": "success"}
    stats = gemini_emulator.stats()
    assert (stats["jobs_created"], stats["calls"]["creates"], stats["calls"]["lists"]) == (1, 2, 1)
    assert "died before it was answered" not in capfd.readouterr().out


def test_other_runs_and_changed_input_get_their_own_job(gemini_emulator):
    source = create_and_wait("nd_distinct", create_kwargs=RECORD_INPUT)
    run_dag("nd_distinct", source, logical_date=DAY)
    run_dag("nd_distinct", logical_date=datetime(2026, 11, 21, tzinfo=timezone.utc))
    changed = {**RECORD_INPUT, "prompt_template": "Name {name} in one word."}
    run_dag("nd_distinct", create_and_wait("nd_distinct", create_kwargs=changed), logical_date=DAY)
    assert gemini_emulator.stats()["jobs_created"] == 3


@pytest.mark.parametrize(
    ("changed", "said"),
    [
        ({"model": "gemini-2.5-pro"}, "model 'models/gemini-2.5-flash' -> 'models/gemini-2.5-pro'"),
        ({"gemini_conn_id": "gemini_other"}, "input, connection or API (its fingerprint differs)"),
    ],
    ids=["model", "connection"],
)
def test_a_changed_model_or_account_gets_its_own_job_and_the_log_says_why(
    gemini_emulator, monkeypatch, capfd, changed, said
):
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_OTHER", os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"])
    gemini_emulator.freeze()  # the first job is still running when the task runs again
    gemini_emulator.configure(running_seconds=60)
    run_dag("nd_bill", create_and_wait("nd_bill", create_kwargs=RECORD_INPUT), logical_date=DAY)
    again = create_and_wait("nd_bill", create_kwargs={**RECORD_INPUT, **changed})
    dag_run = run_dag("nd_bill", again, logical_date=DAY)  # the create task cleared, with the change

    result = xcom_values("nd_bill", dag_run.run_id)[("create", "return_value")]
    assert result["reattached"] is False
    assert result["model"] == f"models/{changed.get('model', 'gemini-2.5-flash')}"
    assert gemini_emulator.stats()["jobs_created"] == 2
    if not HAS_TASK_STATE_STORE:  # else the re-created run is a first try, which lists nothing
        said_why = f"this task instance submitted it for another {said}; submitting a new job"
        assert said_why in capfd.readouterr().out


# A try that fails after its job was recorded; the next one asks for another model.
SWITCHING_CREATE = """
class SwitchModelOnRetry(GeminiBatchCreateOperator):
    def execute(self, context):
        if context["ti"].try_number > 1:
            self.model = "gemini-2.5-pro"
        result = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("lost after the job was recorded")
        return result
"""


@pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="the task state store arrived in Airflow 3.3")
def test_a_retry_for_another_model_says_what_the_recorded_job_was_for(gemini_emulator, capfd):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    source = retrying("nd_switch", "SwitchModelOnRetry", SWITCHING_CREATE, RECORD_INPUT)
    dag_run = run_dag("nd_switch", source)
    assert task_states(dag_run) == {"create": "success"}
    assert gemini_emulator.stats()["jobs_created"] == 2
    assert (
        "this task instance submitted it for another model 'models/gemini-2.5-flash' -> "
        "'models/gemini-2.5-pro'; submitting a new job" in capfd.readouterr().out
    )


def test_an_ended_job_is_not_reused_and_the_log_says_why(gemini_emulator, capfd):
    gemini_emulator.configure(running_seconds=0, job_outcome="FAILED", job_error="quota exceeded")
    source = retrying("nd_failed", "FailAfterSubmit", FAILING_AFTER_SUBMIT, RECORD_INPUT)
    dag_run = run_dag("nd_failed", source)  # the first try's job fails; the retry looks for it
    assert task_states(dag_run) == {"create": "success"}
    assert xcom_values("nd_failed", dag_run.run_id)[("create", "return_value")]["reattached"] is False
    assert gemini_emulator.stats()["jobs_created"] == 2
    said_why = "(FAILED): only PARTIALLY_SUCCEEDED, PENDING, RUNNING, SUCCEEDED jobs are re-attached"
    assert said_why in capfd.readouterr().out


def test_force_rerun_submits_anew_on_purpose(gemini_emulator):
    run_dag("nd_force", create_and_wait("nd_force", create_kwargs=RECORD_INPUT), logical_date=DAY)
    forced = {**RECORD_INPUT, "force_rerun": True}
    run_dag("nd_force", create_and_wait("nd_force", create_kwargs=forced), logical_date=DAY)
    assert gemini_emulator.stats()["jobs_created"] == 2


def test_retry_after_crash_before_recording_finds_the_job(gemini_emulator):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    source = retrying("nd_crash", "CrashAfterSubmit", CRASHING_CREATE, RECORD_INPUT)
    dag_run = run_dag("nd_crash", source)
    assert task_states(dag_run) == {"create": "success"}
    [create_ti] = dag_run.get_task_instances()
    assert create_ti.try_number == 2
    assert xcom_values("nd_crash", dag_run.run_id)[("create", "return_value")]["reattached"] is True
    assert gemini_emulator.stats()["jobs_created"] == 1


async def test_trigger_rebuilt_from_serialize_mid_wait_keeps_the_one_job(gemini_emulator, gemini_connection):
    gemini_emulator.freeze()  # running until the rebuilt trigger starts, however long the first polls
    gemini_emulator.configure(running_seconds=30)
    job = GeminiHook().create_batch(
        model="gemini-2.5-flash",
        display_name="restart",
        inline_requests=[{"request": {"contents": [{"parts": [{"text": "hi"}]}]}, "metadata": {"key": "a"}}],
    )
    first = GeminiBatchTrigger(batch_name=job.name, poll_interval=0.1, cancel_on_kill=True)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(first.run().__anext__(), timeout=0.5)  # the triggerer goes away

    gemini_emulator.advance(30)
    classpath, kwargs = first.serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    event = await rebuilt.run().__anext__()

    result = BatchEvent.from_payload(event.payload)
    assert result.status is EventStatus.SUCCESS, result.message
    stats = gemini_emulator.stats()
    assert stats["jobs_created"] == 1
    assert stats["calls"]["cancels"] == 0  # a restart is not a kill
