"""How waits end, the same on every path: best-effort cancels, no retry for ended jobs, soft_fail."""

from __future__ import annotations

import pytest

from airflow_provider_gemini._compat import AirflowFailException, AirflowSkipException
from airflow_provider_gemini.batch.errors import GeminiApiError
from airflow_provider_gemini.batch.events import BatchEvent, BatchEventError, EventStatus
from airflow_provider_gemini.hooks.gemini import GeminiHook
from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator
from airflow_provider_gemini.triggers.batch import GeminiBatchTrigger
from tests.airflow_helpers import as_killed_by_user

pytestmark = pytest.mark.usefixtures("gemini_connection")
INLINE = [
    {"request": {"contents": [{"parts": [{"text": f"hi {key}"}]}]}, "metadata": {"key": key}}
    for key in ("a", "b")
]


def ended_job(emulator, outcome="SUCCEEDED", **settings):
    """A job that has already ended: the emulator's clock is stepped past its schedule."""
    emulator.configure(pending_seconds=0, running_seconds=1, job_outcome=outcome, **settings)
    job = GeminiHook().create_batch(model="gemini-2.5-flash", display_name="ended", inline_requests=INLINE)
    emulator.advance(5)
    ended = GeminiHook().get_batch(job.name)
    assert ended.state.value == outcome
    return ended


def _logged(capfd):
    captured = capfd.readouterr()
    return captured.out + captured.err


def _refused_cancel_warned(capfd, name):
    line = next(
        line for line in _logged(capfd).splitlines() if f"Could not cancel Gemini batch {name}" in line
    )
    return "warning" in line and "FAILED_PRECONDITION" in line


@pytest.mark.parametrize("who", ["sensor", "operator"])
def test_a_cancel_the_api_refuses_in_on_kill_is_logged_not_raised(gemini_emulator, capfd, who):
    job = ended_job(gemini_emulator)
    if who == "sensor":
        task = GeminiBatchSensor(task_id="w", batch_name=job.name, cancel_on_kill=True)
    else:
        task = GeminiBatchCreateOperator(task_id="c", model="gemini-2.5-flash", requests=[{}])
        task._batch_name = job.name  # what execute() records once the job exists
    task.on_kill()  # the emulator answers 400 FAILED_PRECONDITION, as the API does
    assert gemini_emulator.stats()["calls"]["cancels"] == 1
    assert _refused_cancel_warned(capfd, job.name)
    assert GeminiHook().get_batch(job.name).state.value == "SUCCEEDED"


async def test_a_cancel_the_api_refuses_in_the_triggers_on_kill_is_logged_not_raised(
    gemini_emulator, capfd, monkeypatch
):
    job = ended_job(gemini_emulator)
    trigger = GeminiBatchTrigger(batch_name=job.name, cancel_on_kill=True)
    await as_killed_by_user(trigger, monkeypatch, "failed").on_kill()
    assert gemini_emulator.stats()["calls"]["cancels"] == 1
    assert _refused_cancel_warned(capfd, job.name)


def test_the_transfer_fails_without_retry_on_a_failed_job(gemini_emulator, tmp_path):
    job = ended_job(gemini_emulator, outcome="FAILED", job_error="broken")
    store = GeminiBatchResultsToStorageOperator(
        task_id="s", batch_name=job.name, destination=str(tmp_path / "out.jsonl")
    )
    with pytest.raises(AirflowFailException, match="is FAILED, not SUCCEEDED") as info:
        store.execute({})
    assert "without retry" in str(info.value)
    assert not (tmp_path / "out.jsonl").exists()


def test_the_transfer_fails_without_retry_over_the_failed_request_ratio(gemini_emulator, tmp_path):
    job = ended_job(gemini_emulator, failed_key_pattern="^a$")
    store = GeminiBatchResultsToStorageOperator(
        task_id="s",
        batch_name=job.name,
        destination=str(tmp_path / "out.jsonl"),
        max_failed_request_ratio=0.1,
    )
    with pytest.raises(AirflowFailException, match=r"1 of 2 requests failed") as info:
        store.execute({})
    assert "a retry would download the same results" in str(info.value)
    assert (tmp_path / "out.jsonl").exists()  # written before the threshold was judged


