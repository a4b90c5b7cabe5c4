"""Files on any object storage, as the operators and helpers take them (an ``ObjectStoragePath`` or a
path or URI string): one coercion for every module, and shard files written whole.

Airflow-side on purpose: the pure core (``batch/``) imports nothing from Airflow.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from airflow_provider_gemini._compat import iter_lines
from airflow_provider_gemini.batch.inputs import MAX_FILE_BYTES
from airflow_provider_gemini.batch.sharding import Shard, group_lines

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def storage_path(value: Any, conn_id: str | None = None) -> ObjectStoragePath:
    """``value`` as an ``ObjectStoragePath`` (kept as it is when it already is one), read with ``conn_id``."""
    from airflow.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return value
    return ObjectStoragePath(str(value), conn_id=conn_id)


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
    before anything is uploaded. Each shard is written whole (a hidden name, then renamed), so a killed
    task leaves no half shard to submit.

    :return: the shards in input order, named ``{prefix}-00000.jsonl`` and so on.
    """
    source_path = storage_path(source, conn_id)
    target_dir = storage_path(destination_dir, conn_id)
    shards: list[Shard] = []
    with source_path.open("rb") as handle:
        groups = group_lines(iter_lines(handle), max_rows, max_bytes)  # checks the limits first
        if target_dir.protocol in ("", "file", "local"):
            target_dir.mkdir(parents=True, exist_ok=True)
        for number, lines in enumerate(groups):
            shards.append(_write_whole(target_dir / f"{prefix}-{number:05d}.jsonl", lines))
    return shards


def _write_whole(target: ObjectStoragePath, lines: list[bytes]) -> Shard:
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    with temporary.open("wb") as sink:
        for line in lines:
            sink.write(line)
    temporary.rename(target)
    return Shard(path=str(target), rows=len(lines), bytes=sum(map(len, lines)))
