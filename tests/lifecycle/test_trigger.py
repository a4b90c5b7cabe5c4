"""GeminiBatchTrigger on its own: transient trouble, timeouts, errors, kills, and what it serializes."""

from __future__ import annotations

import time

import pytest

from airflow_provider_gemini.batch.events import EventStatus
from airflow_provider_gemini.hooks.gemini import GeminiHook
from airflow_provider_gemini.triggers.batch import GeminiBatchTrigger
from tests.airflow_helpers import as_killed_by_user

pytestmark = pytest.mark.usefixtures("gemini_connection")
INLINE = [{"request": {"contents": [{"parts": [{"text": "hi"}]}]}, "metadata": {"key": "a"}}]


def new_job(name="t"):
    return GeminiHook().create_batch(model="gemini-2.5-flash", display_name=name, inline_requests=INLINE)


async def test_outlives_errors_beyond_the_sdk_retries(gemini_emulator):
    gemini_emulator.freeze(step_per_get=10)  # the job ends after a set number of polls, at any speed
    gemini_emulator.configure(running_seconds=20)
    job = new_job()
    gemini_emulator.add_fault(operations=["gets"], status=503, count=12)  # more than 5 attempts twice over
    event = await GeminiBatchTrigger(batch_name=job.name, poll_interval=0.05).wait()
    assert event.status is EventStatus.SUCCESS, event.message
    assert gemini_emulator.stats()["calls"]["gets"] > 12


async def test_gives_up_on_an_error_that_will_not_pass(gemini_emulator):
    event = await GeminiBatchTrigger(batch_name="batches/does-not-exist", poll_interval=0.05).wait()
    assert event.status is EventStatus.ERROR
    assert "404" in event.message
    assert "batches/does-not-exist" in event.message


async def test_deadline_gives_a_timeout_event(gemini_emulator):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    job = new_job()
    event = await GeminiBatchTrigger(
        batch_name=job.name, poll_interval=0.05, deadline=time.time() + 0.3
    ).wait()
    assert event.status is EventStatus.TIMEOUT
    assert "the timeout passed" in event.message


@pytest.mark.parametrize(
    ("cancel_on_kill", "state", "kept"),
    [
        (True, "failed", False),  # marked failed: cancelled
        (True, None, True),  # cleared: the next run re-attaches to it
        (True, "success", True),  # marked successful: kept
        (False, "failed", True),  # the task did not ask for it
    ],
    ids=["marked_failed", "cleared", "marked_success", "not_asked"],
)
async def test_on_kill_cancels_only_a_task_marked_failed_that_asked_for_it(
    gemini_emulator, monkeypatch, cancel_on_kill, state, kept
):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    job = new_job()
    trigger = GeminiBatchTrigger(batch_name=job.name, cancel_on_kill=cancel_on_kill)
    await as_killed_by_user(trigger, monkeypatch, state).on_kill()
    assert GeminiHook().get_batch(job.name).state.value == ("RUNNING" if kept else "CANCELLED")


async def test_on_kill_keeps_the_job_when_the_tasks_state_cannot_be_read(gemini_emulator):
    gemini_emulator.freeze()
    gemini_emulator.configure(running_seconds=60)
    job = new_job()
    await GeminiBatchTrigger(batch_name=job.name, cancel_on_kill=True).on_kill()  # no task instance
    assert GeminiHook().get_batch(job.name).state.value == "RUNNING"


def test_serialized_form_holds_no_secret(gemini_emulator):
    classpath, kwargs = GeminiBatchTrigger(batch_name="batches/x", poll_interval=5).serialize()
    assert classpath == "airflow_provider_gemini.triggers.batch.GeminiBatchTrigger"
    assert kwargs == {
        "batch_name": "batches/x",
        "gemini_conn_id": "gemini_default",
        "poll_interval": 5,
        "deadline": None,
        "max_failed_request_ratio": None,
        "cancel_on_kill": False,
    }
    assert gemini_emulator.api_key not in repr(kwargs)


def test_airflow_calls_the_triggers_on_kill_from_3_3_on():
    # Before 3.3 a killed deferred task's trigger is only cancelled, so the job is left running.
    from airflow_provider_gemini._compat import AIRFLOW_VERSION, HAS_TRIGGER_ON_KILL

    assert HAS_TRIGGER_ON_KILL is (AIRFLOW_VERSION.release >= (3, 3))
