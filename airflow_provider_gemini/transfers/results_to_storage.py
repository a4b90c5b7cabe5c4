"""Streams a batch job's results to object storage: raw or as flat rows, atomically, with a manifest."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_provider_gemini._compat import AirflowFailException, iter_lines
from airflow_provider_gemini.batch.errors import BatchJobError, GeminiBatchError
from airflow_provider_gemini.batch.jobs import BatchJobInfo
from airflow_provider_gemini.batch.manifest import ManifestBuilder
from airflow_provider_gemini.batch.overlap import read_ahead, write_behind
from airflow_provider_gemini.batch.results import (
    COLUMN_TYPES,
    ResultRow,
    decode_block,
    inline_result_lines,
    schema_columns,
)
from airflow_provider_gemini.lineage import never_fails
from airflow_provider_gemini.storage import atomic_sink, storage_path
from airflow_provider_gemini.transfers._writers import FORMATS, writer_for

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.definitions.context import Context

    from airflow_provider_gemini.hooks.gemini import GeminiHook

OutputFormat = Literal["jsonl", "flat_jsonl", "csv", "parquet"]


class GeminiBatchResultsToStorageOperator(BaseOperator):
    """Writes a succeeded batch job's results to any object storage, in bounded memory, never half-written.

    Rows are read line by line from the result file's HTTP stream (or from the job's inline results)
    and written through ``ObjectStoragePath`` to a temporary name next to the destination, which is
    moved into place only once everything was written: a killed task leaves nothing at
    ``destination``. Every input key is accounted for (succeeded, failed or missing), and a manifest
    of counts, tokens and estimated cost goes to XCom.

    :param batch_name: the job, ``batches/...`` (templated; usually the create task's XCom).
    :param destination: where the results go: a path or URI on any storage Airflow supports (templated).
    :param destination_conn_id: the connection the destination is written with.
    :param output_format: ``jsonl`` (lines as Gemini returned them), ``flat_jsonl``, ``csv`` or ``parquet``
        (flat rows: key, text, finish_reason, prompt/output/cached/total tokens, error).
    :param parse_json: turn a structured-output answer into columns.
    :param response_schema: the schema the requests asked for; fixes the parsed columns up front.
    :param join_input: the input records (a list of dicts, templated) or a JSONL file of them; each row
        then carries its record's fields, matched by ``join_key``.
    :param join_key: the record field that holds the request key.
    :param join_conn_id: the connection a ``join_input`` file is read with.
    :param errors_destination: where failed requests go as well (flat JSONL), if anywhere.
    :param max_failed_request_ratio: share of failed requests tolerated; checked after writing.
    :param allow_missing: an input key without a result is not an error.
    :param overwrite: replace an existing destination (False: fail before reading anything).
    :param prices: overrides of the per-model price table, ``{"model": {"input_per_million": ...}}``.
    :param gemini_conn_id: the Airflow connection to the Gemini API.
    """

    template_fields: Sequence[str] = ("batch_name", "destination", "errors_destination", "join_input")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        batch_name: str,
        destination: Any,
        destination_conn_id: str | None = None,
        output_format: OutputFormat = "jsonl",
        parse_json: bool = False,
        response_schema: dict[str, Any] | None = None,
        join_input: Any = None,
        join_key: str = "id",
        join_conn_id: str | None = None,
        errors_destination: Any = None,
        max_failed_request_ratio: float = 0.0,
        allow_missing: bool = False,
        overwrite: bool = True,
        prices: dict[str, Any] | None = None,
        gemini_conn_id: str = "gemini_default",
        **kwargs: Any,
    ) -> None:
        if output_format not in FORMATS:
            raise ValueError(f"output_format must be one of {', '.join(FORMATS)}, not {output_format!r}")
        asset = _asset_for(destination)
        if asset is not None and "outlets" not in kwargs:
            # Downstream DAGs can be scheduled on the results (a templated destination is only known
            # at run time: pass outlets=[Asset(...)] yourself for those).
            kwargs["outlets"] = [asset]
        super().__init__(**kwargs)
        self.batch_name = batch_name
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.output_format = output_format
        self.parse_json = parse_json
        self.response_schema = response_schema
        self.join_input = join_input
        self.join_key = join_key
        self.join_conn_id = join_conn_id
        self.errors_destination = errors_destination
        self.max_failed_request_ratio = max_failed_request_ratio
        self.allow_missing = allow_missing
        self.overwrite = overwrite
        self.prices = prices
        self.gemini_conn_id = gemini_conn_id
        self._manifest: dict[str, Any] = {}
        self._columns: list[str] | None = None

    @cached_property
    def hook(self) -> GeminiHook:
        from airflow_provider_gemini.hooks.gemini import GeminiHook

        return GeminiHook(gemini_conn_id=self.gemini_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        destination = storage_path(self.destination, self.destination_conn_id)
        errors_destination = (
            storage_path(self.errors_destination, self.destination_conn_id)
            if self.errors_destination
            else None
        )
        if not self.overwrite and destination.exists():
            raise FileExistsError(f"{destination} exists and overwrite=False")
        job = self.hook.get_batch(self.batch_name)
        if job.state.is_terminal and not job.state.has_results:
            raise AirflowFailException(
                f"Gemini batch {job.name} is {job.state.value}, not SUCCEEDED: it has no results to store. "
                "Failing without retry: the job has ended and will not change; clear the task that "
                "created it to submit a new job."
            )
        if not job.state.has_results:
            raise BatchJobError(
                f"Gemini batch {job.name} is {job.state.value}, not SUCCEEDED: it has no results to store "
                "yet. A retry looks again; wait for the job first (GeminiBatchSensor).",
                batch_name=job.name,
                state=job.state.value,
            )
        if job.result_file and "://" in job.result_file:
            raise GeminiBatchError(
                f"Gemini batch {job.name} wrote its results to {job.result_file} (Vertex AI); this operator "
                "reads the Gemini Developer API's result files. Read them there, with ObjectStoragePath."
            )
        records = self._join_records()
        builder = ManifestBuilder(
            model=job.model,
            expected_keys=records.keys() if records is not None else None,
            expected_count=job.stats.request_count or None,
            prices=self.prices,
            allow_missing=self.allow_missing,
        )
        errors_sink = atomic_sink(errors_destination) if errors_destination else nullcontext()
        with atomic_sink(destination) as sink, errors_sink as failures:
            written = self._write(job, sink, failures, builder, records)
        manifest = builder.build(
            destination=_uri(destination),
            errors_destination=_uri(errors_destination) if errors_destination else None,
            batch_name=job.name,
            bytes_written=written,
        )
        self.log.info("Results manifest: %s", json.dumps(manifest))
        self._manifest = manifest
        events = context.get("outlet_events")  # absent when execute() is called outside a task run
        for outlet in self.outlets:
            if events is not None and getattr(outlet, "uri", None) == manifest["destination"]:
                events[outlet].extra = {k: manifest[k] for k in ("rows", "failed", "batch_name")}
        try:
            builder.check(self.max_failed_request_ratio)  # after the outputs are written, on purpose
        except BatchJobError as err:
            raise AirflowFailException(
                f"Gemini batch {job.name}: {err}. The outputs are written; failing without retry, since a "
                "retry would download the same results and fail the same way."
            ) from err
        return manifest

    @never_fails
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the destination (with the columns written) and the errors file as outputs, a
        ``join_input`` file as an input, and the ``geminiBatch`` facet with the manifest's tokens and
        cost."""
        from airflow_provider_gemini import lineage

        manifest = self._manifest
        destination = lineage.path_dataset(self.destination, self.destination_conn_id)
        if self._columns:
            columns = {c: COLUMN_TYPES.get(c, "") for c in self._columns}
            destination = lineage.with_schema(destination, columns)
        outputs = [destination]
        if self.errors_destination:
            outputs.append(lineage.path_dataset(self.errors_destination, self.destination_conn_id))
        inputs = []
        if isinstance(self.join_input, str) or hasattr(self.join_input, "protocol"):
            inputs.append(lineage.path_dataset(self.join_input, self.join_conn_id))
        facet = lineage.run_facet(
            model=manifest.get("model"),
            batchName=manifest.get("batch_name") or self.batch_name,
            requestCount=manifest.get("rows"),
            succeeded=manifest.get("succeeded"),
            failed=manifest.get("failed"),
            tokens=manifest.get("tokens"),
            cost=manifest.get("cost"),
        )
        return lineage.lineage(inputs, outputs, facet)

    # -- reading -------------------------------------------------------------------------------

    def _result_blocks(self, job: BatchJobInfo) -> Iterator[bytes]:
        """The results as blocks of whole lines, from the file's stream or the job's inline responses."""
        if job.result_file:
            # Read in a thread: the download (the GIL released) overlaps the decoding.
            yield from read_ahead(self.hook.iter_result_blocks(job.result_file))
        elif job.inlined_responses:
            yield b"".join(line + b"\n" for line in inline_result_lines(job.inlined_responses))

    def _join_records(self) -> dict[str, dict[str, Any]] | None:
        """The input records by key (held in memory: they are the input, not the results)."""
        if self.join_input is None:
            return None
        if isinstance(self.join_input, (list, tuple)):
            source: Any = self.join_input
        else:
            path = storage_path(self.join_input, self.join_conn_id)
            with path.open("rb") as handle:
                source = [json.loads(line) for line in iter_lines(handle) if line.strip()]
        records: dict[str, dict[str, Any]] = {}
        for number, record in enumerate(source, start=1):
            if not isinstance(record, dict) or self.join_key not in record:
                raise ValueError(f"join_input record {number} has no {self.join_key!r} field")
            records[str(record[self.join_key])] = record
        return records

    # -- writing -------------------------------------------------------------------------------

    def _write(
        self,
        job: BatchJobInfo,
        sink: Any,
        failures_sink: Any,
        builder: ManifestBuilder,
        records: dict[str, dict[str, Any]] | None,
    ) -> int:
        """One pass over the results, the same for every format: each line decoded and counted, failed
        ones written to the errors file, and the line's bytes (``jsonl``) or its row to the destination.
        """
        known = schema_columns(self.response_schema) if self.parse_json else None
        if records:
            first = next(iter(records.values()))
            known = [*(known or []), *(k for k in first if k != self.join_key)]
        failures = writer_for("flat_jsonl", failures_sink) if failures_sink is not None else None
        raw = self.output_format == "jsonl"
        extras = self.parse_json or records is not None
        line_number = 1
        # The destination is written in a thread: the disk overlaps the decoding.
        with _young_collections(), write_behind(sink.write) as put:
            writer = writer_for(self.output_format, _WrittenBehind(put), known)
            for block in self._result_blocks(job):
                if raw:
                    writer.write_block(block)
                rows = decode_block(block, first_line=line_number, parse_json=self.parse_json, text=not raw)
                # Lines are numbered for error messages by the rows before (blank lines are not
                # counted: counting every newline would cost a tenth of the passthrough's time).
                line_number += len(rows)
                builder.add_rows(rows)
                if failures is not None and (failed := [row for row in rows if row.error is not None]):
                    failures.write_rows(failed)
                if raw:
                    continue
                writer.write_rows(rows, [self._fields(row, records) for row in rows] if extras else None)
            writer.close()
        if failures is not None:
            failures.close()
        self._columns = getattr(writer, "columns", None)  # the flat formats' columns, for lineage
        return int(writer.bytes_written)

    def _fields(self, row: ResultRow, records: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
        """A row's fields beyond the base columns: its parsed answer's, its input record's."""
        extra = None
        if records is not None:
            extra = {k: v for k, v in records.get(row.key, {}).items() if k != self.join_key}
        return row.fields(parse_json=self.parse_json, extra=extra)


@contextmanager
def _young_collections() -> Iterator[None]:
    """The garbage collector leaves alone the objects that were there before the transfer.

    Each decoded line holds a list or two (tracked by the collector, freed with the block); the ones
    alive at a collection are promoted, and every few hundred MB that triggers a full collection of
    everything the process holds (Airflow, the SDK, pyarrow: 0.1 s or more each time). Frozen, the
    old objects are not traversed; they are put back after, unless something else froze objects first.
    """
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


class _WrittenBehind:
    """A sink that hands each write to ``write_behind``'s thread."""

    def __init__(self, put: Callable[[bytes], None]) -> None:
        self.put = put

    def write(self, data: Any) -> int:
        self.put(bytes(data))  # copies only what is not bytes yet: a writer may reuse its buffer
        return len(data)


def _asset_for(destination: Any) -> Any:
    """An Asset for a destination known when the DAG is parsed (no template in it), else None."""
    text = str(destination)
    if "{{" in text or "{%" in text:
        return None
    from airflow.sdk import Asset

    return Asset(text if "://" in text else f"file://{text}")


def _uri(path: ObjectStoragePath) -> str:
    """The path as users write it: without the connection id Airflow puts in ``str()``."""
    if path.protocol in ("", "file", "local"):
        text = str(path)
        return text if "://" in text else f"file://{text}"
    return f"{path.protocol}://{path.path}"
