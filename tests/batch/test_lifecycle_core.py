"""The small pure pieces the trigger, sensor and operator share."""

import pytest

from airflow_provider_gemini.batch.errors import BatchJobError, GeminiApiError, is_transient
from airflow_provider_gemini.batch.events import BatchEvent, EventStatus
from airflow_provider_gemini.batch.identity import (
    MAX_DISPLAY_NAME,
    display_name_for,
    job_identity,
    same_task_instance,
)
from airflow_provider_gemini.batch.jobs import BatchJobInfo, BatchState, BatchStats
from airflow_provider_gemini.batch.outcome import check_outcome
from airflow_provider_gemini.batch.progress import ProgressLog, format_progress


def _job(state, total=0, ok=0, failed=0, error=None):
    stats = BatchStats(request_count=total, succeeded=ok, failed=failed, pending=total - ok - failed)
    return BatchJobInfo(name="batches/j1", state=state, stats=stats, error=error)


def test_identity_is_stable_and_ignores_nothing_that_matters():
    base = job_identity("dag", "task", "run1", -1, "f" * 64)
    assert base == job_identity("dag", "task", "run1", -1, "f" * 64)
    others = {
        job_identity("dag2", "task", "run1", -1, "f" * 64),
        job_identity("dag", "task2", "run1", -1, "f" * 64),
        job_identity("dag", "task", "run2", -1, "f" * 64),
        job_identity("dag", "task", "run1", 0, "f" * 64),
        job_identity("dag", "task", "run1", -1, "e" * 64),
    }
    assert base not in others
    assert len(others) == 5


def test_a_task_instance_knows_its_other_submissions_but_not_other_runs():
    name = display_name_for(job_identity("dag", "task", "run1", -1, "flash"), "dag.task")
    other_model = display_name_for(job_identity("dag", "task", "run1", -1, "pro"), "dag.task")
    other_run = display_name_for(job_identity("dag", "task", "run2", -1, "flash"), "dag.task")
    assert name != other_model
    assert same_task_instance(name, other_model)
    assert not same_task_instance(name, other_run)
    assert not same_task_instance(name, "dag.task-short")


def test_display_name_is_safe_and_bounded():
    name = display_name_for("abc123", "my dag/with spaces" + "x" * 300)
    assert name.endswith("-abc123")
    assert len(name) <= MAX_DISPLAY_NAME
    assert " " not in name
    assert "/" not in name


def test_progress_line_and_only_changes_are_logged():
    job = _job(BatchState.RUNNING, total=5000, ok=1197, failed=3)
    assert format_progress(job) == "batches/j1 RUNNING: 1200/5000 done, 3 failed, 24%"
    log = ProgressLog()
    assert log.update(job) is not None
    assert log.update(job) is None
    assert log.update(_job(BatchState.RUNNING, total=5000, ok=1300, failed=3)) is not None


@pytest.mark.parametrize(
    ("state", "fragment"),
    [
        (BatchState.FAILED, "failed: model overloaded"),
        (BatchState.CANCELLED, "was cancelled"),
        (BatchState.EXPIRED, "expired before it finished"),
        (BatchState.RUNNING, "is not finished"),
    ],
)
def test_every_unhappy_ending_raises_with_the_jobs_text(state, fragment):
    with pytest.raises(BatchJobError, match=fragment) as info:
        check_outcome(_job(state, error="model overloaded" if state is BatchState.FAILED else None))
    assert info.value.batch_name == "batches/j1"
    assert info.value.state == state.value


def test_failed_requests_are_judged_by_the_ratio():
    job = _job(BatchState.SUCCEEDED, total=100, ok=97, failed=3)
    with pytest.raises(BatchJobError, match="3 of 100 requests failed"):
        check_outcome(job, 0.0)
    check_outcome(job, 0.05)
    check_outcome(_job(BatchState.SUCCEEDED, total=100, ok=100))


def test_a_partially_succeeded_job_is_judged_like_a_succeeded_one():
    job = _job(BatchState.PARTIALLY_SUCCEEDED, total=100, ok=97, failed=3)
    with pytest.raises(BatchJobError, match="partially succeeded but 3 of 100 requests failed"):
        check_outcome(job, 0.0)
    check_outcome(job, 0.05)


def test_event_payload_round_trip():
    event = BatchEvent(EventStatus.FAILURE, "batches/j1", "it failed", {"state": "FAILED"})
    payload = event.to_payload()
    assert payload["status"] == "failure"
    assert BatchEvent.from_payload(payload) == event


def test_transient_errors_are_recognised():
    assert is_transient(GeminiApiError("busy", code=503))
    assert is_transient(GeminiApiError("slow down", code=429))
    assert not is_transient(GeminiApiError("bad", code=400))
    assert not is_transient(GeminiApiError("gone", code=404))
    assert is_transient(ConnectionResetError())

    class RemoteProtocolError(Exception):
        pass

    assert is_transient(RemoteProtocolError())
    assert not is_transient(ValueError("no"))
