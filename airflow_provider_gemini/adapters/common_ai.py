"""Gemini for common.ai's ``LLMBatchOperator`` / ``@task.llm_batch``, on this package's hook and core.

Registered in the ``airflow.providers.common.ai.batch_adapters`` entry point group as ``google``, the
prefix pydantic-ai gives the Gemini Developer API (``model_id="google:gemini-2.5-flash"``), so one
connection serves ``@task.llm`` and ``@task.llm_batch`` alike; ``google-gla`` (pydantic-ai's older
spelling) is an alias. Connection types: ``gemini`` (this provider's) and ``pydanticai``.

Where common.ai's contract and the Gemini API differ, this follows the API:

- Dispatch hands an adapter only the connection's password (the API key) and host (the base URL, a
  full ``http(s)://`` address). A ``gemini`` connection's extras (``base_url``, ``api_version``,
  ``timeout``, retries) are not seen on this path: put a proxy or emulator address in the host.
- Batch jobs have no metadata. common.ai's identity key and input fingerprint travel in the job's
  display name (``airflow-llm-batch-<key>-<fingerprint[:16]>``); :meth:`find_orphaned_batch` lists
  jobs and matches it. The API has no server-side filter, so the listing is read page by page.
- One model per job: per-request ``model`` overrides must all name the same model.
- Per-request outcomes are succeeded or failed only. A cancelled or expired job leaves no result
  for the requests it did not run (whatever results it has are read); the job's counts
  (``batchStats``) say how many, which common.ai records as cancelled / expired.
- ``max_tokens`` is ``maxOutputTokens``, which on thinking models (2.5) caps thinking and answer
  together: a small cap can leave no answer, recorded as ``invalid_output``.
- ``params`` / ``request_params``: ``tools``, ``safety_settings`` and ``cached_content`` are request
  fields, every other key a generation setting (``temperature``, ``thinking_config``...).
- An uploaded input file (inputs over 20 MB) is left to expire (48 hours), as common.ai has no
  clean-up step that would hand it back.
- No request-count limit is documented: ``max_requests`` is the scale common.ai's results layer is
  built for (100 000); the documented 2 GB input file limit is ``max_payload_bytes``.
- ``completion_window`` is OpenAI's: Gemini jobs expire after 48 hours, and it is ignored.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.ai.batch.base import (
    BatchAdapter,
    BatchState,
    BatchStatus,
    ExtractedOutput,
    RawResultItem,
    SubmitResult,
)
from airflow.providers.common.ai.exceptions import (
    LLMBatchInputError,
    LLMBatchLimitExceededError,
    LLMBatchModelMismatchError,
)

from airflow_provider_gemini.batch.errors import BatchInputError, GeminiApiError, ResultsFormatError
from airflow_provider_gemini.batch.identity import display_name_for
from airflow_provider_gemini.batch.inputs import (
    MAX_FILE_BYTES,
    PreparedInput,
    RequestOptions,
    prepare_from_requests,
)
from airflow_provider_gemini.batch.jobs import BatchJobInfo
from airflow_provider_gemini.batch.jobs import BatchState as JobState
from airflow_provider_gemini.batch.results import inline_result_lines, parse_result_line
from airflow_provider_gemini.hooks.gemini import GeminiHook

if TYPE_CHECKING:
    from airflow.providers.common.ai.batch.base import BatchRequest
    from airflow.providers.common.ai.batch.output_schema import OutputSpec

log = logging.getLogger(__name__)

DISPLAY_NAME_PREFIX = "airflow-llm-batch"
#: Characters of the input fingerprint kept in the display name (64 bits, as the OpenAI adapter keeps).
FINGERPRINT_PART = 16
#: A job's create time is the server's clock, ``not_before`` the worker's: allow this much skew.
CLOCK_SKEW_SLACK_SECONDS = 300

_STATUS: dict[JobState, BatchStatus] = {
    JobState.SUCCEEDED: "completed",
    JobState.PARTIALLY_SUCCEEDED: "completed",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
    JobState.EXPIRED: "expired",
}

#: ``params`` keys that are GenerateContentRequest fields (by their RequestOptions name); every other
#: key is a generation config setting (``temperature``, ``top_p``, ``thinking_config``...).
_REQUEST_FIELDS = {
    "tools": "tools",
    "safety_settings": "safety_settings",
    "safetySettings": "safety_settings",
    "cached_content": "cached_content",
    "cachedContent": "cached_content",
}
_STRUCTURED_KEYS = frozenset(
    {"responseMimeType", "response_mime_type", "responseJsonSchema", "response_json_schema"}
    | {"responseSchema", "response_schema"}
)


class GeminiBatchNotFoundError(GeminiApiError):
    """A job the API does not know; ``status_code`` is how common.ai recognises "not found"."""

    status_code = 404


class GeminiBatchAdapter(BatchAdapter):
    """Gemini Developer API batch mode for ``@task.llm_batch``, through :class:`GeminiHook`.

    :param api_key: the Gemini API key (the connection's password).
    :param base_url: the API's address (the connection's host); None for Google's.
    :param client: a ready :class:`GeminiHook` to use instead (tests, or extras dispatch cannot pass).
    """

    name = "google"
    #: Other prefixes that reach this adapter through their own entry point.
    aliases: ClassVar[frozenset[str]] = frozenset({"google-gla"})
    conn_types = frozenset({"gemini", "pydanticai"})
    max_requests = 100_000
    max_payload_bytes = MAX_FILE_BYTES
    allows_per_request_model = False

    def __init__(
        self, *, api_key: str | None = None, base_url: str | None = None, client: Any | None = None
    ) -> None:
        # No connection id reaches an adapter, only these two fields.
        self.hook = client if isinstance(client, GeminiHook) else GeminiHook.for_key(api_key, base_url)

    def close(self) -> None:
        """Close the SDK client if one was built (the hook builds it on first use)."""
        self.hook.close()

    def resolve_request_model(
        self, request_model: str | None, *, default_bare_model: str, request_index: int
    ) -> str:
        """Accept the aliases' prefixes as well as ``google:``."""
        if request_model is not None:
            prefix, sep, bare = request_model.partition(":")
            if sep and prefix in self.aliases and bare:
                request_model = f"{self.name}:{bare}"
        return super().resolve_request_model(
            request_model, default_bare_model=default_bare_model, request_index=request_index
        )

    # -- requests ------------------------------------------------------------------------------

    def build_output_directive(self, spec: OutputSpec) -> dict[str, Any]:
        """JSON mode with the schema as JSON Schema (``responseJsonSchema`` takes ``$defs``/``$ref``)."""
        if not spec.is_structured:
            return {}
        return {
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": spec.json_schema,
            }
        }

    def _job_model(self, requests: list[BatchRequest], model: str) -> str:
        """The one model of the job: every per-request override must name the same."""
        models = {
            self.resolve_request_model(r.get("model"), default_bare_model=model, request_index=i)
            for i, r in enumerate(requests)
        }
        if len(models) > 1:
            raise LLMBatchModelMismatchError(
                f"A Gemini batch job runs one model; these requests name {len(models)} "
                f"({', '.join(sorted(models))}). Split them into one task per model."
            )
        return models.pop() if models else model

    def _options(
        self, output_spec: OutputSpec, settings: Mapping[str, Any], *, managed: bool
    ) -> RequestOptions:
        """``system_prompt``, ``max_tokens`` and ``params`` as RequestOptions, params split into request
        fields and generation config. ``managed``: the batch's own, with the structured-output directive."""
        fields: dict[str, Any] = {}
        generation: dict[str, Any] = {}
        for name, value in (settings.get("params") or {}).items():
            if name in _REQUEST_FIELDS:
                fields[_REQUEST_FIELDS[name]] = value
            elif not (output_spec.is_structured and name in _STRUCTURED_KEYS):
                generation[name] = value
        if settings.get("max_tokens"):
            generation["maxOutputTokens"] = settings["max_tokens"]
        if managed:
            generation.update(self.build_output_directive(output_spec).get("generationConfig", {}))
        return RequestOptions(
            system_instruction=settings.get("system_prompt") or None,
            generation_config=generation or None,
            **fields,
        )

    def _requests(
        self,
        requests: list[BatchRequest],
        *,
        idempotency_key: str,
        output_spec: OutputSpec,
        system_prompt: str = "",
        max_tokens: int = 1024,
        request_params: dict[str, Any] | None = None,
        **_: Any,
    ) -> Iterator[dict[str, Any]]:
        """``{"key", "request"}`` items, keyed ``<key16>-<index>`` as common.ai reads results back.

        A request's own system prompt, token cap and params win over the batch's; the structured
        output directive wins over both.
        """
        batch_settings = {"system_prompt": system_prompt, "max_tokens": max_tokens, "params": request_params}
        batch = self._options(output_spec, batch_settings, managed=True)
        for index, item in enumerate(requests):
            request: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": item["prompt"]}]}]}
            if item.get("system_prompt") or item.get("max_tokens") or item.get("params"):
                request = self._options(output_spec, item, managed=False).apply(request)
            yield {"key": f"{idempotency_key}-{index}", "request": batch.apply(request)}

    @contextlib.contextmanager
    def _prepared(
        self, requests: list[BatchRequest], *, model: str, idempotency_key: str, **settings: Any
    ) -> Iterator[tuple[str, PreparedInput]]:
        """Every check before a submit, then the requests written and checked by the core's preparation
        (size, contents, keys), in a directory removed afterwards: ``(job model, prepared input)``."""
        self.check_custom_id_length(idempotency_key, len(requests))
        if len(requests) > self.max_requests:
            raise LLMBatchLimitExceededError(
                f"This adapter takes at most {self.max_requests} requests per Gemini batch job; got "
                f"{len(requests)}. Split the input across mapped task instances with .expand()."
            )
        job_model = self._job_model(requests, model)
        with tempfile.TemporaryDirectory(prefix="llm-batch-") as workdir:
            items = self._requests(requests, idempotency_key=idempotency_key, **settings)
            try:
                prepared = prepare_from_requests(items, workdir=workdir, source="llm_batch")
            except BatchInputError as err:
                if err.args and "limit" in str(err.args[0]):
                    raise LLMBatchLimitExceededError(
                        f"{err} Split the input across mapped task instances with .expand()."
                    ) from None
                raise LLMBatchInputError(str(err)) from None
            yield job_model, prepared

    def validate_requests(
        self,
        requests: list[BatchRequest],
        *,
        model: str,
        output_spec: OutputSpec,
        idempotency_key: str,
        **kwargs: Any,
    ) -> None:
        """``kwargs``: ``system_prompt``, ``max_tokens``, ``request_params``, as :meth:`submit` gets them."""
        with self._prepared(
            requests, model=model, idempotency_key=idempotency_key, output_spec=output_spec, **kwargs
        ):
            pass

    def submit(
        self,
        requests: list[BatchRequest],
        *,
        model: str,
        idempotency_key: str,
        input_fingerprint: str,
        output_spec: OutputSpec,
        **kwargs: Any,
    ) -> SubmitResult:
        """Inline when the requests are small (``AUTO_INLINE_BYTES``, 2 MB), else through an uploaded file."""
        display_name = self.display_name(idempotency_key, input_fingerprint)
        uploaded = None
        with self._prepared(
            requests, model=model, idempotency_key=idempotency_key, output_spec=output_spec, **kwargs
        ) as (job_model, prepared):
            if prepared.inline_by_default:
                job = self.hook.create_batch(
                    model=job_model, display_name=display_name, inline_requests=prepared.inline_requests()
                )
            else:
                uploaded = self.hook.upload_file(prepared.path, display_name=display_name)["name"]
                job = self.hook.create_batch(model=job_model, display_name=display_name, file_name=uploaded)
        log.info(
            "Created Gemini batch %s (%d requests) as %s", job.name, prepared.request_count, display_name
        )
        return SubmitResult(batch_id=job.name, provider_input_ref=uploaded)

    # -- identity ------------------------------------------------------------------------------

    @staticmethod
    def display_name(idempotency_key: str, input_fingerprint: str) -> str:
        """The job's display name: the task instance's key, then the fingerprint of what it paid for."""
        return display_name_for(
            f"{idempotency_key}-{input_fingerprint[:FINGERPRINT_PART]}", DISPLAY_NAME_PREFIX
        )

    def find_orphaned_batch(
        self, idempotency_key: str, input_fingerprint: str, not_before: str
    ) -> str | None:
        """The newest job carrying this key and fingerprint in its display name, created since
        ``not_before`` (less the clock-skew slack); None when there is none."""
        since = (
            datetime.fromisoformat(not_before).timestamp() - CLOCK_SKEW_SLACK_SECONDS if not_before else None
        )
        name = self.display_name(idempotency_key, input_fingerprint)
        candidates = [
            job
            for job in self.hook.list_batches(display_name=name, created_since=since)
            if since is None or (job.created_at is not None and job.created_at >= since)
        ]
        newest = max(candidates, key=lambda job: job.created_at or 0.0, default=None)
        return newest.name if newest is not None else None

    # -- jobs ----------------------------------------------------------------------------------

    def _job(self, batch_id: str) -> BatchJobInfo:
        try:
            return self.hook.get_batch(batch_id)
        except GeminiApiError as err:
            if err.code == 404:
                raise GeminiBatchNotFoundError(str(err), code=404, status=err.status) from None
            raise

    def get_batch(self, batch_id: str) -> BatchState:
        job = self._job(batch_id)
        stats = job.stats
        counts = None
        if stats.request_count:
            left = max(stats.request_count - stats.done, 0)
            counts = {
                "succeeded": stats.succeeded,
                "errored": stats.failed,
                "expired": left if job.state is JobState.EXPIRED else 0,
                "cancelled": left if job.state is JobState.CANCELLED else 0,
            }
        return BatchState(
            status=_STATUS.get(job.state, "in_progress"), counts=counts, error_message=job.error
        )

    def cancel_batch(self, batch_id: str) -> None:
        self.hook.cancel_batch(batch_id)

    # -- results -------------------------------------------------------------------------------

    def iter_results(self, batch_id: str) -> Iterator[RawResultItem]:
        job = self._job(batch_id)  # now, so that an unknown job fails here rather than when iterated
        if job.result_file:
            lines: Iterable[bytes] = self.hook.iter_result_lines(job.result_file)
        elif job.inlined_responses is not None:
            lines = inline_result_lines(job.inlined_responses)
        else:
            lines = ()  # cancelled, expired or failed: the job's counts account for its requests
        return self._items(batch_id, lines, job.model.removeprefix("models/") if job.model else None)

    @staticmethod
    def _items(batch_id: str, lines: Iterable[bytes], model: str | None) -> Iterator[RawResultItem]:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = parse_result_line(line, line_number=number)
                index = int(row.key.rsplit("-", 1)[-1])
            except (ResultsFormatError, ValueError) as err:
                # The same line comes back on every retry: skipped, its request is counted missing.
                log.warning("Skipping result line %d of %s: %s", number, batch_id, err)
                continue
            failed = row.error is not None
            yield RawResultItem(
                custom_id=row.key,
                index=index,
                provider_status="errored" if failed else "success",
                model=model,
                usage={"input_tokens": row.prompt_tokens, "output_tokens": row.output_tokens},
                finish_reason=row.finish_reason,
                error=(
                    dict(type="provider_error", message=row.error, provider_code=None, stage="provider")
                    if failed
                    else None
                ),
                raw=row.text,
            )

    def extract_output(self, raw: RawResultItem, spec: OutputSpec) -> ExtractedOutput:
        """JSON mode answers a bare JSON document (no fences), which common.ai parses and validates."""
        if raw.raw is None:
            return ExtractedOutput(kind="absent")
        return ExtractedOutput(kind="json_text" if spec.is_structured else "text", text=raw.raw)
