"""The emulator's HTTP face: the Developer API's batch and file protocol, and the ``/_emulator/`` controls.

Paths are matched on their tail, so any API version (``v1``, ``v1beta``) and any base-path prefix work.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from airflow_provider_gemini.batch.wire import field
from airflow_provider_gemini.testing import _models, _responses
from airflow_provider_gemini.testing._state import (
    DEFAULT_SETTINGS,
    Emulated,
    Fault,
    Job,
    RequestItem,
    answer,
    new_id,
    now_iso,
    schema_problem,
)

CHUNK = 1 << 20
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# The operation's error for a job that ended without success: google.rpc code and status.
ENDING_ERRORS = {
    "FAILED": (13, "INTERNAL"),
    "EXPIRED": (4, "DEADLINE_EXCEEDED"),
    "CANCELLED": (1, "CANCELLED"),
}
Handler = Callable[[Request, "Emulator", re.Match[str]], Awaitable[Any]]


class ApiError(Exception):
    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.response = error_response(code, message, status)


def error_response(code: int, message: str, status: str | None = None) -> JSONResponse:
    error = {"code": code, "message": message, "status": status or STATUS_NAMES.get(code, "UNKNOWN")}
    return JSONResponse({"error": error}, status_code=code)


class EmulatedDrop(ConnectionAbortedError):
    """Raised to cut a response short, as a network failure would."""


def _quiet_drops(record: logging.LogRecord) -> bool:
    """uvicorn logs every aborted response as an application error; ours are on purpose."""
    return not (record.exc_info and isinstance(record.exc_info[1], EmulatedDrop))


logging.getLogger("uvicorn.error").addFilter(_quiet_drops)


@dataclass
class BodyStream:
    """Streams a body with its full Content-Length; with ``cut_after``, drops the connection after that
    many bytes, as a network failure mid-download would."""

    body_iter: Any
    length: int
    status: int = 200
    headers: dict[str, str] | None = None
    cut_after: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A client that goes away mid-body (a killed transfer) must not leave the stream running on
        # (with a chunk delay, for minutes), which would also hold up the server's shutdown.
        gone = asyncio.create_task(_disconnected(receive))
        try:
            headers = [(b"content-length", str(self.length).encode())]
            headers += [(k.lower().encode(), v.encode()) for k, v in (self.headers or {}).items()]
            await send({"type": "http.response.start", "status": self.status, "headers": headers})
            sent = 0
            async for chunk in self.body_iter:
                if gone.done():
                    return
                if self.cut_after is not None:
                    chunk = chunk[: max(0, self.cut_after - sent)]
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent += len(chunk)
                if self.cut_after is not None and sent >= self.cut_after:
                    raise EmulatedDrop("emulated dropped connection")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class Emulator:
    """Request handlers over one :class:`Emulated` state."""

    def __init__(self, state: Emulated) -> None:
        self.state = state
        self.fault: Fault | None = None  # the fault picked for the call being handled
        # Settling awaits the result file's writing; without this, a second GET in that gap would
        # settle the same job again and write its results twice.
        self.settling = asyncio.Lock()
        # Requests a fault holds: the list-call count that releases each, its release, its end.
        self.held: list[tuple[int, asyncio.Event, asyncio.Event]] = []

    # -- plumbing ------------------------------------------------------------------------------

    def url_for(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def check_key(self, request: Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise ApiError(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if self.state.api_key is not None and key != self.state.api_key:
            raise ApiError(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT")

    async def run(self, request: Request, operation: str, handler: Handler, match: re.Match[str]) -> Response:
        state = self.state
        state.calls[operation] += 1
        if operation == "lists":
            await self.release_held()
        latency = float(state.settings.get("latency_seconds") or 0)
        if latency:
            await asyncio.sleep(latency)
        fault = state.pick_fault(operation)
        held = await self.hold(request, fault)
        try:
            if operation != "upload_chunks":  # the session's upload URL stands in for the key
                self.check_key(request)
            if fault is not None:
                if fault.delay_seconds:
                    await asyncio.sleep(fault.delay_seconds)
                if fault.status:
                    raise ApiError(fault.status, f"Emulated fault: HTTP {fault.status} for {operation}")
                if fault.drop:
                    return BodyStream(_one(b"{}"), length=100, cut_after=0)  # type: ignore[return-value]
            self.fault = fault
            result = await handler(request, self, match)
        except ApiError as err:
            return err.response
        finally:
            if held is not None:
                held.set()
        if isinstance(result, (Response, BodyStream)):
            return result  # type: ignore[return-value]
        return JSONResponse(result)

    async def hold(self, request: Request, fault: Fault | None) -> asyncio.Event | None:
        """For a ``hold_until_lists`` fault: receive the request whole, then wait for its release.
        Returns the event to set once the request has been acted on."""
        if fault is None or not fault.hold_until_lists:
            return None
        await request.body()
        release, done = asyncio.Event(), asyncio.Event()
        self.held.append((self.state.calls["lists"] + fault.hold_until_lists, release, done))
        self.state.held_requests += 1
        try:
            await release.wait()
        finally:
            self.state.held_requests -= 1
        return done

    async def release_held(self, every: bool = False) -> None:
        """Act on the held requests this list call releases (``every``: all of them, when the faults
        are cleared or the state reset), before the call is answered."""
        due = [entry for entry in self.held if every or entry[0] <= self.state.calls["lists"]]
        for entry in due:
            self.held.remove(entry)
            entry[1].set()
        for _, _, done in due:
            await done.wait()

    def job(self, job_id: str) -> Job:
        job = self.state.jobs.get(job_id)
        if job is None or job.deleted:  # a deleted operation is gone for every call, get included
            raise ApiError(404, f"Batch batches/{job_id} not found.")
        return job

    def stored(self, file_id: str):
        stored = self.state.files.get(file_id)
        if stored is None:
            raise ApiError(404, f"File files/{file_id} not found.")
        return stored

    def cache(self, cache_id: str) -> dict[str, Any]:
        cache = self.state.cache(cache_id)
        if cache is None:
            raise ApiError(403, "CachedContent not found (or permission denied)", "PERMISSION_DENIED")
        return cache

    # -- jobs as resources ---------------------------------------------------------------------

    async def settle(self, job: Job) -> None:
        """Record the outcome (and write the output) the first time a job is seen finished, once."""
        if job.final_state or self.state.state_of(job) in ("PENDING", "RUNNING"):
            return
        async with self.settling:
            state = self.state.state_of(job)
            if job.final_state or state in ("PENDING", "RUNNING"):
                return  # settled by the call this one waited for
            if state == "SUCCEEDED":
                if job.inline:
                    job.inline_output = [  # metadata only as the request gave it: none is invented
                        {
                            **answer(job, item, self.state),
                            **({"metadata": item.metadata} if item.metadata else {}),
                        }
                        for item in job.items or []
                    ]
                else:
                    job.output_file = await asyncio.to_thread(self.write_results, job)
                self.state.end(job, "SUCCEEDED")
            elif state == "FAILED":
                self.state.end(job, "FAILED", job.outcome_error or "The batch failed (emulated).")
            else:
                self.state.end(job, state, job.outcome_error)

    def write_results(self, job: Job) -> str:
        fd, out = tempfile.mkstemp(dir=self.state.data_dir, prefix=".out-")
        with os.fdopen(fd, "w", encoding="utf-8") as sink:
            for item in iter_file_items(self.state, job.input_file or ""):
                line = {"key": item.key, **answer(job, item, self.state)}
                sink.write(json.dumps(line, ensure_ascii=False) + "\n")
        return self.state.add_file(
            Path(out),
            display_name=f"{job.display_name or job.id}-results",
            mime_type="application/jsonl",
            source="GENERATED",
        ).name

    def resource(self, job: Job) -> dict[str, Any]:
        state = self.state.state_of(job)
        ok, failed, pending = self.state.progress(job)
        kind = "EmbedContentBatch" if job.kind == "embed" else "GenerateContentBatch"
        metadata: dict[str, Any] = {
            "@type": f"type.googleapis.com/google.ai.generativelanguage.v1main.{kind}",
            "name": job.name,
            "displayName": job.display_name or "",
            "model": job.model,
            "state": f"BATCH_STATE_{state}",
            "createTime": now_iso(job.created),
            "updateTime": now_iso(job.ended or job.created),
            "batchStats": {
                "requestCount": str(job.request_count),
                "successfulRequestCount": str(ok),
                "failedRequestCount": str(failed),
                "pendingRequestCount": str(pending),
            },
        }
        data: dict[str, Any] = {"name": job.name, "metadata": metadata, "done": job.final_state is not None}
        if job.ended:
            metadata["endTime"] = now_iso(job.ended)
        if job.final_state == "SUCCEEDED":
            if job.inline:  # embeddings too: the SDK renames them on its side
                output: dict[str, Any] = {"inlinedResponses": {"inlinedResponses": job.inline_output or []}}
            else:
                output = {"responsesFile": job.output_file}
            metadata["output"] = output
            data["response"] = {"@type": f"{metadata['@type']}Output", **output}
        elif job.final_state in ENDING_ERRORS and job.final_error:
            code, status = ENDING_ERRORS[job.final_state]
            data["error"] = {"code": code, "message": job.final_error, "status": status}
        return data


async def _one(body: bytes):
    yield body


def parse_line(raw: bytes, index: int, state: Emulated) -> RequestItem:
    key = f"request-{index:06d}"
    try:
        line = json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        return RequestItem(key=key, metadata=None, request=None, failure="Invalid JSON in input line")
    request = None
    if isinstance(line, dict):
        key = str(line.get("key") or key)
        request = line.get("request")
    if not isinstance(request, dict):
        return RequestItem(key=key, metadata=None, request=None, failure="Input line has no request object")
    return RequestItem(key=key, metadata=None, request=request, failure=state.request_failure(key, request))


def iter_file_items(state: Emulated, file_name: str):
    with open(state.blob(file_name.removeprefix("files/")), "rb") as source:
        lines = (raw for raw in source if raw.strip())
        for index, raw in enumerate(lines, start=1):
            yield parse_line(raw, index, state)


# -- handlers ----------------------------------------------------------------------------------


async def upload_start(request: Request, emu: Emulator, match: re.Match[str]) -> Response:
    if request.headers.get("x-goog-upload-protocol", "").lower() != "resumable":
        raise ApiError(
            400, "Only the resumable upload protocol is emulated (X-Goog-Upload-Protocol: resumable)."
        )
    body = await request.json() if await request.body() else {}
    meta = body.get("file") or {}
    upload_id = new_id() + new_id()
    fd, path = tempfile.mkstemp(dir=emu.state.data_dir, prefix=".upload-")
    os.close(fd)
    emu.state.uploads[upload_id] = {
        "path": path,
        "display_name": field(meta, "displayName", "display_name"),
        "mime_type": field(meta, "mimeType", "mime_type"),
    }
    prefix = match.group("prefix") or ""
    url = f"{emu.url_for(request)}/{prefix}_upload/{upload_id}"
    return JSONResponse({}, headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})


async def upload_chunk(request: Request, emu: Emulator, match: re.Match[str]) -> Response:
    upload = emu.state.uploads.get(match.group("id"))
    if upload is None:
        raise ApiError(404, "Upload session not found or already finished.")
    command = request.headers.get("x-goog-upload-command", "")
    with open(upload["path"], "ab") as sink:
        async for chunk in request.stream():
            sink.write(chunk)
    if "finalize" not in command:
        return JSONResponse({}, headers={"X-Goog-Upload-Status": "active"})
    emu.state.uploads.pop(match.group("id"))
    emu.state.calls["uploads"] += 1
    stored = emu.state.add_file(
        Path(upload["path"]),
        display_name=upload["display_name"],
        mime_type=upload["mime_type"],
        source="UPLOADED",
    )
    return JSONResponse(
        {"file": stored.resource(emu.url_for(request))}, headers={"X-Goog-Upload-Status": "final"}
    )


async def file_get(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    return emu.stored(match.group("id")).resource(emu.url_for(request))


async def file_delete(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    emu.stored(match.group("id"))
    emu.state.delete_file(match.group("id"))
    return {}


async def file_list(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    files = sorted(emu.state.files.values(), key=lambda f: f.created, reverse=True)
    page, more = _page(files, request, default=10, cap=100)  # the API's file list: 10 a page, 100 at most
    return {"files": [f.resource(emu.url_for(request)) for f in page], **more}


async def file_download(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    stored = emu.stored(match.group("id"))
    if stored.source != "GENERATED":
        raise ApiError(400, "Only generated files can be downloaded; uploaded files cannot.")
    start = 0
    status = 200
    headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
    if ranged := re.fullmatch(r"bytes=(\d+)-", request.headers.get("range", "")):
        start = min(int(ranged.group(1)), stored.size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stored.size - 1}/{stored.size}"
    fault = emu.fault
    body = _read_file(emu.state.blob(stored.id), start, fault.chunk_delay_seconds if fault else 0.0)
    cut_after = fault.drop_after_bytes if fault else None
    return BodyStream(body, length=stored.size - start, status=status, headers=headers, cut_after=cut_after)


async def _read_file(path: Path, start: int, delay: float):
    with open(path, "rb") as source:
        source.seek(start)
        while chunk := source.read(CHUNK if not delay else 16 * 1024):
            yield chunk
            if delay:
                await asyncio.sleep(delay)


def _inline_items(emu: Emulator, raw_items: list[Any], *, embed: bool) -> list[RequestItem]:
    items = []
    for index, raw in enumerate(raw_items, start=1):
        raw = raw if isinstance(raw, dict) else {}
        metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else None
        key = str((metadata or {}).get("key") or f"request-{index:06d}")
        request = raw.get("request") if isinstance(raw.get("request"), dict) else None
        if problem := schema_problem(request):  # the create's body does not parse: refused whole
            where = f"batch.input_config.requests.requests[{index - 1}].request.generation_config"
            raise ApiError(400, f"Invalid value at '{where}': {problem}", "INVALID_ARGUMENT")
        if request is None:
            failure: str | None = "Request is missing"
        elif not embed and not field(request, "contents"):
            failure = "* GenerateContentRequest.contents: contents is not specified"
        else:
            failure = emu.state.request_failure(key, request)
        items.append(RequestItem(key=key, metadata=metadata, request=request, failure=failure))
    return items


async def create_batch(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    method = match.group(0).rpartition(":")[2]  # batchGenerateContent or asyncBatchEmbedContent
    embed = method == "asyncBatchEmbedContent"
    supported = _models.methods(match.group("model"), emu.state.settings)
    if supported is None or method not in supported:
        raise ApiError(404, _models.not_found(match.group("model"), _version(request), method), "NOT_FOUND")
    body = await request.json()
    batch = field(body, "batch") or {}
    config = field(batch, "inputConfig", "input_config") or {}
    display_name = field(batch, "displayName", "display_name")
    # The reference marks batch.displayName "Required". The SDK does not make one up for the
    # Developer API (it generates a default on Vertex only), so a client that omits it sends none;
    # we refuse it as the reference reads, since a name the emulator accepts but Google refuses
    # would fail only in production. Proto3 cannot tell "" from unset: an empty name is missing too.
    if not display_name:
        request_type = "AsyncBatchEmbedContentRequest" if embed else "BatchGenerateContentRequest"
        raise ApiError(
            400, f"* {request_type}.batch.display_name: display_name is required", "INVALID_ARGUMENT"
        )
    file_name = field(config, "fileName", "file_name")
    inline = field(config, "requests")
    if isinstance(inline, dict):
        inline = field(inline, "requests")
    if (file_name is None) == (inline is None):
        raise ApiError(400, "Exactly one of input_config.file_name or input_config.requests must be set.")
    if inline is not None:
        parsed = _inline_items(emu, list(inline), embed=embed)
        input_file = None
    else:
        stored = emu.stored(str(file_name).removeprefix("files/"))
        parsed = await asyncio.to_thread(lambda: list(iter_file_items(emu.state, stored.name)))
        input_file = stored.name
    job = emu.state.new_job(
        kind="embed" if embed else "generate",
        model=f"models/{match.group('model')}",
        display_name=display_name,
        items=parsed if input_file is None else None,  # a file job reads its requests again at the end
        input_file=input_file,
        request_count=len(parsed),
        failed_count=sum(1 for item in parsed if item.failure),
    )
    await emu.settle(job)  # a zero-second clock ends the job at once
    return emu.resource(job)


def _version(request: Request) -> str:
    return request.url.path.strip("/").split("/")[0]


async def model_get(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    supported = _models.methods(match.group("model"), emu.state.settings)
    if supported is None:
        raise ApiError(404, _models.not_found(match.group("model"), _version(request), "get"), "NOT_FOUND")
    return _models.resource(match.group("model"), supported)


async def batch_get(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    job = emu.job(match.group("id"))
    await emu.settle(job)
    answer = emu.resource(job)
    emu.state.clock.advance(emu.state.clock.step_per_get)
    return answer


async def batch_list(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    jobs = sorted(
        (j for j in emu.state.jobs.values() if not j.deleted), key=lambda j: j.created, reverse=True
    )
    # The reference gives batches.list's pageSize no default and no maximum ("the standard list page
    # size"); we use the file list's documented 10 and 100, the smallest this API states for a list,
    # so a client that ignores nextPageToken breaks here before it breaks against Google.
    page, more = _page(jobs, request, default=10, cap=100)
    for job in page:
        await emu.settle(job)
    return {"operations": [emu.resource(j) for j in page], **more}


async def batch_cancel(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    job = emu.job(match.group("id"))
    await emu.settle(job)
    if job.final_state:
        raise ApiError(
            400,
            f"Batch {job.name} is already {job.final_state} and cannot be cancelled.",
            "FAILED_PRECONDITION",
        )
    emu.state.end(job, "CANCELLED", "The batch was cancelled.")  # the API sets error code 1 (CANCELLED)
    return {}


async def batch_delete(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    # The reference: delete "indicates that the client is no longer interested in the operation
    # result. It does not cancel the operation." So a live job is not cancelled (its work goes on,
    # and it still counts among the account's live jobs), while the operation resource is gone: get,
    # list, cancel and a second delete answer as for a name that never existed (404 NOT_FOUND). The
    # SDK agrees: delete returns nothing to read the job by afterwards.
    job = emu.job(match.group("id"))
    emu.state.delete_job(job)
    return {}


# -- context caches ----------------------------------------------------------------------------

MIN_CACHE_TOKENS = 1024  # the API refuses smaller caches (2.5 Flash's minimum; Pro's is higher)


def _cache_resource(cache: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": cache["name"],
        "model": cache["model"],
        "displayName": cache["displayName"],
        "createTime": now_iso(cache["created"]),
        "updateTime": now_iso(cache["created"]),
        "expireTime": now_iso(cache["expires"]),
        "usageMetadata": {"totalTokenCount": cache["tokens"]},
    }


async def cache_create(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    body = await request.json()
    model = field(body, "model")
    if not model:
        raise ApiError(400, "* CreateCachedContentRequest.cached_content.model: model is required")
    instruction = field(body, "systemInstruction", "system_instruction") or {}
    text = _responses.prompt_text({"contents": [instruction, *(field(body, "contents") or [])]})
    tokens = _responses.tokens(text) if text else 0
    if tokens < MIN_CACHE_TOKENS:
        raise ApiError(
            400,
            f"Cached content is too small. total_token_count={tokens}, "
            f"min_total_token_count={MIN_CACHE_TOKENS}",
        )
    ttl = str(field(body, "ttl") or "3600s").removesuffix("s")
    created = emu.state.clock.now()
    cache_id = new_id()
    cache = {
        "id": cache_id,
        "name": f"cachedContents/{cache_id}",
        "model": model if str(model).startswith("models/") else f"models/{model}",
        "displayName": field(body, "displayName", "display_name") or "",
        "tokens": tokens,
        "created": created,
        "expires": created + float(ttl),
    }
    emu.state.caches[cache_id] = cache
    emu.state.caches_created += 1
    return _cache_resource(cache)


async def cache_get(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    return _cache_resource(emu.cache(match.group("id")))


async def cache_delete(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    emu.state.caches.pop(emu.cache(match.group("id"))["id"])
    return {}


async def cache_list(request: Request, emu: Emulator, match: re.Match[str]) -> Any:
    caches = [c for c in list(emu.state.caches.values()) if emu.state.cache(c["id"])]
    page, more = _page(caches, request)
    return {"cachedContents": [_cache_resource(c) for c in page], **more}


def _page(
    items: list[Any], request: Request, default: int = 50, cap: int = 1000
) -> tuple[list[Any], dict[str, str]]:
    """One page of ``items``, and the ``nextPageToken`` field to answer with it (none on the last page)."""
    size = int(request.query_params.get("pageSize") or request.query_params.get("page_size") or default)
    start = int(request.query_params.get("pageToken") or request.query_params.get("page_token") or 0)
    end = start + max(1, min(size, cap))
    return items[start:end], ({"nextPageToken": str(end)} if end < len(items) else {})


API_ROUTES: list[tuple[str, str, str, Handler]] = [
    ("POST", r"(?:.*/)?_upload/(?P<id>[A-Za-z0-9]+)", "upload_chunks", upload_chunk),
    ("POST", r"(?P<prefix>(?:.*/)?)upload/[^/]+/files", "upload_starts", upload_start),
    ("GET", r"(?:.*/)?(?:download/)?[^/]+/files/(?P<id>[^/:]+):download", "downloads", file_download),
    ("GET", r"(?:.*/)?[^/]+/files/(?P<id>[^/:]+)", "file_gets", file_get),
    ("DELETE", r"(?:.*/)?[^/]+/files/(?P<id>[^/:]+)", "file_deletes", file_delete),
    ("GET", r"(?:.*/)?[^/]+/files", "file_lists", file_list),
    ("POST", r"(?:.*/)?[^/]+/models/(?P<model>[^/:]+):batchGenerateContent", "creates", create_batch),
    ("GET", r"(?:.*/)?[^/]+/models/(?P<model>[^/:]+)", "model_gets", model_get),
    ("POST", r"(?:.*/)?[^/]+/models/(?P<model>[^/:]+):asyncBatchEmbedContent", "embed_creates", create_batch),
    ("POST", r"(?:.*/)?[^/]+/batches/(?P<id>[^/:]+):cancel", "cancels", batch_cancel),
    ("GET", r"(?:.*/)?[^/]+/batches/(?P<id>[^/:]+)", "gets", batch_get),
    ("DELETE", r"(?:.*/)?[^/]+/batches/(?P<id>[^/:]+)", "deletes", batch_delete),
    ("GET", r"(?:.*/)?[^/]+/batches", "lists", batch_list),
    ("POST", r"(?:.*/)?[^/]+/cachedContents", "cache_creates", cache_create),
    ("GET", r"(?:.*/)?[^/]+/cachedContents/(?P<id>[^/:]+)", "cache_gets", cache_get),
    ("DELETE", r"(?:.*/)?[^/]+/cachedContents/(?P<id>[^/:]+)", "cache_deletes", cache_delete),
    ("GET", r"(?:.*/)?[^/]+/cachedContents", "cache_lists", cache_list),
]
COMPILED = [(method, re.compile(pattern), op, handler) for method, pattern, op, handler in API_ROUTES]


# -- control API -------------------------------------------------------------------------------


async def control(request: Request, emu: Emulator, action: str) -> Response:
    state = emu.state
    method = request.method
    if action == "reset" and method == "POST":
        await emu.release_held(every=True)
        state.reset()
        return JSONResponse({})
    if action == "stats" and method == "GET":
        return JSONResponse(state.stats())
    if action == "clock":
        if method == "POST":
            raw = await request.json()
            if unknown := set(raw) - {"frozen", "advance_seconds", "step_per_get"}:
                return error_response(400, f"Unknown clock fields: {sorted(unknown)}")
            seconds = float(raw.get("advance_seconds") or 0)
            step = float(raw.get("step_per_get", state.clock.step_per_get) or 0)
            if seconds < 0 or step < 0:
                return error_response(400, "The emulator's clock only moves forward.")
            if raw.get("frozen") is True:
                state.clock.freeze()
            elif raw.get("frozen") is False:
                state.clock.unfreeze()
            state.clock.advance(seconds)
            state.clock.step_per_get = step
        clock = state.clock
        return JSONResponse({"now": clock.now(), "frozen": clock.frozen, "step_per_get": clock.step_per_get})
    if action == "config":
        if method == "POST":
            updates = await request.json()
            if unknown := set(updates) - set(DEFAULT_SETTINGS):
                return error_response(400, f"Unknown settings: {sorted(unknown)}")
            state.settings.update(updates)
        return JSONResponse(state.settings)
    if action == "faults":
        if method == "POST":
            raw = await request.json()
            if unknown := set(raw) - {f.name for f in fields(Fault)}:
                return error_response(400, f"Unknown fault fields: {sorted(unknown)}")
            state.faults.append(Fault(**raw))
        elif method == "DELETE":
            state.faults.clear()
            await emu.release_held(every=True)
        return JSONResponse({"faults": [asdict(f) for f in state.faults]})
    if action in ("files:synthesize", "batches:synthesize") and method == "POST":
        raw = await request.json()
        embed = action == "batches:synthesize" and raw.get("kind") == "embed"
        dims = int(raw.get("dimensions", 768)) if embed else None
        stored = await asyncio.to_thread(
            synthesize, state, int(raw["size_bytes"]), int(raw.get("line_bytes", 1000)), dims
        )
        if action == "files:synthesize":
            return JSONResponse(stored.resource(emu.url_for(request)))
        synthetic = state.new_job(
            kind="embed" if embed else "generate",
            model=f"models/{raw.get('model', 'gemini-2.5-flash')}",
            display_name=raw.get("display_name", "synthesized"),
            items=None,
            input_file=None,
            request_count=stored.lines,
            failed_count=0,
        )
        synthetic.output_file = stored.name
        state.end(synthetic, "SUCCEEDED")
        return JSONResponse(emu.resource(synthetic))
    if action == "batches:history" and method == "POST":
        raw = await request.json()
        state.add_history(int(raw["count"]), float(raw.get("days", 30)))
        return JSONResponse({"jobs": sum(1 for job in state.jobs.values() if not job.deleted)})
    page = re.fullmatch(r"batches/(?P<id>[^/:]+)", action)
    if page and method == "GET":  # the job as a person reads it: where the extra link points
        shown = state.jobs.get(page.group("id"))
        if shown is None or shown.deleted:
            return error_response(404, f"Batch batches/{page.group('id')} not found.")
        await emu.settle(shown)
        return HTMLResponse(job_page(emu.resource(shown)))
    outcome = re.fullmatch(r"batches/(?P<id>[^/:]+):outcome", action)
    if outcome and method == "POST":
        job = state.jobs.get(outcome.group("id"))
        if job is None:
            return error_response(404, f"Batch batches/{outcome.group('id')} not found.")
        raw = await request.json()
        target = str(raw["state"]).upper().removeprefix("BATCH_STATE_")
        if target == "SUCCEEDED":
            job.pending_seconds = job.running_seconds = 0
            job.outcome = "SUCCEEDED"
            await emu.settle(job)
        else:
            state.end(job, target, raw.get("error"))
        return JSONResponse(emu.resource(job))
    return error_response(404, f"No emulator control {method} {action}")


def job_page(resource: dict[str, Any]) -> str:
    """A small HTML page of one job: name, display name, model, state, progress, times, error."""
    meta = resource["metadata"]
    stats = meta.get("batchStats", {})
    rows = {
        "Display name": meta.get("displayName"),
        "Model": meta.get("model"),
        "State": meta.get("state", "").removeprefix("BATCH_STATE_"),
        "Requests": stats.get("requestCount"),
        "Succeeded": stats.get("successfulRequestCount"),
        "Failed": stats.get("failedRequestCount"),
        "Pending": stats.get("pendingRequestCount"),
        "Created": meta.get("createTime"),
        "Ended": meta.get("endTime"),
        "Error": (resource.get("error") or {}).get("message"),
    }
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items() if v
    )
    title = html.escape(resource["name"])
    return f"<!doctype html><title>{title}</title><h1>{title}</h1><table>{cells}</table>"


def synthesize(state: Emulated, size_bytes: int, line_bytes: int, dimensions: int | None = None):
    """A result-shaped JSONL file of at least ``size_bytes``, written fast from one rendered block:
    text answers of about ``line_bytes`` each, or (``dimensions``) embeddings of that length."""
    if dimensions:
        vector = ", ".join(f"{value:.9f}" for value in _responses.embedding("synthesized", dimensions))
        template = '{"key": "k%010d", "response": {"embedding": {"values": [' + vector + "]}}}\n"
    else:
        filler = "x" * max(1, line_bytes - 200)
        template = (
            '{"key": "k%010d", "response": {"candidates": [{"content": {"parts": [{"text": "'
            + filler
            + '"}], '
            '"role": "model"}, "finishReason": "STOP", "index": 0}], '
            '"usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 20, "totalTokenCount": 30}}}\n'
        )
    fd, path = tempfile.mkstemp(dir=state.data_dir, prefix=".synth-")
    written = index = 0
    with os.fdopen(fd, "wb") as sink:
        while written < size_bytes:
            block = "".join(template % (index + i) for i in range(1000)).encode()
            sink.write(block)
            written += len(block)
            index += 1000
    stored = state.add_file(
        Path(path), display_name="synthesized-results", mime_type="application/jsonl", source="GENERATED"
    )
    stored.lines = index
    return stored


def build_app(state: Emulated) -> Starlette:
    emu = Emulator(state)

    async def dispatch(request: Request) -> Response:
        path = request.url.path.lstrip("/")
        if "_emulator/" in path:
            return await control(request, emu, path.split("_emulator/", 1)[1])
        for method, pattern, operation, handler in COMPILED:
            if request.method == method and (m := pattern.fullmatch(path)):
                return await emu.run(request, operation, handler, m)
        return error_response(404, f"Method not found: {request.method} /{path}")

    methods = ["GET", "POST", "DELETE", "PATCH", "PUT"]
    return Starlette(routes=[Route("/{path:path}", dispatch, methods=methods)])
