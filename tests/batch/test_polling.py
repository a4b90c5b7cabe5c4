"""The one poll decision: what every wait does with a job, an error and the time."""

import http.client
import socket
import ssl
import urllib.error

import pytest

from airflow_provider_gemini.batch.errors import GeminiApiError, is_transient
from airflow_provider_gemini.batch.events import BatchEvent, BatchEventError, EventStatus
from airflow_provider_gemini.batch.jobs import BatchJobInfo, BatchState, BatchStats
from airflow_provider_gemini.batch.polling import Action, PollDecider

NAME = "batches/p1"


def _job(state, total=0, ok=0, failed=0):
    stats = BatchStats(request_count=total, succeeded=ok, failed=failed, pending=total - ok - failed)
    return BatchJobInfo(name=NAME, state=state, stats=stats)


def _decider(**kwargs):
    return PollDecider(NAME, **{"poll_interval": 10.0, **kwargs})


def test_a_running_job_waits_one_interval_and_logs_only_news():
    decider = _decider()
    first = decider.on_job(_job(BatchState.RUNNING, 4, 1), now=0)
    assert (first.action, first.seconds, first.event) == (Action.WAIT, 10.0, None)
    assert first.log == "batches/p1 RUNNING: 1/4 done, 0 failed, 25%"
    assert decider.on_job(_job(BatchState.RUNNING, 4, 1), now=10).log is None


@pytest.mark.parametrize(
    ("job", "status"),
    [
        (_job(BatchState.SUCCEEDED, 2, 2), EventStatus.SUCCESS),
        (_job(BatchState.FAILED), EventStatus.FAILURE),
        (_job(BatchState.CANCELLED), EventStatus.FAILURE),
        (_job(BatchState.EXPIRED), EventStatus.FAILURE),
        (_job(BatchState.SUCCEEDED, 2, 1, 1), EventStatus.FAILURE),  # over max_failed_request_ratio=0
        (_job(BatchState.PARTIALLY_SUCCEEDED, 2, 2), EventStatus.SUCCESS),
        (_job(BatchState.PARTIALLY_SUCCEEDED, 2, 1, 1), EventStatus.FAILURE),
    ],
)
def test_a_terminal_job_is_done_with_its_event(job, status):
    decision = _decider(max_failed_request_ratio=0.0).on_job(job, now=0)
    assert decision.action is Action.DONE
    assert decision.event.status is status
    assert decision.event.job["state"] == job.state.value


def test_by_default_a_wait_leaves_failed_requests_to_the_store_to_judge():
    decision = _decider().on_job(_job(BatchState.SUCCEEDED, 2, 0, 2), now=0)
    assert decision.event.status is EventStatus.SUCCESS


def test_the_ratio_lets_a_few_failed_requests_through():
    decision = _decider(max_failed_request_ratio=0.5).on_job(_job(BatchState.SUCCEEDED, 2, 1, 1), now=0)
    assert decision.event.status is EventStatus.SUCCESS


def test_observe_decides_on_a_job_or_an_error_and_logs_the_line_at_its_level():
    class Log:
        def __init__(self):
            self.lines = []

        def info(self, line):
            self.lines.append(("info", line))

        def warning(self, line):
            self.lines.append(("warning", line))

    log, decider = Log(), _decider()
    assert decider.observe(_job(BatchState.RUNNING, 4, 1), 0, log).action is Action.WAIT
    assert decider.observe(GeminiApiError("busy", code=503), 10, log).action is Action.WAIT
    assert decider.observe(_job(BatchState.RUNNING, 4, 1), 20, log).log is None  # no news: no line
    assert decider.observe(_job(BatchState.SUCCEEDED, 4, 4), 30, log).action is Action.DONE
    assert [level for level, _ in log.lines] == ["info", "warning", "info"]
    assert "failed (busy)" in log.lines[1][1]


def test_transient_errors_back_off_exponentially_with_a_cap():
    decider = _decider(max_backoff=50.0, max_consecutive_failures=100)
    pauses = [decider.on_error(GeminiApiError("busy", code=503), now=0).seconds for _ in range(8)]
    # 10, 20, 40, then the cap; each plus up to one interval of jitter, never over the cap.
    for pause, base in zip(pauses, [10, 20, 40, 50, 50, 50, 50, 50], strict=True):
        assert base <= pause <= min(base + 10, 50)


