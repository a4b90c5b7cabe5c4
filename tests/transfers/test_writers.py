"""The output writers, on their own: the hand-quoted CSV matches the csv module's output, and a row
written as it is (no fields beyond the base columns) is its record."""

from __future__ import annotations

import csv
import io
import json

import pytest

from airflow_provider_gemini.batch.results import ResultRow
from airflow_provider_gemini.transfers._writers import SAMPLE_ROWS, writer_for

AWKWARD = ["plain", "a, b", 'say "hi"', "two\nlines", "cr\r", "", " spaced ", "ünï", '"', ","]


def awkward_rows(count: int) -> list[ResultRow]:
    return [
        ResultRow(
            f"k{n}",
            AWKWARD[n % len(AWKWARD)] if n % 7 else None,
            None if n % 3 else "STOP",
            n,
            0,
            0,
            n * 2,
            None if n % 4 else 'blocked: "SAFETY", again',
        )
        for n in range(count)
    ]


def blocks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@pytest.mark.parametrize("with_fields", [False, True])
def test_csv_rows_are_written_as_the_csv_module_writes_them(with_fields):
    rows = awkward_rows(SAMPLE_ROWS * 2 + 7)
    fields = [
        {"score": n / 3, "ok": n % 2 == 0, "tags": {"a": [1, "x, y"]} if n % 5 == 0 else None}
        for n in range(len(rows))
    ]
    sink = io.BytesIO()
    writer = writer_for("csv", sink)
    for rows_block, fields_block in zip(blocks(rows, 333), blocks(fields, 333), strict=True):
        writer.write_rows(rows_block, fields_block if with_fields else None)
    writer.close()

    expected = io.StringIO(newline="")
    reference = csv.writer(expected)
    records = [
        {**row.to_record(), **extra} if with_fields else row.to_record()
        for row, extra in zip(rows, fields, strict=True)
    ]
    reference.writerow(list(records[0]))
    for record in records:
        reference.writerow(
            [json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v for v in record.values()]
        )
    assert sink.getvalue().decode() == expected.getvalue()
    assert writer.bytes_written == len(sink.getvalue())


def test_flat_jsonl_rows_are_their_records():
    rows = [*awkward_rows(50), ResultRow("p", "{}", "STOP", 1, 2, 3, 6, None, parsed={"a": 1})]
    sink = io.BytesIO()
    writer = writer_for("flat_jsonl", sink)
    writer.write_rows(rows[:20])
    writer.write_rows(rows[20:], [{"a": n} for n in range(len(rows) - 20)])
    writer.close()
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert lines[:20] == [row.to_record() for row in rows[:20]]
    assert [list(line) for line in lines[:20]] == [list(row.to_record()) for row in rows[:20]]
    assert lines[20:] == [{**row.to_record(), "a": n} for n, row in enumerate(rows[20:])]
