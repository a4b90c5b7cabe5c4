"""GeminiHook: a ``gemini`` connection turned into google-genai clients, and every API call we make."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import os
import ssl
import weakref
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

from airflow_provider_gemini._compat import BaseHook, connection_form_widgets, ui_field_behaviour
from airflow_provider_gemini.batch.errors import GeminiApiError
from airflow_provider_gemini.batch.jobs import BATCH_EMBED_METHOD, BATCH_GENERATE_METHOD, BatchJobInfo
from airflow_provider_gemini.hooks._settings import GeminiSettings

if TYPE_CHECKING:
    import urllib.request

    from google.genai import Client
    from google.genai.client import AsyncClient


# One async client per event loop and connection: a triggerer runs hundreds of triggers in one loop,
# and a google-genai client (with its TLS context and connection pool) costs megabytes.
_ClientsByConn = dict[str, tuple[GeminiSettings, Any]]
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ClientsByConn]
_ASYNC_CLIENTS = weakref.WeakKeyDictionary()


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context (the CA bundle loaded once) for every client this process makes.

    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are honoured, as the SDK does; contexts are thread-safe.
    """
    import certifi

    return ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE", certifi.where()), capath=os.environ.get("SSL_CERT_DIR")
    )


def _quiet_transport_log() -> None:
    """Keep the SDK transport's line per request out of task logs, as with every google-genai version.

    google-genai 3 sends through httpx2 by default (2.x and older through httpx). Airflow quiets the ``httpx``
    logger but not ``httpx2``, which logs ``HTTP Request: <method> <url>`` at INFO: a line per poll, and
    an upload's URL carries its upload id. A level the deployment set itself is left alone.
    """
    logger = logging.getLogger("httpx2")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


def _resource(collection: str, name: str) -> str:
    """``files/x`` from ``x`` or ``files/x`` (likewise ``batches/``, ``models/``)."""
    return name if name.startswith(f"{collection}/") else f"{collection}/{name}"


