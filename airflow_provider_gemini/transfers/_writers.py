"""Writers for each output format, fed row by row into a binary stream in bounded memory.

Columns of CSV and Parquet must be fixed before the first row is written: the base columns, then the
structured-output fields (from the response schema, or from the first rows), then the joined input's.
The first ``SAMPLE_ROWS`` rows are held back to decide them; after that, rows stream through.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from airflow_provider_gemini.batch.errors import ResultsFormatError
from airflow_provider_gemini.batch.results import FLAT_COLUMNS

_JSONL = msgspec.json.Encoder(enc_hook=str)  # UTF-8 as is; what JSON cannot hold, as its str()
SAMPLE_ROWS = 1000
PARQUET_BATCH_ROWS = 10_000
FORMATS = ("jsonl", "flat_jsonl", "csv", "parquet")


class Sink(Protocol):
    """Where a writer's bytes go: a binary file, or anything else with ``write``."""

    def write(self, data: bytes, /) -> object: ...


class _Counting(io.RawIOBase):
    """Counts the bytes that pass through to the destination stream."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sink.write(data)
        self.bytes += len(data)
        return len(data)


class RawJsonlWriter:
    """Result lines exactly as Gemini returned them."""

    def __init__(self, sink: Sink) -> None:
        self.out = _Counting(sink)

    def write_block(self, block: bytes) -> None:
        self.out.write(block)

    def close(self) -> None:
        pass

    @property
    def bytes_written(self) -> int:
        return self.out.bytes


class _RowWriter:
    def __init__(self, sink: Sink, known_columns: list[str] | None = None) -> None:
        self.out = _Counting(sink)
        self.known_columns = known_columns or []
        self.columns: list[str] | None = None
        self.sample: list[dict[str, Any]] = []

    @property
    def bytes_written(self) -> int:
        return self.out.bytes

    def write(self, record: dict[str, Any]) -> None:
        if self.columns is None:
            self.sample.append(record)
            if len(self.sample) >= SAMPLE_ROWS:
                self._fix_columns()
            return
        self._write(record)

    def _fix_columns(self) -> None:
        columns: dict[str, None] = dict.fromkeys([*FLAT_COLUMNS, *self.known_columns])
        for record in self.sample:
            columns.update(dict.fromkeys(record))
        self.columns = list(columns)
        self._start()
        for record in self.sample:
            self._write(record)
        self.sample = []

    def close(self) -> None:
        if self.columns is None:
            self._fix_columns()
        self._finish()

    def _start(self) -> None:
        pass

    def _write(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass


class FlatJsonlWriter(_RowWriter):
    """JSONL needs no fixed columns: rows are encoded a thousand at a time, as they come."""

    def write(self, record: dict[str, Any]) -> None:
        self.sample.append(record)
        if len(self.sample) >= SAMPLE_ROWS:
            self._finish()

    def close(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self.sample:
            self.out.write(_JSONL.encode_lines(self.sample))
            self.sample = []


class CsvWriter(_RowWriter):
    """Rows as the ``csv`` module writes them by default (quotes only where needed, ``\\r\\n``), a
    thousand at a time.

    Quoted by hand for speed: the ``csv`` module inspects each character of each field in turn (about
    70 MB/s of answers); here each line is joined first and searched once for the four characters
    that need quotes, with ``str`` methods, and only a line that has one is quoted field by field.
    ``tests/transfers/test_writers.py`` holds the output to the ``csv`` module's.
    """

    def _start(self) -> None:
        self.lines: list[str] = [_csv_line(self.columns or [])]

    def _write(self, record: dict[str, Any]) -> None:
        self.lines.append(_csv_line(map(record.get, self.columns or [])))
        if len(self.lines) >= SAMPLE_ROWS:
            self._finish()

    def _finish(self) -> None:
        if self.lines:
            self.lines.append("")
            self.out.write("\r\n".join(self.lines).encode())
            self.lines = []


def _csv_line(values: Iterable[Any]) -> str:
    # The usual values (text, None, token counts) converted inline: a call per value costs more.
    texts = [
        v if type(v) is str else "" if v is None else str(v) if type(v) is int else _csv_text(v)
        for v in values
    ]
    line = ",".join(texts)
    if line.count(",") >= len(texts) or '"' in line or "\n" in line or "\r" in line:
        return ",".join(map(_csv_quoted, texts))  # some field has a comma, quote or line end
    return line


def _csv_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_quoted(text: str) -> str:
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


class ParquetWriter(_RowWriter):
    """Row groups of ``PARQUET_BATCH_ROWS``; column types from the first rows (nested values as JSON)."""

    def _start(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        fields = [pa.field(name, _arrow_type(pa, name, self.sample)) for name in self.columns or []]
        self.schema = pa.schema(fields)
        self.writer = pq.ParquetWriter(self.out, self.schema, compression="zstd")
        # Values gathered column by column as rows come (no row kept whole: fewer objects to hold).
        self.pending: list[list[Any]] = [[] for _ in self.schema.names]
        self.gather = list(zip(self.schema.names, self.pending, strict=True))
        self.rows = 0

    def _write(self, record: dict[str, Any]) -> None:
        get = record.get
        for name, values in self.gather:
            values.append(get(name))
        self.rows += 1
        if self.rows >= PARQUET_BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.rows:
            return
        arrays = []
        for field, values in zip(self.schema, self.pending, strict=True):
            if field.name not in FLAT_COLUMNS and self.pa.types.is_string(field.type):
                values = [
                    None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str))
                    for v in values
                ]
            try:
                arrays.append(self.pa.array(values, type=field.type))
            except (self.pa.ArrowInvalid, self.pa.ArrowTypeError) as err:
                raise ResultsFormatError(
                    f"column {field.name!r} changed type after the first rows ({err}); give response_schema "
                    "or write flat_jsonl"
                ) from None
        self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema))
        for values in self.pending:
            values.clear()
        self.rows = 0

    def _finish(self) -> None:
        self._flush()
        self.writer.close()


_BASE_TYPES = {
    "prompt_tokens": "int64",
    "output_tokens": "int64",
    "cached_tokens": "int64",
    "total_tokens": "int64",
}


def _arrow_type(pa: Any, name: str, sample: list[dict[str, Any]]) -> Any:
    if name in FLAT_COLUMNS:
        return pa.int64() if name in _BASE_TYPES else pa.string()
    values = [r.get(name) for r in sample if r.get(name) is not None]
    if values and all(isinstance(v, bool) for v in values):
        return pa.bool_()
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64()
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return pa.float64()
    return pa.string()


def writer_for(output_format: str, sink: Sink, columns: list[str] | None = None) -> Any:
    if output_format == "jsonl":
        return RawJsonlWriter(sink)
    if output_format == "flat_jsonl":
        return FlatJsonlWriter(sink)
    if output_format == "csv":
        return CsvWriter(sink, columns)
    if output_format == "parquet":
        return ParquetWriter(sink, columns)
    raise ValueError(f"output_format must be one of {', '.join(FORMATS)}, not {output_format!r}")