def test_the_transfer_of_a_running_job_stays_retryable(gemini_emulator, tmp_path):
    gemini_emulator.configure(pending_seconds=0, running_seconds=60)
    job = GeminiHook().create_batch(model="gemini-2.5-flash", display_name="live", inline_requests=INLINE)
    store = GeminiBatchResultsToStorageOperator(
        task_id="s", batch_name=job.name, destination=str(tmp_path / "out.jsonl")
    )
    with pytest.raises(Exception, match="A retry looks again") as info:
        store.execute({})
    assert not isinstance(info.value, AirflowFailException)


@pytest.mark.parametrize("flag", ["soft_fail", "never_fail"])
def test_soft_fail_skips_a_job_already_failed_at_the_first_look(gemini_emulator, flag):
    job = ended_job(gemini_emulator, outcome="FAILED", job_error="broken")
    sensor = GeminiBatchSensor(task_id="w", batch_name=job.name, deferrable=True, **{flag: True})
    with pytest.raises(AirflowSkipException, match="broken"):
        sensor.execute({})


async def test_soft_fail_skips_a_job_that_fails_while_deferred(gemini_emulator):
    gemini_emulator.configure(pending_seconds=0, running_seconds=30, job_outcome="FAILED", job_error="broken")
    job = GeminiHook().create_batch(model="gemini-2.5-flash", display_name="late", inline_requests=INLINE)
    sensor = GeminiBatchSensor(task_id="w", batch_name=job.name, deferrable=True, soft_fail=True)
    trigger = GeminiBatchTrigger(batch_name=job.name, poll_interval=0.01)
    decider_read = await trigger.hook.aget_batch(job.name)
    assert decider_read.state.value == "RUNNING"  # the sensor would defer here
    gemini_emulator.advance(60)
    event = await trigger.wait()
    assert event.status is EventStatus.FAILURE
    with pytest.raises(AirflowSkipException, match="broken"):
        sensor.execute_complete({}, event.to_payload())
    plain = GeminiBatchSensor(task_id="p", batch_name=job.name, deferrable=True)
    with pytest.raises(AirflowFailException, match="without retry"):
        plain.execute_complete({}, event.to_payload())


def test_a_bad_event_is_named_where_the_task_resumes():
    sensor = GeminiBatchSensor(task_id="w", batch_name="batches/x")
    with pytest.raises(BatchEventError, match="'finished'"):
        sensor.execute_complete({}, {"status": "finished", "batch_name": "batches/x"})


def test_an_api_that_stays_unavailable_ends_the_wait_with_a_retryable_error():
    event = BatchEvent(EventStatus.UNAVAILABLE, "batches/x", "10 polls in a row failed; a retry polls again")
    sensor = GeminiBatchSensor(task_id="w", batch_name="batches/x")
    with pytest.raises(GeminiApiError, match="a retry polls again"):
        sensor.execute_complete({}, event.to_payload())


def test_a_transient_error_during_a_poke_does_not_fail_the_task(gemini_emulator, capfd):
    gemini_emulator.configure(pending_seconds=0, running_seconds=60)
    job = GeminiHook().create_batch(model="gemini-2.5-flash", display_name="poked", inline_requests=INLINE)
    gemini_emulator.add_fault(operations=["gets"], status=503, count=100)
    sensor = GeminiBatchSensor(task_id="w", batch_name=job.name, deferrable=False, poke_interval=0.01)
    assert sensor.poke({}) is False  # the SDK's own retries ran out: this poke failed, the task did not
    assert "503 UNAVAILABLE" in _logged(capfd)
    gemini_emulator.clear_faults()
    gemini_emulator.advance(120)
    done = sensor.poke({})
    assert done.xcom_value["state"] == "SUCCEEDED"
    assert sensor._poll.failures == 0


def test_a_poke_mode_sensor_outlives_polls_that_fail_transiently(gemini_emulator, capfd):
    job = ended_job(gemini_emulator)
    gemini_emulator.add_fault(operations=["gets"], status=503, count=12)  # more than the SDK retries, twice
    sensor = GeminiBatchSensor(task_id="w", batch_name=job.name, deferrable=False, poke_interval=0.01)
    assert sensor.execute({})["state"] == "SUCCEEDED"
    assert "poll 2 of at most 10 failing in a row" in _logged(capfd)
