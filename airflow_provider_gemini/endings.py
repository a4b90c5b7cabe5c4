"""How a task ends after waiting for a batch job, shared by the create operator and the sensor.

The decisions are the core's (``batch.polling``, ``batch.outcome``); this module only turns them into
Airflow's exceptions: a job that ended badly fails without retry (a retry would find the same ended
job), a wait that timed out fails as a sensor timeout, an API that stayed unavailable fails with a
retryable error (a retry polls again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_provider_gemini._compat import AirflowFailException, AirflowSensorTimeout
from airflow_provider_gemini.batch.errors import GeminiApiError
from airflow_provider_gemini.batch.events import BatchEvent, EventStatus


def finish_event(event: BatchEvent, log: Any, *, after_failure: str) -> dict[str, Any]:
    """The job summary of a successful wait, or the exception that ends the task.

    :param event: how the wait ended (from the trigger, or from the poll loop on a worker).
    :param log: the task's logger.
    :param after_failure: what the reader should do about a job that ended badly (a sentence).
    """
    if event.status is EventStatus.SUCCESS and event.job is not None:
        log.info(event.message)
        return event.job
    if event.status is EventStatus.TIMEOUT:
        raise AirflowSensorTimeout(event.message)
    if event.status is EventStatus.UNAVAILABLE:
        raise GeminiApiError(event.message)
    if event.status is EventStatus.FAILURE:
        raise AirflowFailException(f"{event.message}. Failing without retry: {after_failure}")
    raise AirflowFailException(event.message)


def cancel_best_effort(cancel: Callable[[str], Any], batch_name: str, log: Any) -> None:
    """Cancel a job from ``on_kill``: the task is dying anyway, so a refusal is logged, never raised.

    A job that has just finished answers 400 FAILED_PRECONDITION, and an exception here would only
    hide why the task was killed.
    """
    log.info("Task killed: cancelling Gemini batch %s", batch_name)
    try:
        cancel(batch_name)
    except Exception as err:
        log.warning("Could not cancel Gemini batch %s (it may have ended already): %s", batch_name, err)
