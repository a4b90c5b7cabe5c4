"""The one "what now?" of every wait for a batch job: the trigger, the sensor's poke, the operator's wait.

Each loop reads the job, hands the job (or the error the read raised) to :class:`PollDecider`, and
does what it answers: finish with an event, wait some seconds, or give up with an event. The loops
differ only in how they read and sleep, so they cannot drift in what they decide.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import tenacity

from airflow_provider_gemini.batch.errors import BatchJobError, is_transient
from airflow_provider_gemini.batch.events import BatchEvent, EventStatus
from airflow_provider_gemini.batch.jobs import BatchJobInfo
from airflow_provider_gemini.batch.outcome import check_outcome
from airflow_provider_gemini.batch.progress import ProgressLog

# Longest pause between polls while the API keeps failing transiently.
MAX_BACKOFF_SECONDS = 300.0
# Polls in a row that may fail transiently (each after the SDK's own retries) before the wait gives up:
# with the backoff above that is over half an hour of outage at the default 30 s poll interval.
MAX_CONSECUTIVE_FAILURES = 10


class Action(str, enum.Enum):
    DONE = "done"  # the job ended; ``event`` says how (success or failure)
    WAIT = "wait"  # poll again after ``seconds``
    GIVE_UP = "give_up"  # stop waiting; ``event`` says why (timeout, error, API unavailable)


@dataclass(frozen=True)
class PollDecision:
    """What a poll loop does next.

    :param action: finish, wait, or give up.
    :param seconds: how long to wait before the next poll (``WAIT`` only).
    :param event: how the wait ended (``DONE`` and ``GIVE_UP``).
    :param log: a line worth logging now (progress that changed, or a transient failure), or None.
    :param warning: True when ``log`` reports trouble rather than progress.
    """

    action: Action
    seconds: float = 0.0
    event: BatchEvent | None = None
    log: str | None = None
    warning: bool = False


class PollDecider:
    """Decides, poll by poll, whether a wait for one batch job is over.

    Pure: it reads no clock and calls no API; the caller passes the time (``time.time()``) with every
    job or error. Consecutive transient failures are counted here and reset by any successful read.

    :param batch_name: the job, ``batches/...``.
    :param poll_interval: seconds between polls while the job runs.
    :param deadline: Unix time after which the wait gives up with a timeout (None: no limit).
    :param max_failed_request_ratio: share of failed requests a succeeded job may have (None: any;
        the results transfer judges them after storing every answer).
    :param max_consecutive_failures: transient failures in a row after which the wait gives up.
    """

    def __init__(
        self,
        batch_name: str,
        *,
        poll_interval: float,
        deadline: float | None = None,
        max_failed_request_ratio: float | None = None,
        max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES,
        max_backoff: float = MAX_BACKOFF_SECONDS,
    ) -> None:
        self.batch_name = batch_name
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.max_failed_request_ratio = max_failed_request_ratio
        self.max_consecutive_failures = max_consecutive_failures
        self.failures = 0
        self._progress = ProgressLog()
        # Exponential from the poll interval, capped, with up to one interval of jitter so that many
        # triggers hit by the same outage do not come back in step.
        self._backoff = tenacity.wait_exponential_jitter(
            initial=poll_interval, max=max(max_backoff, poll_interval), jitter=poll_interval
        )

    def observe(self, outcome: BatchJobInfo | BaseException, now: float, log: Any) -> PollDecision:
        """One poll's outcome (the job, or what reading it raised) in, the decision out.

        The decision's line goes to ``log`` (a warning for trouble), so every loop reports alike.
        """
        if isinstance(outcome, BaseException):
            decision = self.on_error(outcome, now)
        else:
            decision = self.on_job(outcome, now)
        if decision.log:
            (log.warning if decision.warning else log.info)(decision.log)
        return decision

    def on_job(self, job: BatchJobInfo, now: float) -> PollDecision:
        """The job was read: done if it ended, else wait (or give up when the deadline passed)."""
        self.failures = 0
        line = self._progress.update(job)
        if job.state.is_terminal:
            return PollDecision(Action.DONE, event=self.finished(job), log=line)
        return self._wait(self.poll_interval, now, line)

    def on_error(self, error: BaseException, now: float) -> PollDecision:
        """Reading the job raised: back off on transient trouble, give up on anything else."""
        if not is_transient(error):
            return PollDecision(
                Action.GIVE_UP,
                event=self._event(
                    EventStatus.ERROR,
                    f"Could not read Gemini batch {self.batch_name}: {error}. A retry would get the same "
                    "answer: check the batch name and the connection.",
                ),
            )
        self.failures += 1
        if self.failures >= self.max_consecutive_failures:
            return PollDecision(
                Action.GIVE_UP,
                event=self._event(
                    EventStatus.UNAVAILABLE,
                    f"Could not read Gemini batch {self.batch_name}: {self.failures} polls in a row failed, "
                    f"the last with: {error}. The job may still be running; a retry of this task polls it "
                    "again.",
                ),
            )
        pause = self.backoff(self.failures)
        line = (
            f"Reading {self.batch_name} failed ({error}); poll {self.failures} of at most "
            f"{self.max_consecutive_failures} failing in a row, polling again in {pause:.1f} s"
        )
        return self._wait(pause, now, line, warning=True)

    def backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` transient failures in a row."""
        state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = failures
        return float(self._backoff(state))

    def finished(self, job: BatchJobInfo) -> BatchEvent:
        """The event for a job in a terminal state: success, or failure with the job's own text."""
        summary = job.to_dict()
        try:
            check_outcome(job, self.max_failed_request_ratio)
        except BatchJobError as err:
            return self._event(EventStatus.FAILURE, str(err), summary)
        return self._event(EventStatus.SUCCESS, f"Gemini batch {job.name} succeeded", summary)

    def _wait(self, pause: float, now: float, line: str | None, *, warning: bool = False) -> PollDecision:
        if self.deadline is not None:
            remaining = self.deadline - now
            if remaining <= 0:
                return PollDecision(
                    Action.GIVE_UP,
                    event=self._event(
                        EventStatus.TIMEOUT,
                        f"Stopped waiting for Gemini batch {self.batch_name}: the timeout passed; the "
                        "task fails without retry.",
                    ),
                    log=line,
                    warning=warning,
                )
            pause = min(pause, remaining)
        return PollDecision(Action.WAIT, seconds=pause, log=line, warning=warning)

    def _event(self, status: EventStatus, message: str, job: dict[str, Any] | None = None) -> BatchEvent:
        return BatchEvent(status=status, batch_name=self.batch_name, message=message, job=job)