def test_transient_errors_are_logged_as_warnings_with_the_count():
    decision = _decider().on_error(ConnectionResetError("reset"), now=0)
    assert decision.action is Action.WAIT
    assert decision.warning
    assert "reset" in decision.log
    assert "poll 1 of at most 10" in decision.log


def test_a_run_of_transient_failures_gives_up_and_says_a_retry_polls_again():
    decider = _decider(max_consecutive_failures=3)
    actions = [decider.on_error(GeminiApiError("busy", code=503), now=0).action for _ in range(3)]
    assert actions == [Action.WAIT, Action.WAIT, Action.GIVE_UP]
    decider = _decider(max_consecutive_failures=3)
    decider.on_error(GeminiApiError("busy", code=503), now=0)
    decider.on_error(GeminiApiError("busy", code=503), now=0)
    last = decider.on_error(GeminiApiError("busy", code=429), now=0)
    assert last.event.status is EventStatus.UNAVAILABLE
    assert "3 polls in a row failed" in last.event.message
    assert "a retry of this task polls it again" in last.event.message


def test_any_successful_read_resets_the_failure_count():
    decider = _decider(max_consecutive_failures=3)
    for _ in range(5):
        assert decider.on_error(GeminiApiError("busy", code=503), now=0).action is Action.WAIT
        assert decider.on_error(GeminiApiError("busy", code=503), now=0).action is Action.WAIT
        decider.on_job(_job(BatchState.RUNNING), now=0)
    assert decider.failures == 0


def test_an_error_that_will_not_pass_gives_up_at_once():
    decision = _decider().on_error(GeminiApiError("Gemini API error 404: not found", code=404), now=0)
    assert decision.action is Action.GIVE_UP
    assert decision.event.status is EventStatus.ERROR
    assert NAME in decision.event.message
    assert "404" in decision.event.message
    assert "A retry would get the same answer" in decision.event.message


def test_the_deadline_shortens_the_last_wait_then_gives_up_with_a_timeout():
    decider = _decider(deadline=104.0)
    assert decider.on_job(_job(BatchState.RUNNING), now=100).seconds == 4.0
    assert decider.on_error(GeminiApiError("busy", code=503), now=101).seconds <= 3.0
    late = decider.on_job(_job(BatchState.RUNNING), now=104)
    assert late.action is Action.GIVE_UP
    assert late.event.status is EventStatus.TIMEOUT
    assert "the timeout passed; the task fails without retry" in late.event.message


def test_a_job_that_ended_is_done_even_after_the_deadline():
    decision = _decider(deadline=1.0).on_job(_job(BatchState.SUCCEEDED), now=50)
    assert decision.event.status is EventStatus.SUCCESS


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"status": "succeeded", "batch_name": NAME, "job": {}}, "'succeeded'"),
        ({"status": None, "batch_name": NAME}, "None"),
        ({"status": "failure"}, "no batch_name"),
        ({"status": "success", "batch_name": NAME, "job": None}, "carries no job"),
        ({"status": "failure", "batch_name": NAME, "job": "FAILED"}, "'FAILED'"),
        (["success"], "list"),
    ],
)
def test_a_bad_event_is_refused_where_the_task_resumes_and_the_bad_value_named(payload, named):
    with pytest.raises(BatchEventError, match=named):
        BatchEvent.from_payload(payload)


def test_every_status_the_decider_fires_reads_back():
    for status in EventStatus:
        event = BatchEvent(status=status, batch_name=NAME, message="m", job={"state": "SUCCEEDED"})
        assert BatchEvent.from_payload(event.to_payload()) == event


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (urllib.error.URLError(ConnectionRefusedError("refused")), True),
        (urllib.error.URLError(socket.gaierror("no such host")), True),
        (urllib.error.URLError(ssl.SSLCertVerificationError("bad certificate")), False),
        (ssl.SSLCertVerificationError("bad certificate"), False),
        (ssl.SSLEOFError("eof"), True),
        (http.client.IncompleteRead(b"x", 10), True),
        (TimeoutError("slow"), True),
        (GeminiApiError("busy", code=503), True),
        (GeminiApiError("denied", code=403), False),
        (KeyError("x"), False),
    ],
)
def test_one_classifier_serves_the_polls_and_the_downloads(error, transient):
    assert is_transient(error) is transient
    assert _decider().on_error(error, now=0).action is (Action.WAIT if transient else Action.GIVE_UP)
