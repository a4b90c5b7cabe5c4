"""How a task ends after waiting for a batch job, shared by the create operator and the sensor.

The decisions are the core's (``batch.polling``, ``batch.outcome``); this module only turns them into
Airflow's exceptions: a job that ended badly fails without retry (a retry would find the same ended
job), a wait that timed out fails as a sensor timeout, an API that stayed unavailable fails with a
retryable error (a retry polls again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from airflow_provider_gemini._compat import AirflowFailException, AirflowSensorTimeout
from airflow_provider_gemini.batch.errors import GeminiApiError
from airflow_provider_gemini.batch.events import BatchEvent, EventStatus

# Airflow's own timeout of a deferred wait: a backstop behind the trigger's deadline, which ends the
# wait first and cancels the job when the task asks for it.
BACKSTOP = timedelta(minutes=5)


def finish_event(
    event: BatchEvent, log: Any, *, after_failure: str, cancel: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """The job summary of a successful wait, or the exception that ends the task.

    :param event: how the wait ended (from the trigger, or from the poll loop on a worker).
    :param log: the task's logger.
    :param after_failure: what the reader should do about a job that ended badly (a sentence).
    :param cancel: cancels the job when the wait timed out (given when ``cancel_on_kill`` is set).
    """
    if event.status is EventStatus.SUCCESS and event.job is not None:
        log.info(event.message)
        return event.job
    if event.status is EventStatus.TIMEOUT:
        raise AirflowSensorTimeout(event.message + timed_out(cancel, event.batch_name, log))
    if event.status is EventStatus.UNAVAILABLE:
        raise GeminiApiError(event.message)
    if event.status is EventStatus.FAILURE:
        raise AirflowFailException(f"{event.message}. Failing without retry: {after_failure}")
    raise AirflowFailException(event.message)


def timed_out(cancel: Callable[[str], Any] | None, batch_name: str, log: Any) -> str:
    """Cancel the job of a wait that timed out, when the task asks for it; the sentence that says so."""
    if cancel is None:
        return " The job may still be running (cancel_on_kill is off): clear the task to wait again."
    if cancel_best_effort(cancel, batch_name, log, why="Wait timed out"):
        return " The job was cancelled (cancel_on_kill)."
    return " Cancelling the job failed (see the log): it may still be running."


def cancel_best_effort(
    cancel: Callable[[str], Any], batch_name: str, log: Any, why: str = "Task killed"
) -> bool:
    """Cancel a job from ``on_kill`` or at a timeout: the task ends anyway, so a refusal is logged, never
    raised. Returns whether the API took the cancel.

    A job that has just finished answers 400 FAILED_PRECONDITION, and an exception here would only
    hide why the task ended.
    """
    log.info("%s: cancelling Gemini batch %s", why, batch_name)
    try:
        cancel(batch_name)
    except Exception as err:
        _refused(log, batch_name, err)
        return False
    return True


async def acancel_best_effort(
    cancel: Callable[[str], Awaitable[Any]], batch_name: str, log: Any, why: str
) -> bool:
    """:func:`cancel_best_effort` for a trigger, with the async client."""
    log.info("%s: cancelling Gemini batch %s", why, batch_name)
    try:
        await cancel(batch_name)
    except Exception as err:
        _refused(log, batch_name, err)
        return False
    return True


def _refused(log: Any, batch_name: str, err: Exception) -> None:
    log.warning("Could not cancel Gemini batch %s (it may have ended already): %s", batch_name, err)
