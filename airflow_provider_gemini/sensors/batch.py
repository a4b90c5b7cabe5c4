"""Waits for a Gemini batch job: in the triggerer by default, or by poking."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_gemini._compat import AirflowFailException, AirflowSensorTimeout, AirflowSkipException
from airflow_provider_gemini.batch.errors import BatchJobError
from airflow_provider_gemini.batch.events import BatchEvent, EventStatus
from airflow_provider_gemini.batch.outcome import check_outcome
from airflow_provider_gemini.batch.progress import ProgressLog
from airflow_provider_gemini.triggers.batch import GeminiBatchTrigger

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from airflow_provider_gemini.batch.jobs import BatchJobInfo
    from airflow_provider_gemini.hooks.gemini import GeminiHook


class GeminiBatchSensor(BaseSensorOperator):
    """Waits until a Gemini batch job ends, and fails clearly unless it succeeded.

    Deferrable by default (``[operators] default_deferrable``): the wait then runs in the triggerer
    and holds no worker slot. On success the job summary (state, request counts, result file,
    timings) goes to XCom. A failed, cancelled or expired job fails the task with the job's own
    error text; a succeeded job with failed requests is judged by ``max_failed_request_ratio``.

    :param batch_name: the job to wait for, ``batches/...`` (templated; usually the create task's XCom).
    :param gemini_conn_id: the Airflow connection to the Gemini API.
    :param max_failed_request_ratio: share of failed requests tolerated (0: any failed request fails).
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
        max_failed_request_ratio: float = 0.0,
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
        self._progress = ProgressLog()

    @cached_property
    def hook(self) -> GeminiHook:
        from airflow_provider_gemini.hooks.gemini import GeminiHook

        return GeminiHook(gemini_conn_id=self.gemini_conn_id)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One look first: a job that already ended needs no trip through the triggerer.
        job = self._read()
        if job.state.is_terminal:
            try:
                return self._finish(job)
            except AirflowFailException as err:
                # What the base class's poke loop and resume_execution do with a failure.
                if self.soft_fail or getattr(self, "never_fail", False):  # never_fail: Airflow 3.1+
                    raise AirflowSkipException(f"Skipping: {err}") from err
                raise
        self.defer(
            trigger=GeminiBatchTrigger(
                batch_name=self.batch_name,
                gemini_conn_id=self.gemini_conn_id,
                poll_interval=self.poke_interval,
                deadline=time.time() + self.timeout if self.timeout else None,
                max_failed_request_ratio=self.max_failed_request_ratio,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + timedelta(minutes=5) if self.timeout else None,
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        job = self._read()
        if not job.state.is_terminal:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(job))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: return the summary, or fail with the event's message."""
        return finish_from_event(BatchEvent.from_payload(event), self.log)

    def _read(self) -> BatchJobInfo:
        job = self.hook.get_batch(self.batch_name)
        if line := self._progress.update(job):
            self.log.info(line)
        return job

    def _finish(self, job: BatchJobInfo) -> dict[str, Any]:
        try:
            check_outcome(job, self.max_failed_request_ratio)
        except BatchJobError as err:
            # A terminal job will not change on a retry: fail without retrying.
            raise AirflowFailException(str(err)) from err
        self.log.info("Gemini batch %s succeeded", job.name)
        return job.to_dict()

    def on_kill(self) -> None:
        if self.cancel_on_kill:
            self.log.info("Task killed: cancelling Gemini batch %s", self.batch_name)
            self.hook.cancel_batch(self.batch_name)


def finish_from_event(event: BatchEvent, log: Any) -> dict[str, Any]:
    """Turn a trigger's event into the task's result, shared by the sensor and the create operator."""
    if event.status is EventStatus.SUCCESS and event.job is not None:
        log.info(event.message)
        return event.job
    if event.status is EventStatus.TIMEOUT:
        raise AirflowSensorTimeout(event.message)
    raise AirflowFailException(event.message)
