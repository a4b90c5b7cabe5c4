"""Waits for a Gemini batch job: in the triggerer by default, or by poking."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_gemini._compat import AirflowFailException, AirflowSensorTimeout, AirflowSkipException
from airflow_provider_gemini.batch.events import BatchEvent
from airflow_provider_gemini.batch.polling import PollDecider
from airflow_provider_gemini.endings import cancel_best_effort, finish_event, timed_out
from airflow_provider_gemini.triggers.batch import defer_wait

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from airflow_provider_gemini.batch.jobs import BatchJobInfo
    from airflow_provider_gemini.hooks.gemini import GeminiHook


class GeminiBatchSensor(BaseSensorOperator):
    """Waits until a Gemini batch job ends, and fails clearly unless it succeeded.

    Deferrable by default (``[operators] default_deferrable``): the wait then runs in the triggerer
    and holds no worker slot. On success the job summary (state, request counts, result file,
    timings) goes to XCom. A failed, cancelled or expired job fails the task with the job's own
    error text. A succeeded job passes whatever share of its requests failed, unless
    ``max_failed_request_ratio`` is set: by default the results transfer judges the failed requests
    after it has stored every answer and error, so the paid good results are never lost to the wait.

    :param batch_name: the job to wait for, ``batches/...`` (templated; usually the create task's XCom).
    :param gemini_conn_id: the Airflow connection to the Gemini API.
    :param max_failed_request_ratio: share of failed requests tolerated here (None, the default: not
        judged by the wait; 0: any failed request fails the sensor).
    :param deferrable: wait in the triggerer instead of a worker.
    :param cancel_on_kill: cancel the job when this task is killed (off: the sensor only watches; a
        cleared sensor should not cancel a job another task paid for).
    """

    template_fields: Sequence[str] = ("batch_name", "gemini_conn_id")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        batch_name: str,
        gemini_conn_id: str = "gemini_default",
        max_failed_request_ratio: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_name = batch_name
        self.gemini_conn_id = gemini_conn_id
        self.max_failed_request_ratio = max_failed_request_ratio
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill

    @cached_property
    def hook(self) -> GeminiHook:
        from airflow_provider_gemini.hooks.gemini import GeminiHook

        return GeminiHook(gemini_conn_id=self.gemini_conn_id)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as err:  # the base class's own timeout, between pokes
                if not self.cancel_on_kill:
                    raise
                said = timed_out(self.hook.cancel_batch, self.batch_name, self.log)
                raise AirflowSensorTimeout(f"{err}.{said}") from err
        # One look first: a job that already ended needs no trip through the triggerer.
        job = self.hook.get_batch(self.batch_name)
        decision = self._poll.on_job(job, time.time())
        if decision.log:
            self.log.info(decision.log)
        if (event := decision.event) is not None:
            return self._finish_or_skip(event)
        deadline = time.time() + self.timeout if self.timeout else None
        defer_wait(self, self.batch_name, poll_interval=self.poke_interval, deadline=deadline)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        # The sensor's own loop sets the pace (poke_interval, exponential_backoff, timeout); the decider
        # says whether this poke ended the wait, and lets a passing API fault cost one poke, not the task.
        try:
            outcome: BatchJobInfo | Exception = self.hook.get_batch(self.batch_name)
        except Exception as err:
            outcome = err
        decision = self._poll.observe(outcome, time.time(), self.log)
        if decision.event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(decision.event))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: return the summary, or fail (or skip) with the event's message."""
        return self._finish_or_skip(BatchEvent.from_payload(event))

    def on_kill(self) -> None:
        if self.cancel_on_kill:
            cancel_best_effort(self.hook.cancel_batch, self.batch_name, self.log)

    @cached_property
    def _poll(self) -> PollDecider:
        # One per sensor instance, so consecutive failures are counted across pokes (a rescheduled
        # sensor starts a new count on each try).
        return PollDecider(
            self.batch_name,
            poll_interval=self.poke_interval,
            max_failed_request_ratio=self.max_failed_request_ratio,
        )

    def _finish(self, event: BatchEvent) -> dict[str, Any]:
        cancel = self.hook.cancel_batch if self.cancel_on_kill else None
        return finish_event(event, self.log, after_failure=AFTER_FAILURE, cancel=cancel)

    def _finish_or_skip(self, event: BatchEvent) -> dict[str, Any]:
        # What the base class's poke loop does with a failure, for the paths that bypass it.
        try:
            return self._finish(event)
        except (AirflowFailException, AirflowSensorTimeout) as err:
            if self.soft_fail or getattr(self, "never_fail", False):  # never_fail: Airflow 3.1+
                raise AirflowSkipException(f"Skipping: {err}") from err
            raise


# A sensor only watches: the job it watches will not change, and a new one comes from the create task.
AFTER_FAILURE = "the job has ended and will not change; clear the task that created it to submit a new job."
