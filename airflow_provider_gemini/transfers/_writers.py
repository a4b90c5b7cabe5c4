"""Writers for each output format, fed a block of rows at a time into a binary stream in bounded memory.

A block is the rows of a block of result lines (``ResultRow``), with, when the rows carry more than
the base columns (parsed answers, joined input), one dict of those fields per row. The base columns
are read from the rows column by column (``attrgetter``, in C): no dict is built per row unless
there are such fields.

Columns of CSV and Parquet must be fixed before the first row is written: the base columns, then the
structured-output fields (from the response schema, or from the first rows), then the joined input's.
The first ``SAMPLE_ROWS`` rows are held back to decide them; after that, rows stream through.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Protocol

import msgspec

from airflow_provider_gemini.batch.errors import ResultsFormatError
from airflow_provider_gemini.batch.results import FLAT_COLUMNS, ResultRow

_JSONL = msgspec.json.Encoder(enc_hook=str)  # UTF-8 as is; what JSON cannot hold, as its str()
SAMPLE_ROWS = 1000
PARQUET_BATCH_ROWS = 5_000  # a row group: about 5 MB of 1 KB answers; twice that held 30 MB more at the peak
# Vectors are held as Python floats (32 bytes each) until their row group is written: a row group holds
# at most this many of them (768 dimensions: 260 rows, about 6 MB).
PARQUET_BATCH_FLOATS = 200_000
FORMATS = ("jsonl", "flat_jsonl", "csv", "parquet")
_TOKEN_COLUMNS = frozenset(("prompt_tokens", "output_tokens", "cached_tokens", "total_tokens"))
_BASE_GET = {name: attrgetter(name) for name in FLAT_COLUMNS}

Extras = Sequence[dict[str, Any]] | None  # per row, the fields beyond the base columns; None: none at all


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
        self.held: list[tuple[Sequence[ResultRow], Extras]] = []
        self.held_rows = self.held_floats = 0

    @property
    def bytes_written(self) -> int:
        return self.out.bytes

    def write_rows(self, rows: Sequence[ResultRow], extras: Extras = None) -> None:
        """A block of rows, with the fields beyond the base columns of each (or None)."""
        if self.columns is None:
            self.held.append((rows, extras))
            self.held_rows += len(rows)
            # Vectors are large: hold no more of them than a Parquet row group would.
            vector = extras[0].get("embedding") if extras else None
            self.held_floats += len(rows) * len(vector) if isinstance(vector, list) else 0
            if self.held_rows >= SAMPLE_ROWS or self.held_floats >= PARQUET_BATCH_FLOATS:
                self._fix_columns()
            return
        self._write(rows, extras)

    def _fix_columns(self) -> None:
        columns: dict[str, None] = dict.fromkeys([*FLAT_COLUMNS, *self.known_columns])
        for _, extras in self.held:
            for fields in extras or ():
                columns.update(dict.fromkeys(fields))
        self.columns = list(columns)
        self._start()
        for rows, extras in self.held:
            self._write(rows, extras)
        self.held = []

    def close(self) -> None:
        if self.columns is None:
            self._fix_columns()
        self._finish()

    def _column(self, name: str, rows: Sequence[ResultRow], extras: Extras) -> list[Any]:
        """One column's values in a block."""
        if name in _BASE_GET:
            return list(map(_BASE_GET[name], rows))
        if extras is None:
            return [None] * len(rows)
        return [fields.get(name) for fields in extras]

    def _start(self) -> None:
        pass

    def _write(self, rows: Sequence[ResultRow], extras: Extras) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass


class FlatJsonlWriter(_RowWriter):
    """JSONL needs no fixed columns: each block is encoded as it comes, rows as they are when they
    carry only the base columns (a ``ResultRow`` encodes as its record)."""

    def write_rows(self, rows: Sequence[ResultRow], extras: Extras = None) -> None:
        if extras is None:
            self.out.write(_JSONL.encode_lines(rows))
        else:
            records = [{**row.to_record(), **fields} for row, fields in zip(rows, extras, strict=True)]
            self.out.write(_JSONL.encode_lines(records))

    def close(self) -> None:
        pass


