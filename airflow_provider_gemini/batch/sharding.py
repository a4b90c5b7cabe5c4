"""Split an input too large for one batch job into shards, and add up the shards' manifests.

A job takes at most 2 GB of input; teams also cap jobs by rows, so that one bad shard costs little to
re-run and results land in parallel. Shards are plain request JSONL files, one per job, each written
whole (a hidden name, then renamed) so a killed task leaves no half shard to submit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_gemini.batch.inputs import MAX_FILE_BYTES

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


def split_requests_file(
    source: Any,
    destination_dir: Any,
    *,
    max_rows: int,
    max_bytes: int = MAX_FILE_BYTES,
    prefix: str = "shard",
    conn_id: str | None = None,
) -> list[Shard]:
    """Split a request JSONL file (any ``ObjectStoragePath`` or path) into files of at most ``max_rows``
    lines and ``max_bytes`` bytes, streamed line by line; blank lines are dropped.

    Lines are copied as they are: the create operator validates each shard (file, line and reason)
    before anything is uploaded.

    :return: the shards in input order, named ``{prefix}-00000.jsonl`` and so on.
    """
    _check_limit(max_rows)
    source_path = _storage_path(source, conn_id)
    target_dir = _storage_path(destination_dir, conn_id)
    if target_dir.protocol in ("", "file", "local"):
        target_dir.mkdir(parents=True, exist_ok=True)
    from airflow_provider_gemini._compat import iter_lines

    shards: list[Shard] = []
    with source_path.open("rb") as handle:
        for number, lines in enumerate(_groups(iter_lines(handle), max_rows, max_bytes)):
            target = target_dir / f"{prefix}-{number:05d}.jsonl"
            shards.append(_write_whole(target, lines))
    return shards


def _groups(handle: Iterable[bytes], max_rows: int, max_bytes: int) -> Iterator[list[bytes]]:
    group: list[bytes] = []
    size = 0
    for raw in handle:
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


def _write_whole(target: Any, lines: list[bytes]) -> Shard:
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    with temporary.open("wb") as sink:
        for line in lines:
            sink.write(line)
    temporary.rename(target)
    return Shard(path=str(target), rows=len(lines), bytes=sum(map(len, lines)))


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


def _storage_path(value: Any, conn_id: str | None) -> Any:
    from airflow.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return value
    return ObjectStoragePath(str(value), conn_id=conn_id)
