"""Streams a batch job's results to object storage: raw or as flat rows, atomically, with a manifest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_gemini.batch.overlap import write_behind
from airflow_provider_gemini.batch.results import COLUMN_TYPES, ResultRow
from airflow_provider_gemini.lineage import never_fails
from airflow_provider_gemini.storage import atomic_sink, check_writable, storage_path, uri
from airflow_provider_gemini.transfers._images import ImageFiles
from airflow_provider_gemini.transfers._results import ResultsTransfer
from airflow_provider_gemini.transfers._writers import FORMATS, writer_for

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

OutputFormat = Literal["jsonl", "flat_jsonl", "csv", "parquet"]


class GeminiBatchResultsToStorageOperator(ResultsTransfer):
    """Writes a succeeded batch job's results to any object storage, in bounded memory, never half-written.

    Rows are read line by line from the result file's HTTP stream (or from the job's inline results)
    and written through ``ObjectStoragePath`` to a temporary name next to the destination, which is
    moved into place only once everything was written: a killed task leaves nothing at
    ``destination``. Every input key is accounted for (succeeded, failed or missing), and a manifest
    of counts, tokens and estimated cost goes to XCom.

    :param batch_name: the job, ``batches/...`` (templated; usually the create task's XCom).
    :param destination: where the results go: a path or URI on any storage Airflow supports (templated).
        It is checked for writability before any result is read.
    :param destination_conn_id: the connection the destination (and ``errors_destination``) is written with.
    :param output_format: ``jsonl`` (lines as Gemini returned them), ``flat_jsonl``, ``csv`` or ``parquet``
        (flat rows: key, text, finish_reason, prompt/output/cached/total tokens, error).
    :param parse_json: turn a structured-output answer into columns.
    :param response_schema: the schema the requests asked for; fixes the parsed columns up front.
    :param join_input: the input records (a list of dicts, templated) or a JSONL file of them; each row
        then carries its record's fields with their own types (the ``join_key`` field too), matched by
        ``join_key``.
    :param join_key: the record field that holds the request key.
    :param join_conn_id: the connection a ``join_input`` file is read with.
    :param errors_destination: where failed requests go as well (flat JSONL), if anywhere.
    :param max_failed_request_ratio: share of failed requests tolerated; judged after writing.
    :param allow_missing: an input key without a result is not an error.
    :param overwrite: replace an existing destination (False: fail before reading anything).
    :param prices: overrides of the per-model price table, ``{"model": {"input_per_million": ...}}``.
    :param gemini_conn_id: the Airflow connection to the Gemini API.
    """

    template_fields: Sequence[str] = ("batch_name", "destination", "errors_destination", "join_input")

    def __init__(
        self,
        *,
        destination: Any,
        destination_conn_id: str | None = None,
        output_format: OutputFormat = "jsonl",
        overwrite: bool = True,
        **kwargs: Any,
    ) -> None:
        if output_format not in FORMATS:
            raise ValueError(f"output_format must be one of {', '.join(FORMATS)}, not {output_format!r}")
        asset = _asset_for(destination)
        if asset is not None and "outlets" not in kwargs:
            # Downstream DAGs can be scheduled on the results (a templated destination is only known
            # at run time: pass outlets=[Asset(...)] yourself for those).
            kwargs["outlets"] = [asset]
        kwargs.setdefault("errors_conn_id", destination_conn_id)
        super().__init__(**kwargs)
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.output_format = output_format
        self.overwrite = overwrite
        self._columns: list[str] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        destination = storage_path(self.destination, self.destination_conn_id)
        if not self.overwrite and destination.exists():
            raise FileExistsError(f"{uri(destination)} exists and overwrite=False")
        check_writable(destination)
        if self.errors_destination:
            check_writable(storage_path(self.errors_destination, self.errors_conn_id))
        job = self._succeeded_job()
        records = self._join_records()
        raw = self.output_format == "jsonl"
        # Images of the answers become objects beside the rows (``jsonl`` keeps them in its lines).
        images = ImageFiles(destination)
        # The destination is written in a thread: the disk overlaps the decoding.
        with atomic_sink(destination) as sink, write_behind(sink.write) as put:
            writer = writer_for(self.output_format, _WrittenBehind(put), self._known_columns(records))

            def write(block: bytes, rows: Sequence[ResultRow], extras: Any) -> None:
                if raw:
                    writer.write_block(block)
                    return
                for row, fields in zip(rows, extras or (), strict=False):
                    if row.images:
                        fields["images"] = images.write(row.key, row.images)
                writer.write_rows(rows, extras)

            try:
                builder = self._transfer(job, records, text=not raw, sink=write)
                writer.close()
                builder.images = len(images.names)
                images.publish()  # before the rows that name them are moved into place
            except BaseException:
                images.discard()
                raise
        self._columns = getattr(writer, "columns", None)  # the flat formats' columns, for lineage
        manifest = self._finish(
            context, job, builder, destination=uri(destination), bytes_written=int(writer.bytes_written)
        )
        events = context.get("outlet_events")  # absent when execute() is called outside a task run
        for outlet in self.outlets:
            if events is not None and getattr(outlet, "uri", None) == manifest["destination"]:
                events[outlet].extra = {k: manifest[k] for k in ("rows", "failed", "batch_name")}
        self._judge(job, builder)
        return manifest

    @never_fails
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the destination, with the columns written (``ResultsTransfer._lineage``)."""
        from airflow_provider_gemini import lineage

        destination = lineage.path_dataset(self.destination, self.destination_conn_id)
        return self._lineage(destination, {c: COLUMN_TYPES.get(c, "") for c in self._columns or ()})


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
