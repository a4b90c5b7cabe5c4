"""Read a result file from its HTTP stream as blocks of whole lines, in bounded memory, never short.

The SDK's ``files.download`` holds a whole file in memory; result files reach gigabytes. Here the
body is read with the standard library straight into one reused buffer (``readinto``): about a
quarter of the CPU of an httpx stream, which parses and copies every 64 KB piece in Python, and CPU
the counting of the raw passthrough needs. A dropped connection resumes from the last complete line
(``Range``) while attempts remain, then fails loudly.
"""

from __future__ import annotations

import http.client
import json
import random
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from typing import IO

from airflow_provider_gemini.batch.errors import GeminiApiError, ResultsDownloadError, is_transient

READ_SIZE = 1 << 20
CREDENTIAL_HEADERS = ("x-goog-api-key", "authorization")


class _ShortBody(ConnectionError):
    """The connection closed before the announced length arrived."""


def stream_blocks(
    opener: urllib.request.OpenerDirector,
    url: str,
    *,
    headers: dict[str, str],
    name: str,
    timeout: float,
    attempts: int = 5,
    initial_delay: float = 1.0,
    max_delay: float = 30.0,
) -> Iterator[bytes]:
    """Yield blocks of whole lines (each block ends with a newline), resuming after transient failures.

    Blocks let a caller that copies bytes skip per-line work; a dropped connection resumes from the
    end of the last complete line, so no line is ever yielded twice or cut.

    :param opener: ``urllib`` opener (TLS context, proxies from the environment).
    :param name: the file's name, for error messages.
    """
    offset = 0  # bytes of the file yielded, as complete lines
    expected: int | None = None
    failures = 0
    buffer = bytearray(READ_SIZE)
    view = memoryview(buffer)
    while True:
        pending: list[bytes] = []  # the start of a line that continues in the next read
        request_headers = {**headers, "Range": f"bytes={offset}-"} if offset else dict(headers)
        try:
            with _open(opener, url, request_headers, name, timeout) as response:
                ignored_range = bool(offset) and response.status == 200  # the whole file again
                if ignored_range:
                    _discard(response, offset, view)
                length = response.headers.get("content-length")
                if length is not None:
                    expected = int(length) + (0 if ignored_range else offset)
                while size := response.readinto(view):
                    cut = buffer.rfind(b"\n", 0, size) + 1
                    if not cut:
                        pending.append(bytes(view[:size]))
                        continue
                    block = b"".join((*pending, view[:cut]))
                    pending = [bytes(view[cut:size])] if cut < size else []
                    offset += len(block)
                    yield block
            rest = b"".join(pending)
            if expected is not None and offset + len(rest) < expected:
                raise _ShortBody(f"the connection closed at byte {offset + len(rest)} of {expected}")
            if rest:  # a last line without a newline
                offset += len(rest)
                yield rest + b"\n"
            return
        except (OSError, http.client.HTTPException, GeminiApiError) as err:
            failures += 1
            if not is_transient(err):
                raise
            if failures >= attempts:
                total = f" of {expected}" if expected is not None else ""
                raise ResultsDownloadError(
                    f"Reading {name} failed after {failures} attempts: {type(err).__name__}: {err} "
                    f"(received {offset}{total} bytes as whole lines; nothing was reported as complete)"
                ) from None
            delay = min(max_delay, initial_delay * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
            time.sleep(delay)


def download_opener(context: ssl.SSLContext) -> urllib.request.OpenerDirector:
    """A ``urllib`` opener (proxies from the environment) whose redirects to another host carry no
    credentials: the API key stays with the host it was given to."""
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _SameHostCredentials)


class _SameHostCredentials(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        elsewhere = urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc
        if new is not None and elsewhere:
            for name in CREDENTIAL_HEADERS:
                new.remove_header(name.capitalize())  # urllib keeps header names capitalized
        return new


def split_lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of blocks of whole lines, without their line ends."""
    for block in blocks:
        # [:-1]: leave out the empty rest after the block's last newline
        yield from (line.removesuffix(b"\r") for line in block.split(b"\n")[:-1])


def _open(
    opener: urllib.request.OpenerDirector, url: str, headers: dict[str, str], name: str, timeout: float
) -> http.client.HTTPResponse:
    try:
        return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        with err:
            raise _api_error(err.code, err.reason, err.read(), name) from None


def _discard(response: http.client.HTTPResponse, count: int, view: memoryview) -> None:
    while count > 0:
        size = response.readinto(view[: min(count, len(view))])
        if not size:
            raise _ShortBody(f"the connection closed {count} bytes before the resume point")
        count -= size


def _api_error(code: int, reason: object, body: bytes, name: str) -> GeminiApiError:
    try:
        error = json.loads(body).get("error", {})
    except (ValueError, AttributeError):
        error = {}
    return GeminiApiError.answered(
        f"download {name}", code, error.get("status"), error.get("message") or reason
    )
