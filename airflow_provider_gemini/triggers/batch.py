"""Waits for a Gemini batch job in the triggerer, so no worker slot is held for up to a day."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_gemini.batch.errors import BatchJobError, is_transient
from airflow_provider_gemini.batch.events import BatchEvent, EventStatus
from airflow_provider_gemini.batch.outcome import check_outcome
from airflow_provider_gemini.batch.progress import ProgressLog

if TYPE_CHECKING:
    from airflow_provider_gemini.batch.jobs import BatchJobInfo
    from airflow_provider_gemini.hooks.gemini import GeminiHook

# Longest pause between polls while the API keeps failing transiently.
MAX_BACKOFF_SECONDS = 300.0


class GeminiBatchTrigger(BaseTrigger):
    """Polls one batch job with the async client until it ends, then fires one :class:`BatchEvent`.

    It holds only the connection id, the job name and its settings (never a secret), so its
    serialized form is safe to store and a restarted triggerer rebuilds it and carries on.

    :param batch_name: the job, ``batches/...``.
    :param gemini_conn_id: the Airflow connection to the Gemini API.
    :param poll_interval: seconds between polls.
    :param deadline: Unix time after which the wait ends with a timeout event (None: no limit).
    :param max_failed_request_ratio: share of failed requests a succeeded job may have.
    :param cancel_on_kill: cancel the job when a user kills the deferred task.
    """

    def __init__(
        self,
        *,
        batch_name: str,
        gemini_conn_id: str = "gemini_default",
        poll_interval: float = 30.0,
        deadline: float | None = None,
        max_failed_request_ratio: float = 0.0,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        self.batch_name = batch_name
        self.gemini_conn_id = gemini_conn_id
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.max_failed_request_ratio = max_failed_request_ratio
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_name": self.batch_name,
                "gemini_conn_id": self.gemini_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_failed_request_ratio": self.max_failed_request_ratio,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    @cached_property
    def hook(self) -> GeminiHook:
        # One hook, hence one async client and connection pool, for the trigger's whole life.
        from airflow_provider_gemini.hooks.gemini import GeminiHook

        return GeminiHook(gemini_conn_id=self.gemini_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self.wait()
        yield TriggerEvent(event.to_payload())

    async def wait(self) -> BatchEvent:
        """Poll until the job ends or the deadline passes; transient API trouble only slows the polls."""
        progress = ProgressLog()
        failures = 0
        while True:
            try:
                job = await self.hook.aget_batch(self.batch_name)
            except Exception as err:
                if not is_transient(err):
                    return self._event(
                        EventStatus.ERROR, f"Could not read Gemini batch {self.batch_name}: {err}"
                    )
                failures += 1
                pause = self._backoff(failures)
                self.log.warning(
                    "Reading %s failed (%s); polling again in %.1f s", self.batch_name, err, pause
                )
            else:
                failures = 0
                if line := progress.update(job):
                    self.log.info(line)
                if job.state.is_terminal:
                    return self._finished(job)
                pause = self.poll_interval
            if self.deadline is not None:
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    return self._event(
                        EventStatus.TIMEOUT,
                        f"Stopped waiting for Gemini batch {self.batch_name}: the timeout passed "
                        "(the job may still be running)",
                    )
                pause = min(pause, remaining)
            await asyncio.sleep(pause)

    def _finished(self, job: BatchJobInfo) -> BatchEvent:
        summary = job.to_dict()
        try:
            check_outcome(job, self.max_failed_request_ratio)
        except BatchJobError as err:
            return self._event(EventStatus.FAILURE, str(err), summary)
        return self._event(EventStatus.SUCCESS, f"Gemini batch {job.name} succeeded", summary)

    def _event(self, status: EventStatus, message: str, job: dict[str, Any] | None = None) -> BatchEvent:
        return BatchEvent(status=status, batch_name=self.batch_name, message=message, job=job)

    def _backoff(self, failures: int) -> float:
        base = min(MAX_BACKOFF_SECONDS, self.poll_interval * 2 ** min(failures - 1, 8))
        return base * random.uniform(0.5, 1.0)

    async def on_kill(self) -> None:
        """Cancel the job when a user kills the deferred task.

        Airflow 3.3+ calls this (see ``_compat.HAS_TRIGGER_ON_KILL``); older releases only cancel the
        trigger, as they do when the triggerer stops, so there the job is left running.
        """
        if not self.cancel_on_kill:
            return
        self.log.info("Task killed: cancelling Gemini batch %s", self.batch_name)
        await self.hook.acancel_batch(self.batch_name)
