"""The output writers, on their own: the hand-quoted CSV matches the csv module's output."""

from __future__ import annotations

import csv
import io
import json

from airflow_provider_gemini.transfers._writers import SAMPLE_ROWS, writer_for


def test_csv_rows_are_written_as_the_csv_module_writes_them():
    awkward = ["plain", "a, b", 'say "hi"', "two\nlines", "cr\r", "", " spaced ", "ünï", '"', ","]
    records = [
        {
            "key": f"k{n}",
            "text": awkward[n % len(awkward)],
            "finish_reason": None if n % 3 else "STOP",
            "prompt_tokens": n,
            "output_tokens": 0,
            "cached_tokens": 0,
            "total_tokens": n * 2,
            "error": None if n % 4 else 'blocked: "SAFETY", again',
            "score": n / 3,
            "ok": n % 2 == 0,
            "tags": {"a": [1, "x, y"]} if n % 5 == 0 else None,
        }
        for n in range(SAMPLE_ROWS * 2 + 7)
    ]
    sink = io.BytesIO()
    writer = writer_for("csv", sink)
    for record in records:
        writer.write(record)
    writer.close()

    expected = io.StringIO(newline="")
    reference = csv.writer(expected)
    reference.writerow(list(records[0]))
    for record in records:
        reference.writerow(
            [json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v for v in record.values()]
        )
    assert sink.getvalue().decode() == expected.getvalue()
    assert writer.bytes_written == len(sink.getvalue())