class CsvWriter(_RowWriter):
    """Rows as the ``csv`` module writes them by default (quotes only where needed, ``\\r\\n``).

    Built column by column for speed (the ``csv`` module inspects each character of each field in
    turn: about 70 MB/s of answers): each column of a block is turned into text, joined and searched
    once for the four characters that need quotes, and only a column that has one is quoted field by
    field; rows are then joined in C. ``tests/transfers/test_writers.py`` holds the output to the
    ``csv`` module's.
    """

    def _start(self) -> None:
        self.out.write((",".join(_csv_quoted_column(self.columns or [])) + "\r\n").encode())

    def _write(self, rows: Sequence[ResultRow], extras: Extras) -> None:
        if not rows:
            return
        columns = [_csv_quoted_column(self._csv_texts(name, rows, extras)) for name in self.columns or []]
        self.out.write(("\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n").encode())

    def _csv_texts(self, name: str, rows: Sequence[ResultRow], extras: Extras) -> list[str]:
        values = self._column(name, rows, extras)
        if name in _TOKEN_COLUMNS:
            return list(map(str, values))
        if name in _BASE_GET:  # text or None
            return ["" if v is None else v for v in values] if None in values else values
        return [v if type(v) is str else "" if v is None else _csv_text(v) for v in values]


def _csv_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if type(value) is list and value and type(value[0]) is float:  # a vector: JSON in C, 10 times faster
        return _JSONL.encode(value).decode()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_quoted_column(texts: list[str]) -> list[str]:
    """The column as is, unless some field has a comma, quote or line end: then each such field quoted."""
    joined = "".join(texts)
    if "," in joined or '"' in joined or "\n" in joined or "\r" in joined:
        return list(map(_csv_quoted, texts))
    return texts


def _csv_quoted(text: str) -> str:
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


class ParquetWriter(_RowWriter):
    """Row groups of ``PARQUET_BATCH_ROWS`` (fewer rows with vectors: ``PARQUET_BATCH_FLOATS``); column
    types from the first rows (nested values as JSON, vectors as fixed-size lists of float32)."""

    def _start(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        sample: dict[str, list[Any]] = {name: [] for name in self.columns or []}
        for rows, extras in self.held:
            for name, values in sample.items():
                values += self._column(name, rows, extras)
        fields = [pa.field(name, _arrow_type(pa, name, sample[name])) for name in self.columns or []]
        self.schema = pa.schema(fields)
        widths = [f.type.list_size for f in fields if pa.types.is_fixed_size_list(f.type)]
        self.vectors = bool(widths)
        self.batch_rows = max(100, PARQUET_BATCH_FLOATS // sum(widths)) if widths else PARQUET_BATCH_ROWS
        self.writer = pq.ParquetWriter(self.out, self.schema, compression="zstd")
        # Values gathered column by column as blocks come (no row kept whole: fewer objects to hold).
        self.pending: list[list[Any]] = [[] for _ in self.schema.names]
        self.rows = 0

    def _write(self, rows: Sequence[ResultRow], extras: Extras) -> None:
        for name, values in zip(self.schema.names, self.pending, strict=True):
            values += self._column(name, rows, extras)
        self.rows += len(rows)
        if self.rows >= self.batch_rows:
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
        del arrays
        # Vectors' row groups are large: what one took goes back to the system (doing it for text rows
        # cost them a fifth of their speed: 300 MB, 242 -> 190 MB/s).
        if self.vectors:
            self.pa.default_memory_pool().release_unused()
        for values in self.pending:
            values.clear()
        self.rows = 0

    def _finish(self) -> None:
        self._flush()
        self.writer.close()


def _arrow_type(pa: Any, name: str, sample: list[Any]) -> Any:
    if name in FLAT_COLUMNS:
        return pa.int64() if name in _TOKEN_COLUMNS else pa.string()
    values = [v for v in sample if v is not None]
    if values and all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in values):
        # Vectors (an embeddings job's): a fixed-size list of float32 when they all have one length.
        lengths = {len(v) for v in values}
        return pa.list_(pa.float32(), lengths.pop()) if len(lengths) == 1 else pa.list_(pa.float32())
    if values and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in values):
        return pa.list_(pa.string())  # e.g. the paths of an answer's images
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
    row_writers = {"flat_jsonl": FlatJsonlWriter, "csv": CsvWriter, "parquet": ParquetWriter}
    if output_format not in row_writers:
        raise ValueError(f"output_format must be one of {', '.join(FORMATS)}, not {output_format!r}")
    return row_writers[output_format](sink, columns)
