"""The one shape of the event a batch trigger fires, read the same way by every consumer."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from airflow_provider_gemini.batch.errors import GeminiBatchError


class EventStatus(str, enum.Enum):
    SUCCESS = "success"  # the job succeeded and passed the failed-request threshold
    FAILURE = "failure"  # the job failed, was cancelled, expired, or had too many failed requests
    TIMEOUT = "timeout"  # we stopped waiting; the job may still be running
    ERROR = "error"  # the job could not be read (not found, permission denied)
    UNAVAILABLE = "unavailable"  # the API failed transiently too many polls in a row


class BatchEventError(GeminiBatchError, ValueError):
    """A trigger event that is not one this provider fires (a bad status or a missing field)."""


@dataclasses.dataclass(frozen=True)
class BatchEvent:
    """What a wait for a batch job ended with.

    :param status: how the wait ended.
    :param batch_name: the job, ``batches/...``.
    :param message: a finished sentence for the task log and the failure.
    :param job: the job summary (``BatchJobInfo.to_dict()``) when it was read.
    """

    status: EventStatus
    batch_name: str
    message: str
    job: dict[str, Any] | None = None

    def to_payload(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "status": self.status.value}

    @classmethod
    def from_payload(cls, payload: Any) -> BatchEvent:
        """Read an event where the task resumes, refusing anything the trigger would not have sent."""
        if not isinstance(payload, dict):
            raise BatchEventError(
                f"A Gemini batch trigger event must be a dict, not {type(payload).__name__}"
            )
        status = payload.get("status")
        allowed = ", ".join(s.value for s in EventStatus)
        try:
            parsed = EventStatus(status)
        except ValueError:
            raise BatchEventError(
                f"Gemini batch trigger event has status {status!r}, not one of: {allowed}"
            ) from None
        batch_name = payload.get("batch_name")
        if not isinstance(batch_name, str) or not batch_name:
            raise BatchEventError(f"Gemini batch trigger event has no batch_name (got {batch_name!r})")
        job = payload.get("job")
        if job is not None and not isinstance(job, dict):
            raise BatchEventError(f"Gemini batch trigger event has a job that is not a dict: {job!r}")
        if parsed is EventStatus.SUCCESS and job is None:
            raise BatchEventError(
                f"Gemini batch trigger event says {batch_name} succeeded but carries no job"
            )
        return cls(status=parsed, batch_name=batch_name, message=str(payload.get("message") or ""), job=job)
