"""What every results transfer shares: finding the job, the one pass over its results, the manifest,
and judging the failed requests after everything was written.

The storage and SQL operators differ only in where a block of rows goes; the reading, counting,
joining and judging happen here once, so both count every line the same way.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cached_property
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_gemini._compat import AirflowFailException, iter_lines
from airflow_provider_gemini.batch.errors import BatchJobError, GeminiBatchError
from airflow_provider_gemini.batch.jobs import BatchJobInfo
from airflow_provider_gemini.batch.manifest import ManifestBuilder
from airflow_provider_gemini.batch.overlap import read_ahead
from airflow_provider_gemini.batch.results import ResultRow, decode_block, inline_result_lines, schema_columns
from airflow_provider_gemini.storage import atomic_sink, storage_path, uri
from airflow_provider_gemini.transfers._writers import writer_for

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from airflow_provider_gemini.hooks.gemini import GeminiHook

Records = dict[str, dict[str, Any]]
_HAS_VECTOR = attrgetter("embedding")
_HAS_IMAGES = attrgetter("images")
# Called with each block of result lines and its decoded rows; the record fields of each row (None:
# no parsed answer and no join asked for, so rows carry only the base columns).
BlockSink = Callable[[bytes, Sequence[ResultRow], Sequence[dict[str, Any]] | None], None]


class ResultsTransfer(BaseOperator):
    """The parameters and the one read path of the results operators (not used on its own)."""

    template_fields: Sequence[str] = ("batch_name", "errors_destination", "join_input")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        batch_name: str,
        parse_json: bool = False,
        response_schema: dict[str, Any] | None = None,
        join_input: Any = None,
        join_key: str = "id",
        join_conn_id: str | None = None,
        errors_destination: Any = None,
        errors_conn_id: str | None = None,
        max_failed_request_ratio: float = 0.0,
        allow_missing: bool = False,
        prices: dict[str, Any] | None = None,
        gemini_conn_id: str = "gemini_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_name = batch_name
        self.parse_json = parse_json
        self.response_schema = response_schema
        self.join_input = join_input
        self.join_key = join_key
        self.join_conn_id = join_conn_id
        self.errors_destination = errors_destination
        self.errors_conn_id = errors_conn_id
        self.max_failed_request_ratio = max_failed_request_ratio
        self.allow_missing = allow_missing
        self.prices = prices
        self.gemini_conn_id = gemini_conn_id
        self._manifest: dict[str, Any] = {}

    @cached_property
    def hook(self) -> GeminiHook:
        from airflow_provider_gemini.hooks.gemini import GeminiHook

        return GeminiHook(gemini_conn_id=self.gemini_conn_id)

    # -- the job ---------------------------------------------------------------------------------

    def _succeeded_job(self) -> BatchJobInfo:
        """The job, which must have results: a job that ended otherwise fails without retry."""
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
        return job

    def _reattached(self, context: Context, batch_name: str) -> bool | None:
        """Whether the create task that made this job found it from an earlier try rather than paying
        for it now (its cost may then be in an earlier run's manifest already); None when the job was
        not made by an upstream create task of this DAG."""
        from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator

        creates = [
            task.task_id
            for task in self.get_flat_relatives(upstream=True)
            if isinstance(task, GeminiBatchCreateOperator)
        ]
        ti = context.get("ti")
        if not creates or ti is None:
            return None
        for task_id in creates:
            result = ti.xcom_pull(task_ids=task_id, key="return_value")
            if isinstance(result, dict) and result.get("batch_name") == batch_name:
                return bool(result.get("reattached"))
            if ti.xcom_pull(task_ids=task_id, key="batch_name") == batch_name:  # pushed field by field
                return bool(ti.xcom_pull(task_ids=task_id, key="reattached"))
        return None

    # -- reading -------------------------------------------------------------------------------

    def _result_blocks(self, job: BatchJobInfo) -> Iterator[bytes]:
        """The results as blocks of whole lines, from the file's stream or the job's inline responses."""
        if job.result_file:
            # Read in a thread: the download (the GIL released) overlaps the decoding.
            yield from read_ahead(self.hook.iter_result_blocks(job.result_file))
        elif job.inlined_responses:
            yield b"".join(line + b"\n" for line in inline_result_lines(job.inlined_responses))

    def _join_records(self) -> Records | None:
        """The input records by key (held in memory: they are the input, not the results)."""
        if self.join_input is None:
            return None
        if isinstance(self.join_input, (list, tuple)):
            source: Any = self.join_input
        else:
            path = storage_path(self.join_input, self.join_conn_id)
            with path.open("rb") as handle:
                source = [json.loads(line) for line in iter_lines(handle) if line.strip()]
        records: Records = {}
        for number, record in enumerate(source, start=1):
            if not isinstance(record, dict) or self.join_key not in record:
                raise ValueError(f"join_input record {number} has no {self.join_key!r} field")
            records[str(record[self.join_key])] = record
        return records

    def _known_columns(self, records: Records | None) -> list[str] | None:
        """The columns beyond the base ones known before any row: the schema's, the input records'."""
        known = schema_columns(self.response_schema) if self.parse_json else None
        if records:
            known = list(dict.fromkeys([*(known or []), *next(iter(records.values()))]))
        return known

    def _transfer(
        self, job: BatchJobInfo, records: Records | None, *, text: bool, sink: BlockSink
    ) -> ManifestBuilder:
        """One pass over the results: each line decoded and counted, failed ones written to the errors
        file, and each block handed to ``sink`` with its rows."""
        builder = ManifestBuilder(
            model=job.model,
            expected_keys=records.keys() if records is not None else None,
            expected_count=job.stats.request_count or None,
            prices=self.prices,
            allow_missing=self.allow_missing,
        )
        extras = self.parse_json or records is not None
        line_number = 1
        with self._errors_sink() as errors_out, _young_collections():
            failures = writer_for("flat_jsonl", errors_out) if errors_out is not None else None
            for block in self._result_blocks(job):
                rows = decode_block(block, first_line=line_number, parse_json=self.parse_json, text=text)
                # Lines are numbered for error messages by the rows before (blank lines are not
                # counted: counting every newline would cost a tenth of the passthrough's time).
                line_number += len(rows)
                builder.add_rows(rows)
                if failures is not None and (failed := [row for row in rows if row.error is not None]):
                    failures.write_rows(failed)
                # Rows carry fields beyond the base columns: parsed or joined ones, vectors, images.
                with_fields = text and (extras or any(map(_HAS_VECTOR, rows)) or any(map(_HAS_IMAGES, rows)))
                sink(block, rows, [self._fields(row, records) for row in rows] if with_fields else None)
            if failures is not None:
                failures.close()
        return builder

    def _errors_sink(self) -> AbstractContextManager[Any]:
        if not self.errors_destination:
            return nullcontext()
        return atomic_sink(storage_path(self.errors_destination, self.errors_conn_id))

    def _fields(self, row: ResultRow, records: Records | None) -> dict[str, Any]:
        """A row's fields beyond the base columns: its parsed answer's, its input record's (the join
        key too, with its own type: the request key is always text)."""
        extra = records.get(row.key, {}) if records is not None else None
        return row.fields(parse_json=self.parse_json, extra=extra)

    # -- the end -------------------------------------------------------------------------------

    def _finish(
        self, context: Context, job: BatchJobInfo, builder: ManifestBuilder, **where: Any
    ) -> dict[str, Any]:
        """The manifest, logged and kept for lineage; then the failure policy, judged only now that
        every answer is stored."""
        manifest = builder.build(
            batch_name=job.name,
            errors_destination=uri(storage_path(self.errors_destination, self.errors_conn_id))
            if self.errors_destination
            else None,
            reattached=self._reattached(context, job.name),
            **where,
        )
        self.log.info("Results manifest: %s", json.dumps(manifest))
        self._manifest = manifest
        return manifest

    def _judge(self, job: BatchJobInfo, builder: ManifestBuilder) -> None:
        try:
            builder.check(self.max_failed_request_ratio)  # after the outputs are written, on purpose
        except BatchJobError as err:
            raise AirflowFailException(
                f"Gemini batch {job.name}: {err}. The outputs are written; failing without retry, since a "
                "retry would download the same results and fail the same way."
            ) from err

    def _lineage(self, output: Any, columns: dict[str, str]) -> Any:
        """Lineage: ``output`` (with a schema of the ``columns`` written, name -> type, if any) and the
        errors file as outputs, a ``join_input`` file as an input, and the ``geminiBatch`` facet with
        the manifest's tokens and cost."""
        from airflow_provider_gemini import lineage

        outputs = [lineage.with_schema(output, columns) if columns else output]
        if self.errors_destination:
            outputs.append(lineage.path_dataset(self.errors_destination, self.errors_conn_id))
        inputs = []
        if isinstance(self.join_input, str) or hasattr(self.join_input, "protocol"):  # a file
            inputs.append(lineage.path_dataset(self.join_input, self.join_conn_id))
        manifest = self._manifest
        facet = lineage.run_facet(
            model=manifest.get("model"),
            batchName=manifest.get("batch_name") or self.batch_name,
            requestCount=manifest.get("rows"),
            succeeded=manifest.get("succeeded"),
            failed=manifest.get("failed"),
            reattached=manifest.get("reattached"),
            tokens=manifest.get("tokens"),
            cost=manifest.get("cost"),
        )
        return lineage.lineage(inputs, outputs, facet)


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
