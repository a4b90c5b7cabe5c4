"""Waits for a Gemini batch job in the triggerer, so no worker slot is held for up to a day."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_gemini.batch.polling import PollDecider
from airflow_provider_gemini.endings import BACKSTOP, acancel_best_effort

if TYPE_CHECKING:
    from airflow_provider_gemini.batch.events import BatchEvent
    from airflow_provider_gemini.batch.jobs import BatchJobInfo
    from airflow_provider_gemini.hooks.gemini import GeminiHook


def defer_wait(task: Any, batch_name: str, *, poll_interval: float, deadline: float | None) -> None:
    """Hand the wait for a job to the triggerer: ``task`` (the create operator or the sensor) resumes
    in ``execute_complete``. Airflow's own timeout is a backstop behind the trigger's deadline."""
    task.defer(
        trigger=GeminiBatchTrigger(
            batch_name=batch_name,
            gemini_conn_id=task.gemini_conn_id,
            poll_interval=poll_interval,
            deadline=deadline,
            max_failed_request_ratio=task.max_failed_request_ratio,
            cancel_on_kill=task.cancel_on_kill,
        ),
        method_name="execute_complete",
        timeout=timedelta(seconds=deadline - time.time()) + BACKSTOP if deadline else None,
    )


class GeminiBatchTrigger(BaseTrigger):
    """Polls one batch job with the async client until it ends, then fires one :class:`BatchEvent`.

    It holds only the connection id, the job name and its settings (never a secret), so its
    serialized form is safe to store and a restarted triggerer rebuilds it and carries on.

    :param batch_name: the job, ``batches/...``.
    :param gemini_conn_id: the Airflow connection to the Gemini API.
    :param poll_interval: seconds between polls.
    :param deadline: Unix time after which the wait ends with a timeout event (None: no limit).
    :param max_failed_request_ratio: share of failed requests a succeeded job may have (None: any).
    :param cancel_on_kill: cancel the job when a user kills the deferred task.
    """

    def __init__(
        self,
        *,
        batch_name: str,
        gemini_conn_id: str = "gemini_default",
        poll_interval: float = 30.0,
        deadline: float | None = None,
        max_failed_request_ratio: float | None = None,
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
        decider = PollDecider(
            self.batch_name,
            poll_interval=self.poll_interval,
            deadline=self.deadline,
            max_failed_request_ratio=self.max_failed_request_ratio,
        )
        while True:
            try:
                outcome: BatchJobInfo | Exception = await self.hook.aget_batch(self.batch_name)
            except Exception as err:
                outcome = err
            decision = decider.observe(outcome, time.time(), self.log)
            if decision.event is not None:
                return decision.event
            await asyncio.sleep(decision.seconds)

    async def on_kill(self) -> None:
        """Cancel the job when a user marks the deferred task failed, and only then.

        Airflow 3.3+ calls this on clear, mark-failed and mark-success alike, without saying which
        (see ``_compat.HAS_TRIGGER_ON_KILL``; older releases never call it). The task instance's state
        tells them apart: a task marked failed cancels its job; a cleared task re-attaches to it on its
        next run, and one marked successful keeps it. When the state cannot be read, the job is kept:
        paid work is never thrown away on a guess.
        """
        if not self.cancel_on_kill:
            return
        state = await self._task_state()
        if state != "failed":
            self.log.info(
                "The deferred task was %s by a user: Gemini batch %s keeps running (only marking the "
                "task failed cancels it)",
                {"success": "marked successful", None: "cleared"}.get(state, f"set to {state}"),
                self.batch_name,
            )
            return
        await acancel_best_effort(
            self.hook.acancel_batch, self.batch_name, self.log, "The task was marked failed"
        )

    async def _task_state(self) -> str | None:
        """The deferred task instance's state, read through the triggerer's link to the API server."""
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return "unknown"
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            states = await asyncio.to_thread(
                RuntimeTaskInstance.get_task_states,
                dag_id=ti.dag_id,
                task_ids=[ti.task_id],
                run_ids=[ti.run_id],
                map_index=ti.map_index,
            )
        except Exception as err:
            self.log.warning("Could not read the state of the killed task (%s): keeping its job", err)
            return "unknown"
        key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        state = states.get(ti.run_id, {}).get(key)
        return None if state is None else str(getattr(state, "value", state))
