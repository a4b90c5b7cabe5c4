"""Exceptions a user may want to catch. Messages are finished sentences and never carry a secret."""

from __future__ import annotations

import http.client
import ssl
import urllib.error


class GeminiBatchError(Exception):
    """Base class of every error this provider raises on purpose."""


class GeminiApiError(GeminiBatchError):
    """The Gemini API answered with an error that retrying will not fix (or retries ran out)."""

    def __init__(self, message: str, *, code: int | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    @classmethod
    def answered(cls, what: str, code: int | None, status: str | None, message: object) -> GeminiApiError:
        """The API's error answer to ``what`` (``get batches/x``) as a finished sentence."""
        text = f"Gemini API error {code} {status or ''} on {what}: {message}"
        return cls(text.replace("  ", " "), code=code, status=status)


class BatchInputError(GeminiBatchError, ValueError):
    """The batch input is invalid; raised before anything is uploaded or paid for."""

    def __init__(self, reason: str, *, source: str | None = None, line: int | None = None) -> None:
        where = source or "input"
        if line is not None:
            where = f"{where}, line {line}"
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.source = source
        self.line = line


class EmptyInputError(BatchInputError):
    """The input holds no request (an empty file or table, or every record skipped)."""


class BatchJobError(GeminiBatchError):
    """A batch job ended badly: failed, cancelled, expired, or too many failed requests."""

    def __init__(self, message: str, *, batch_name: str | None = None, state: str | None = None) -> None:
        super().__init__(message)
        self.batch_name = batch_name
        self.state = state


class ResultsDownloadError(GeminiBatchError):
    """A result file could not be read whole (for example the connection dropped mid-stream)."""


class ResultsFormatError(GeminiBatchError):
    """A result line could not be read (not JSON, or no key)."""


# HTTP codes worth another try: the SDK retries these itself; a waiter that outlives its retries
# backs off and polls again rather than failing a day-long wait on a passing fault.
TRANSIENT_HTTP_CODES = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT_CLASS_NAMES = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "ReadError",
        "ReadTimeout",
        "RemoteProtocolError",
        "WriteError",
        "PoolTimeout",
        "ClientConnectionError",
        "ClientConnectorError",
        "ClientOSError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "ClientPayloadError",
    }
)


def is_transient(error: BaseException) -> bool:
    """True for failures a later try may not meet: throttling, server errors, network trouble.

    The one classifier for every wait (``batch.polling``) and for resuming result downloads. A refused
    certificate is not transient: it will be refused again.
    """
    if isinstance(error, (GeminiApiError, urllib.error.HTTPError)):
        return error.code in TRANSIENT_HTTP_CODES
    if isinstance(error, ssl.SSLCertVerificationError):
        return False
    if isinstance(error, urllib.error.URLError):
        # urllib wraps what went wrong reaching the host (refused, reset, DNS, TLS) in ``reason``.
        return not isinstance(error.reason, ssl.SSLCertVerificationError)
    code = getattr(error, "code", None)
    if isinstance(code, int) and code in TRANSIENT_HTTP_CODES:
        return True
    if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError, http.client.HTTPException)):
        return True
    # httpx and aiohttp errors, recognised by name so this module imports neither.
    return any(cls.__name__ in _TRANSIENT_CLASS_NAMES for cls in type(error).__mro__)
