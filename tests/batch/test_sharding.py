"""Splitting inputs into shards (the pure grouping, and shard files written through storage) and
adding up manifests, on local files."""

from __future__ import annotations

import json

import pytest

from airflow_provider_gemini.batch.sharding import split_records, sum_manifests
from airflow_provider_gemini.storage import split_requests_file


def write_requests(path, count: int, text: str = "hi") -> list[bytes]:
    lines = [
        json.dumps({"key": f"k{n}", "request": {"contents": [{"parts": [{"text": text}]}]}}).encode() + b"\n"
        for n in range(count)
    ]
    path.write_bytes(b"".join(lines[:2]) + b"\n   \n" + b"".join(lines[2:]))  # blank lines are dropped
    return lines


def test_split_records_in_groups():
    assert split_records(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert split_records([], 3) == []
    with pytest.raises(ValueError, match="max_rows"):
        split_records([1], 0)


def test_split_file_by_rows_keeps_every_line_in_order(tmp_path):
    lines = write_requests(tmp_path / "in.jsonl", 10)
    shards = split_requests_file(tmp_path / "in.jsonl", tmp_path / "out", max_rows=4)
    assert [s.rows for s in shards] == [4, 4, 2]
    assert [s.path.rsplit("/", 1)[-1] for s in shards] == [f"shard-0000{n}.jsonl" for n in range(3)]
    written = b"".join((tmp_path / "out" / f"shard-0000{n}.jsonl").read_bytes() for n in range(3))
    assert written == b"".join(lines)
    assert sum(s.bytes for s in shards) == len(written)
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind


def test_split_file_by_bytes(tmp_path):
    lines = write_requests(tmp_path / "in.jsonl", 6)
    per_line = len(lines[0])
    shards = split_requests_file(
        tmp_path / "in.jsonl", tmp_path / "out", max_rows=100, max_bytes=per_line * 2
    )
    assert [s.rows for s in shards] == [2, 2, 2]
    assert all(s.bytes <= per_line * 2 for s in shards)
    with pytest.raises(ValueError, match="larger than max_bytes"):
        split_requests_file(tmp_path / "in.jsonl", tmp_path / "out2", max_rows=5, max_bytes=per_line - 1)


def manifest(rows: int, failed: int, total: int, batch: float | None, note: str | None = None) -> dict:
    return {
        "destination": f"file:///r{rows}.jsonl",
        "batch_name": f"batches/{rows}",
        "rows": rows,
        "succeeded": rows - failed,
        "failed": failed,
        "missing": 0,
        "bytes": rows * 10,
        "tokens": {"prompt": total // 3, "output": total - total // 3, "cached": 0, "total": total},
        "cost": {
            "currency": "USD",
            "batch": batch,
            "standard": None if batch is None else batch * 2,
            "savings": batch,
            "note": note,
        },
    }


def test_sum_manifests_adds_counts_tokens_and_costs():
    summary = sum_manifests([manifest(4, 1, 30, 0.25), manifest(2, 0, 12, 0.125)])
    assert summary["shards"] == 2
    assert (summary["rows"], summary["succeeded"], summary["failed"], summary["bytes"]) == (6, 5, 1, 60)
    assert summary["tokens"] == {"prompt": 14, "output": 28, "cached": 0, "total": 42}
    assert summary["cost"] == {
        "currency": "USD",
        "batch": 0.375,
        "standard": 0.75,
        "savings": 0.375,
        "note": None,
    }
    assert summary["batch_names"] == ["batches/4", "batches/2"]


def test_an_unknown_cost_makes_the_total_unknown_and_says_why():
    summary = sum_manifests([manifest(4, 0, 30, 0.25), manifest(2, 0, 12, None, note="no price for x")])
    assert summary["cost"]["batch"] is None
    assert summary["cost"]["note"] == "no price for x"


def test_the_core_imports_nothing_from_airflow():
    """``batch/`` is the pure core: no module in it imports Airflow, at the top or inside a function."""
    import ast
    from pathlib import Path

    import airflow_provider_gemini.batch as core

    found = []
    files = sorted(Path(core.__path__[0]).glob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [
                f"{path.name}:{node.lineno} {n}"
                for n in names
                if n.split(".")[0] == "airflow"  # Airflow itself, or our modules outside the core
                or (n.startswith("airflow_provider_gemini") and not n.startswith(core.__name__))
            ]
    assert len(files) > 10
    assert found == []


def test_no_module_imports_another_modules_private_names():
    """A private name (``_x``) or module (``_streaming``) is used only inside the package that owns it
    (``_compat`` belongs to the whole provider, ``hooks._streaming`` to ``hooks``)."""
    import ast
    from pathlib import Path

    import airflow_provider_gemini as package

    root = Path(package.__path__[0])
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = ".".join((package.__name__, *path.relative_to(root).parent.parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(package.__name__):
                continue
            for alias in node.names:
                parts = f"{node.module}.{alias.name}".split(".")
                private = next((i for i, part in enumerate(parts) if part.startswith("_")), None)
                if private is None or parts[private] == "__version__":
                    continue
                owner = ".".join(parts[:private])
                if importer != owner and not importer.startswith(owner + "."):
                    found.append(f"{path.relative_to(root)}:{node.lineno} {'.'.join(parts)}")
    assert found == []
