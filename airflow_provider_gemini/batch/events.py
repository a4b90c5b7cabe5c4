"""The one shape of the event a batch trigger fires, read the same way by every consumer."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class EventStatus(str, enum.Enum):
    SUCCESS = "success"  # the job succeeded and passed the failed-request threshold
    FAILURE = "failure"  # the job failed, was cancelled, expired, or had too many failed requests
    TIMEOUT = "timeout"  # we stopped waiting; the job may still be running
    ERROR = "error"  # the job could not be read (not found, permission denied)


@dataclass(frozen=True)
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
        return {
            "status": self.status.value,
            "batch_name": self.batch_name,
            "message": self.message,
            "job": self.job,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> BatchEvent:
        return cls(
            status=EventStatus(payload["status"]),
            batch_name=payload["batch_name"],
            message=payload.get("message", ""),
            job=payload.get("job"),
        )
