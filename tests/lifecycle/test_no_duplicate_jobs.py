"""A retry, a cleared task or a restarted triggerer never creates a second paid job."""

from __future__ import annotations

import asyncio
import importlib
from datetime import datetime, timezone

import pytest

from airflow_provider_gemini.batch.events import BatchEvent, EventStatus
from airflow_provider_gemini.hooks.gemini import GeminiHook
from airflow_provider_gemini.triggers.batch import GeminiBatchTrigger
from tests.airflow_helpers import run_dag, task_states, xcom_values
from tests.lifecycle.dag_sources import RECORDS, create_and_wait

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")

RECORD_INPUT = {"records": RECORDS, "prompt_template": "Describe {name}.", "key_field": "id"}
DAY = datetime(2026, 11, 20, tzinfo=timezone.utc)

# A worker that dies right after the job was created, before anything recorded it.
CRASHING_CREATE = """
class CrashAfterSubmit(GeminiBatchCreateOperator):
    def _remember(self, context, batch_name):
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost just after the job was submitted")
        super()._remember(context, batch_name)
"""


def test_cleared_and_rerun_create_task_reattaches(gemini_emulator):
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


def test_succeeded_job_is_reused_not_paid_again(gemini_emulator):
    source = create_and_wait("nd_done", create_kwargs=RECORD_INPUT, sensor_kwargs={"poke_interval": 0.1})
    run_dag("nd_done", source, logical_date=DAY)
    again = run_dag("nd_done", logical_date=DAY)
    assert task_states(again) == {"create": "success", "wait": "success"}
    assert xcom_values("nd_done", again.run_id)[("create", "return_value")]["reattached"] is True
    assert gemini_emulator.stats()["jobs_created"] == 1


def test_other_runs_and_changed_input_get_their_own_job(gemini_emulator):
    source = create_and_wait("nd_distinct", create_kwargs=RECORD_INPUT)
    run_dag("nd_distinct", source, logical_date=DAY)
    run_dag("nd_distinct", logical_date=datetime(2026, 11, 21, tzinfo=timezone.utc))
    changed = {**RECORD_INPUT, "prompt_template": "Name {name} in one word."}
    run_dag("nd_distinct", create_and_wait("nd_distinct", create_kwargs=changed), logical_date=DAY)
    assert gemini_emulator.stats()["jobs_created"] == 3


def test_force_rerun_submits_anew_on_purpose(gemini_emulator):
    run_dag("nd_force", create_and_wait("nd_force", create_kwargs=RECORD_INPUT), logical_date=DAY)
    forced = {**RECORD_INPUT, "force_rerun": True}
    run_dag("nd_force", create_and_wait("nd_force", create_kwargs=forced), logical_date=DAY)
    assert gemini_emulator.stats()["jobs_created"] == 2


def test_retry_after_crash_before_recording_finds_the_job(gemini_emulator):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    source = create_and_wait(
        "nd_crash",
        create_kwargs=RECORD_INPUT,
        create_class="CrashAfterSubmit",
        extra_source=CRASHING_CREATE,
        retries=1,
    )
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
