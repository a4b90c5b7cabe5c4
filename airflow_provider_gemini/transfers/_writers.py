"""Writers for each output format, fed row by row into a binary stream in bounded memory.

Columns of CSV and Parquet must be fixed before the first row is written: the base columns, then the
structured-output fields (from the response schema, or from the first rows), then the joined input's.
The first ``SAMPLE_ROWS`` rows are held back to decide them; after that, rows stream through.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, BinaryIO

import msgspec

from airflow_provider_gemini.batch.errors import ResultsFormatError
from airflow_provider_gemini.batch.results import FLAT_COLUMNS

_JSONL = msgspec.json.Encoder(enc_hook=str)  # UTF-8 as is; what JSON cannot hold, as its str()
SAMPLE_ROWS = 1000
PARQUET_BATCH_ROWS = 10_000
FORMATS = ("jsonl", "flat_jsonl", "csv", "parquet")


class _Counting(io.RawIOBase):
    """Counts the bytes that pass through to the destination stream."""

    def __init__(self, sink: BinaryIO) -> None:
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

    def __init__(self, sink: BinaryIO) -> None:
        self.out = _Counting(sink)

    def write_block(self, block: bytes) -> None:
        self.out.write(block)

    def close(self) -> None:
        pass

    @property
    def bytes_written(self) -> int:
        return self.out.bytes


class _RowWriter:
    def __init__(self, sink: BinaryIO, known_columns: list[str] | None = None) -> None:
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
    def _start(self) -> None:
        self.text = io.TextIOWrapper(self.out, encoding="utf-8", newline="")  # type: ignore[type-var]
        self.csv = csv.writer(self.text)
        self.names = self.columns or []
        self.csv.writerow(self.names)
        # Only parsed and joined fields can hold lists or objects (written as JSON).
        self.nested_at = [i for i, name in enumerate(self.names) if name not in FLAT_COLUMNS]

    def _write(self, record: dict[str, Any]) -> None:
        get = record.get
        values = [get(name) for name in self.names]
        for i in self.nested_at:
            if isinstance(values[i], (dict, list)):
                values[i] = json.dumps(values[i], ensure_ascii=False)
        self.csv.writerow(values)

    def _finish(self) -> None:
        self.text.flush()
        self.text.detach()


class ParquetWriter(_RowWriter):
    """Row groups of ``PARQUET_BATCH_ROWS``; column types from the first rows (nested values as JSON)."""

    def _start(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        fields = [pa.field(name, _arrow_type(pa, name, self.sample)) for name in self.columns or []]
        self.schema = pa.schema(fields)
        self.writer = pq.ParquetWriter(self.out, self.schema, compression="zstd")
        self.pending: list[dict[str, Any]] = []

    def _write(self, record: dict[str, Any]) -> None:
        self.pending.append(record)
        if len(self.pending) >= PARQUET_BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        arrays = []
        for field in self.schema:
            values = [record.get(field.name) for record in self.pending]
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
        self.pending = []

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


def writer_for(output_format: str, sink: BinaryIO, columns: list[str] | None = None) -> Any:
    if output_format == "jsonl":
        return RawJsonlWriter(sink)
    if output_format == "flat_jsonl":
        return FlatJsonlWriter(sink)
    if output_format == "csv":
        return CsvWriter(sink, columns)
    if output_format == "parquet":
        return ParquetWriter(sink, columns)
    raise ValueError(f"output_format must be one of {', '.join(FORMATS)}, not {output_format!r}")
