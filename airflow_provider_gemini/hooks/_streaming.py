"""Read a result file line by line from its HTTP stream, in bounded memory, never silently short.

The SDK's ``files.download`` holds a whole file in memory; result files reach gigabytes. A dropped
connection resumes from the last complete line (``Range``) while attempts remain, then fails loudly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import httpx

from airflow_provider_gemini.batch.errors import TRANSIENT_HTTP_CODES, GeminiApiError, ResultsDownloadError

READ_SIZE = 1 << 20


def stream_blocks(
    client: httpx.Client,
    url: str,
    *,
    headers: dict[str, str],
    name: str,
    attempts: int = 5,
    initial_delay: float = 1.0,
    max_delay: float = 30.0,
) -> Iterator[bytes]:
    """Yield blocks of whole lines (each block ends with a newline), resuming after transient failures.

    Blocks let a caller that copies bytes skip per-line work; a dropped connection resumes from the
    end of the last complete line, so no line is ever yielded twice or cut.

    :param name: the file's name, for error messages.
    """
    offset = 0  # bytes of the file consumed as complete lines
    expected: int | None = None
    failures = 0
    while True:
        pending = b""
        request_headers = dict(headers)
        if offset:
            request_headers["Range"] = f"bytes={offset}-"
        try:
            with client.stream("GET", url, headers=request_headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _api_error(response, name)
                skip = offset if (offset and response.status_code == 200) else 0  # Range ignored
                length = response.headers.get("content-length")
                if length is not None:
                    expected = offset - skip + int(length)
                for chunk in response.iter_bytes(READ_SIZE):
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                        if not chunk:
                            continue
                    pending += chunk
                    cut = pending.rfind(b"\n") + 1
                    if cut:
                        block, pending = pending[:cut], pending[cut:]
                        offset += len(block)
                        yield block
            if pending:
                offset += len(pending)
                yield pending + b"\n"
            if expected is not None and offset < expected:
                raise ResultsDownloadError(f"{name}: got {offset} of {expected} bytes")
            return
        except (httpx.TransportError, GeminiApiError) as err:
            transient = isinstance(err, httpx.TransportError) or err.code in TRANSIENT_HTTP_CODES
            failures += 1
            if not transient:
                raise
            if failures >= attempts:
                got = offset + len(pending)
                total = f" of {expected}" if expected is not None else ""
                raise ResultsDownloadError(
                    f"Reading {name} failed after {failures} attempts: {type(err).__name__}: {err} "
                    f"(received {got}{total} bytes; nothing was reported as complete)"
                ) from None
            delay = min(max_delay, initial_delay * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
            time.sleep(delay)


def _api_error(response: httpx.Response, name: str) -> GeminiApiError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    status = error.get("status")
    message = error.get("message") or response.reason_phrase
    return GeminiApiError(
        f"Gemini API error {response.status_code} {status or ''} on download {name}: {message}".replace(
            "  ", " "
        ),
        code=response.status_code,
        status=status,
    )
