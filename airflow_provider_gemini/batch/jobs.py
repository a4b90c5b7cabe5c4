"""Batch job states and a plain, JSON-able view of a job as the API returns it.

The SDK maps wire states (``BATCH_STATE_*``) to ``JOB_STATE_*`` and drops ``batchStats`` and the job's
``error``; we read the raw operation resource instead and normalise both spellings here.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


class BatchState(str, enum.Enum):
    """Where a batch job is in its life, independent of the API's spelling."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    #: Vertex AI's ending for a job where some requests failed: it has results, judged like SUCCEEDED.
    PARTIALLY_SUCCEEDED = "PARTIALLY_SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    UNSPECIFIED = "UNSPECIFIED"

    @classmethod
    def parse(cls, value: str | None) -> BatchState:
        """Accept ``BATCH_STATE_RUNNING``, ``JOB_STATE_RUNNING``, ``RUNNING`` or an SDK enum."""
        if value is None:
            return cls.UNSPECIFIED
        text = str(getattr(value, "value", value)).upper()
        text = text.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
        text = _STATE_ALIASES.get(text, text)
        try:
            return cls(text)
        except ValueError:
            return cls.UNSPECIFIED

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def has_results(self) -> bool:
        """The job ended with a result file or inline responses to read."""
        return self in RESULT_STATES

    @property
    def wire(self) -> str:
        """The Developer API's spelling, as the emulator and the REST API use it."""
        return f"BATCH_STATE_{self.value}"


# States of the wire that are one of ours: a queued job is pending, one being cancelled still runs.
_STATE_ALIASES = {"QUEUED": "PENDING", "CANCELLING": "RUNNING"}
RESULT_STATES = frozenset({BatchState.SUCCEEDED, BatchState.PARTIALLY_SUCCEEDED})
TERMINAL_STATES = RESULT_STATES | {BatchState.FAILED, BatchState.CANCELLED, BatchState.EXPIRED}
LIVE_STATES = frozenset({BatchState.PENDING, BatchState.RUNNING})
# The API methods that create a batch job, as ``models.get`` lists them in supportedGenerationMethods.
BATCH_GENERATE_METHOD = "batchGenerateContent"
BATCH_EMBED_METHOD = "asyncBatchEmbedContent"


def _int(value: Any) -> int:
    """int64 counts travel as JSON strings; absent means zero."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class BatchStats:
    """Request counts of a job (``batchStats`` on the wire)."""

    request_count: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0

    @classmethod
    def from_api(cls, raw: dict[str, Any] | None) -> BatchStats:
        raw = raw or {}
        return cls(
            request_count=_int(raw.get("requestCount", raw.get("request_count"))),
            succeeded=_int(raw.get("successfulRequestCount", raw.get("successful_request_count"))),
            failed=_int(raw.get("failedRequestCount", raw.get("failed_request_count"))),
            pending=_int(raw.get("pendingRequestCount", raw.get("pending_request_count"))),
        )

    @property
    def done(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True)
class BatchJobInfo:
    """A batch job as one JSON-able record: what XCom, events and logs carry."""

    name: str
    state: BatchState
    display_name: str | None = None
    model: str | None = None
    create_time: str | None = None
    update_time: str | None = None
    end_time: str | None = None
    stats: BatchStats = field(default_factory=BatchStats)
    result_file: str | None = None
    inlined_responses: list[dict[str, Any]] | None = None
    error: str | None = None

    @classmethod
    def from_operation(cls, op: dict[str, Any]) -> BatchJobInfo:
        """Build from the Developer API's operation resource (``GET batches/{id}``)."""
        meta = op.get("metadata") or {}
        output = meta.get("output") or (op.get("response") or {})
        inlined = output.get("inlinedResponses") or output.get("inlined_responses")
        if isinstance(inlined, dict):
            inlined = inlined.get("inlinedResponses") or inlined.get("inlined_responses")
        error = op.get("error") or meta.get("error")
        return cls(
            name=op.get("name") or meta.get("name") or "",
            state=BatchState.parse(meta.get("state")),
            display_name=meta.get("displayName", meta.get("display_name")),
            model=meta.get("model"),
            create_time=meta.get("createTime", meta.get("create_time")),
            update_time=meta.get("updateTime", meta.get("update_time")),
            end_time=meta.get("endTime", meta.get("end_time")),
            stats=BatchStats.from_api(meta.get("batchStats", meta.get("batch_stats"))),
            result_file=output.get("responsesFile", output.get("responses_file")),
            inlined_responses=inlined,
            error=_error_text(error),
        )

    @property
    def created_at(self) -> float | None:
        """``create_time`` in epoch seconds (None when absent or unreadable)."""
        try:
            return datetime.fromisoformat(self.create_time).timestamp() if self.create_time else None
        except ValueError:
            return None

    def to_dict(self, *, include_inlined: bool = False) -> dict[str, Any]:
        """A JSON-able dict for XCom and trigger events (inline results are left out unless asked)."""
        data = asdict(self)
        data["state"] = self.state.value
        if not include_inlined:
            data.pop("inlined_responses")
            data["has_inlined_responses"] = self.inlined_responses is not None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchJobInfo:
        data = dict(data)
        data.pop("has_inlined_responses", None)
        data["state"] = BatchState.parse(data.get("state"))
        data["stats"] = BatchStats(**(data.get("stats") or {}))
        data.setdefault("inlined_responses", None)
        return cls(**data)


def _error_text(error: Any) -> str | None:
    if not error:
        return None
    if isinstance(error, dict):
        message = error.get("message") or ""
        status = error.get("status") or error.get("code")
        return f"{message} ({status})" if status and message else str(message or status)
    return str(error)
