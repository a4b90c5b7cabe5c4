"""Split an input too large for one batch job into shards, and add up the shards' manifests.

A job takes at most 2 GB of input; teams also cap jobs by rows, so that one bad shard costs little to
re-run and results land in parallel. The pure part lives here; writing shard files to object storage
is :func:`airflow_provider_gemini.storage.split_requests_file`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

COUNTS = ("rows", "succeeded", "failed", "missing", "bytes")
TOKENS = ("prompt", "output", "cached", "total")


@dataclass(frozen=True)
class Shard:
    """One shard file: where it is, and how many request lines and bytes it holds."""

    path: str
    rows: int
    bytes: int


def split_records(records: Sequence[Any], max_rows: int) -> list[list[Any]]:
    """Records in consecutive groups of at most ``max_rows``."""
    _check_limit(max_rows)
    return [list(records[start : start + max_rows]) for start in range(0, len(records), max_rows)]


def group_lines(lines: Iterable[bytes], max_rows: int, max_bytes: int) -> Iterator[list[bytes]]:
    """Request lines in consecutive groups of at most ``max_rows`` lines and ``max_bytes`` bytes; blank
    lines are dropped and each line ends with a newline. The limits are checked at the call."""
    _check_limit(max_rows)
    return _grouped(lines, max_rows, max_bytes)


def _grouped(lines: Iterable[bytes], max_rows: int, max_bytes: int) -> Iterator[list[bytes]]:
    group: list[bytes] = []
    size = 0
    for raw in lines:
        if not raw.strip():
            continue
        line = raw if raw.endswith(b"\n") else raw + b"\n"
        if len(line) > max_bytes:
            raise ValueError(f"a request line of {len(line)} bytes is larger than max_bytes={max_bytes}")
        if group and (len(group) == max_rows or size + len(line) > max_bytes):
            yield group
            group, size = [], 0
        group.append(line)
        size += len(line)
    if group:
        yield group


def sum_manifests(manifests: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One summary of several results manifests: counts and tokens added up, costs too.

    A cost is None when any shard's is unknown (its ``note`` says why); the destinations and batch
    names are listed in order.
    """
    items = list(manifests)
    summary: dict[str, Any] = {"shards": len(items)}
    for name in COUNTS:
        summary[name] = sum(int(m.get(name) or 0) for m in items)
    summary["tokens"] = {
        name: sum(int((m.get("tokens") or {}).get(name) or 0) for m in items) for name in TOKENS
    }
    costs = [m.get("cost") or {} for m in items]
    summary["cost"] = {
        "currency": next((c["currency"] for c in costs if c.get("currency")), "USD"),
        **{name: _sum_or_none(c.get(name) for c in costs) for name in ("batch", "standard", "savings")},
        "note": "; ".join(sorted({c["note"] for c in costs if c.get("note")})) or None,
    }
    summary["destinations"] = [m.get("destination") for m in items]
    summary["batch_names"] = [m.get("batch_name") for m in items]
    return summary


def _sum_or_none(values: Iterable[Any]) -> float | None:
    total = 0.0
    for value in values:
        if value is None:
            return None
        total += float(value)
    return round(total, 6)


def _check_limit(max_rows: int) -> None:
    if not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer, not {max_rows!r}")