class GeminiHook(BaseHook):
    """Talks to the Gemini API through the official ``google-genai`` SDK.

    The connection's password is the Developer API key; extras set ``base_url`` (a proxy or the
    local emulator), ``api_version``, ``timeout`` and retries of transient errors
    (``retry_attempts``, ``retry_initial_delay``, ``retry_max_delay``). Vertex AI batch prediction is
    not supported yet: a connection with ``vertexai`` set fails at first use, before any call.

    Every method returns plain data (dicts, :class:`BatchJobInfo`), never SDK objects. API errors
    that retrying will not fix raise :class:`GeminiApiError` with the API's own message.

    :param gemini_conn_id: the Airflow connection to use.
    """

    conn_name_attr = "gemini_conn_id"
    default_conn_name = "gemini_default"
    conn_type = "gemini"
    hook_name = "Gemini"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields on Airflow 3.0 and 3.1 (3.2+ read ``conn-fields`` instead)."""
        return connection_form_widgets(cls.conn_type)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form's labels on Airflow 3.0 and 3.1, from ``ui-field-behaviour`` in the provider info."""
        return ui_field_behaviour(cls.conn_type)

    def __init__(self, gemini_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gemini_conn_id = gemini_conn_id
        self._settings: GeminiSettings | None = None
        self._async_client: AsyncClient | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gemini_conn_id={self.gemini_conn_id!r})"

    @classmethod
    def for_key(cls, api_key: str | None, base_url: str | None = None, name: str = "llm_batch") -> GeminiHook:
        """A hook on an API key (and endpoint) rather than a connection: for callers, like common.ai's
        batch adapters, that are handed those two fields and no connection id."""
        hook = cls(gemini_conn_id=name)
        hook._settings = GeminiSettings(api_key=api_key, base_url=base_url.rstrip("/") if base_url else None)
        return hook

    # -- connection and clients ----------------------------------------------------------------

    @property
    def settings(self) -> GeminiSettings:
        if self._settings is None:
            self._settings = self._read_settings(self.get_connection(self.gemini_conn_id))
        return self._settings

    def _read_settings(self, conn: Any) -> GeminiSettings:
        """The connection's settings; Vertex AI mode is refused: its batch API (batchPredictionJobs) is
        not built yet, and a half-working branch would fail later, after money was spent."""
        settings = GeminiSettings.from_connection(conn.password, conn.extra_dejson)
        if settings.vertexai:
            raise GeminiApiError(
                f"Connection {self.gemini_conn_id!r} asks for Vertex AI (extra 'vertexai'), and Vertex AI "
                "batch prediction is not supported by this provider yet; nothing was submitted. Use a "
                "Gemini Developer API key (the connection's password) without 'vertexai', or the Google "
                "provider's Vertex AI batch prediction operators. A retry fails the same way."
            )
        return settings

    def _new_client(self, settings: GeminiSettings) -> Client:
        from google import genai

        kwargs = settings.client_kwargs()
        # Left alone, the SDK loads the CA bundle three times per client (~0.1 s of every task).
        context = shared_ssl_context()
        kwargs["http_options"]["client_args"] = {"verify": context}
        kwargs["http_options"]["async_client_args"] = {"verify": context, "ssl": context}
        _quiet_transport_log()
        return genai.Client(**kwargs)

    @cached_property
    def _client(self) -> Client:
        return self._new_client(self.settings)

    def close(self) -> None:
        """Close the SDK client, if one was built (it is built on first use)."""
        client = self.__dict__.pop("_client", None)
        close = getattr(client, "close", None)
        if callable(close):
            close()

    def get_conn(self) -> Client:
        """The sync client, built once per hook."""
        return self._client

    async def aget_conn(self) -> AsyncClient:
        """The async client (``client.aio``), shared by every hook of this connection in this event loop.

        The connection is read and the client built without blocking the loop.
        """
        if self._async_client is None:
            if self._settings is None:
                self._settings = self._read_settings(await self.aget_connection(self.gemini_conn_id))
            clients = _ASYNC_CLIENTS.setdefault(asyncio.get_running_loop(), {})
            cached = clients.get(self.gemini_conn_id)
            if cached is None or cached[0] != self._settings:
                # Built in a thread: the first build imports the SDK (most of a second), which would
                # stall every other trigger in the loop. Keep the whole client: collecting it would
                # close the transport the async side shares.
                client = await asyncio.to_thread(self._new_client, self._settings)
                cached = clients.get(self.gemini_conn_id)  # another trigger may have built one meanwhile
                if cached is None or cached[0] != self._settings:
                    cached = (self._settings, client)
                    clients[self.gemini_conn_id] = cached
            self._async_client = cached[1].aio
        return self._async_client

    def test_connection(self) -> tuple[bool, str]:
        """One cheap real call: list a single batch job."""
        try:
            self._request("get", "batches?pageSize=1", what="list batches")
        except Exception as err:
            return False, str(err)
        return True, "Connected to the Gemini API."

    # -- raw calls through the SDK's transport -------------------------------------------------
    # The SDK drops batchStats and the job error, and rewrites inline requests; its own API client
    # keeps its auth, endpoint and retries while letting us send and read the wire format.

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, what: str
    ) -> dict[str, Any]:
        with _api_errors(what):
            response = self.get_conn()._api_client.request(method, path, body or {})
        return json.loads(response.body) if response.body else {}

    async def _arequest(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, what: str
    ) -> dict[str, Any]:
        client = await self.aget_conn()
        with _api_errors(what):
            response = await client._api_client.async_request(method, path, body or {})
        return json.loads(response.body) if response.body else {}

    # -- files ---------------------------------------------------------------------------------

    def upload_file(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        *,
        display_name: str | None = None,
        mime_type: str = "jsonl",
    ) -> dict[str, Any]:
        """Upload a batch input with the resumable protocol; returns the File resource.

        The MIME type is set explicitly: ``.jsonl`` has none in ``mimetypes``, and names such as
        ``a.b.jsonl`` or no extension at all would otherwise be guessed wrong or refused.
        """
        config: dict[str, Any] = {"mime_type": mime_type}
        if display_name:
            config["display_name"] = display_name
        with _api_errors("upload file"):
            uploaded = self.get_conn().files.upload(file=source, config=config)  # type: ignore[arg-type]
        return uploaded.model_dump(mode="json", by_alias=True, exclude_none=True)

    def get_file(self, name: str) -> dict[str, Any]:
        path = _resource("files", name)
        return self._request("get", path, what=f"get {path}")

    def delete_file(self, name: str) -> None:
        path = _resource("files", name)
        self._request("delete", path, what=f"delete {path}")

    def iter_result_lines(self, file_name: str) -> Iterator[bytes]:
        """Stream a result file line by line (bytes, without newlines) in bounded memory.

        Transient failures resume from the last complete line; when attempts run out,
        :class:`ResultsDownloadError` says how many bytes arrived. A short file is never reported
        as complete.
        """
        from airflow_provider_gemini.hooks._streaming import split_lines

        yield from split_lines(self.iter_result_blocks(file_name))

    def iter_result_blocks(self, file_name: str) -> Iterator[bytes]:
        """The result file as blocks of whole lines (each ends with a newline), for byte copies."""
        from airflow_provider_gemini.hooks._streaming import stream_blocks

        settings = self.settings
        path = _resource("files", file_name)
        yield from stream_blocks(
            self._downloads,
            f"{settings.download_base}/{path}:download?alt=media",
            headers={"x-goog-api-key": settings.api_key or ""},
            name=path,
            timeout=settings.timeout or 60.0,
            attempts=settings.retry_attempts,
            initial_delay=settings.retry_initial_delay,
            max_delay=settings.retry_max_delay,
        )

    @cached_property
    def _downloads(self) -> urllib.request.OpenerDirector:
        """Result files are read with the standard library (proxies from the environment)."""
        from airflow_provider_gemini.hooks._streaming import download_opener

        return download_opener(shared_ssl_context())

    # -- batches -------------------------------------------------------------------------------

    def create_batch(
        self,
        *,
        model: str,
        display_name: str,
        file_name: str | None = None,
        inline_requests: list[dict[str, Any]] | None = None,
        embeddings: bool = False,
    ) -> BatchJobInfo:
        """Create a batch job from an uploaded file or from inline requests (wire-format dicts).

        :param inline_requests: ``[{"request": GenerateContentRequest, "metadata": {"key": ...}}]``,
            sent unchanged.
        :param embeddings: the requests are EmbedContentRequests (``asyncBatchEmbedContent``).
        """
        if (file_name is None) == (inline_requests is None):
            raise ValueError("create_batch takes exactly one of file_name and inline_requests")
        input_config: dict[str, Any] = (
            {"fileName": _resource("files", file_name)}
            if file_name
            else {"requests": {"requests": inline_requests}}
        )
        model = _resource("models", model)
        body = {"batch": {"displayName": display_name, "model": model, "inputConfig": input_config}}
        path = f"{model}:{BATCH_EMBED_METHOD if embeddings else BATCH_GENERATE_METHOD}"
        return BatchJobInfo.from_operation(
            self._request("post", path, body, what=f"create batch {display_name}")
        )

    def get_model(self, model: str) -> dict[str, Any]:
        """The model as ``models.get`` describes it (``supportedGenerationMethods`` among the rest)."""
        path = _resource("models", model)
        return dict(self._request("get", path, what=f"get {path}"))

    def get_batch(self, name: str) -> BatchJobInfo:
        """The job with its request counts (``batchStats``) and error, which the SDK's object drops."""
        path = _resource("batches", name)
        return BatchJobInfo.from_operation(self._request("get", path, what=f"get {path}"))

    async def aget_batch(self, name: str) -> BatchJobInfo:
        path = _resource("batches", name)
        return BatchJobInfo.from_operation(await self._arequest("get", path, what=f"get {path}"))

    def list_batches(
        self, *, display_name: str | None = None, page_size: int = 100, created_since: float | None = None
    ) -> list[BatchJobInfo]:
        """Every job (all pages), optionally only those with this exact display name.

        The Developer API has no server-side filter, so the filter applies here. With
        ``created_since`` (epoch seconds), paging stops after the page that reaches an older job, but
        only while the jobs so far came newest first: the API documents no order, so a list in any
        other order is read to its end and nothing newer can be missed.
        """
        jobs: list[BatchJobInfo] = []
        token: str | None = None
        while True:
            page, token = self.list_batches_page(page_size=page_size, page_token=token)
            jobs.extend(page)
            if not token or (created_since is not None and _reached(jobs, created_since)):
                break
        if display_name is not None:
            jobs = [job for job in jobs if job.display_name == display_name]
        return jobs

    def list_batches_page(
        self, *, page_size: int = 100, page_token: str | None = None
    ) -> tuple[list[BatchJobInfo], str | None]:
        """One page of jobs (one API call) and the token of the next page (None after the last)."""
        query = f"batches?pageSize={page_size}" + (f"&pageToken={quote(page_token)}" if page_token else "")
        page = self._request("get", query, what="list batches")
        jobs = [BatchJobInfo.from_operation(op) for op in page.get("operations", [])]
        return jobs, page.get("nextPageToken") or None

    def cancel_batch(self, name: str) -> None:
        path = _resource("batches", name)
        self._request("post", f"{path}:cancel", what=f"cancel {path}")

    async def acancel_batch(self, name: str) -> None:
        path = _resource("batches", name)
        await self._arequest("post", f"{path}:cancel", what=f"cancel {path}")

    def delete_batch(self, name: str) -> None:
        path = _resource("batches", name)
        self._request("delete", path, what=f"delete {path}")

    # -- context caches ------------------------------------------------------------------------

    def create_cached_content(
        self,
        model: str,
        *,
        contents: Any = None,
        system_instruction: Any = None,
        ttl_seconds: int = 3600,
        display_name: str | None = None,
    ) -> str:
        """Cache a long shared context (a document, instructions) once; returns its name.

        Requests then set ``cachedContent`` to that name and pay the cached-token rate for it. The API
        refuses contexts below a model's minimum size (1 024 tokens for 2.5 Flash). Delete the cache
        when done (:meth:`delete_cached_content`): storage is billed by the hour until it expires.
        """
        from google.genai import types

        config = types.CreateCachedContentConfig(
            contents=contents,
            system_instruction=system_instruction,
            ttl=f"{int(ttl_seconds)}s",
            display_name=display_name,
        )
        with _api_errors(f"create a context cache for {model}"):
            cache = self.get_conn().caches.create(model=model, config=config)
        tokens = getattr(getattr(cache, "usage_metadata", None), "total_token_count", None)
        self.log.info("Created context cache %s (%s tokens)", cache.name, tokens)
        return str(cache.name)

    def delete_cached_content(self, name: str, *, missing_ok: bool = True) -> bool:
        """Delete a context cache; True if it existed. One already gone is fine when ``missing_ok``."""
        from google.genai import errors

        try:
            self.get_conn().caches.delete(name=name)
        except errors.APIError as err:
            if missing_ok and err.code in (403, 404):
                self.log.info("Context cache %s was already gone", name)
                return False
            raise _api_error(err, f"delete {name}") from None
        self.log.info("Deleted context cache %s", name)
        return True


def _api_error(err: Any, what: str) -> GeminiApiError:
    """A finished message from the SDK's APIError; it never contains the key (sent as a header)."""
    return GeminiApiError.answered(what, err.code, err.status, err.message)


@contextlib.contextmanager
def _api_errors(what: str) -> Iterator[None]:
    """The SDK's APIError raised in the block becomes a :class:`GeminiApiError` about ``what``."""
    from google.genai import errors

    try:
        yield
    except errors.APIError as err:
        raise _api_error(err, what) from None


def _reached(jobs: list[BatchJobInfo], since: float) -> bool:
    """Whether ``jobs``, listed newest first, already go back before ``since``."""
    times = [job.created_at for job in jobs]
    known = [t for t in times if t is not None]
    if len(known) < len(times) or any(a < b for a, b in itertools.pairwise(known)):
        return False  # not newest first (or a job without a time): only the whole list is safe
    return bool(known) and known[-1] < since
