"""Files on any object storage, as the operators and helpers take them (an ``ObjectStoragePath`` or a
path or URI string): one coercion for every module, and one way to write a file whole.

Airflow-side on purpose: the pure core (``batch/``) imports nothing from Airflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
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


def uri(path: ObjectStoragePath) -> str:
    """The path as users write it: without the connection id Airflow puts in ``str()``."""
    if path.protocol in ("", "file", "local"):
        text = str(path)
        return text if "://" in text else f"file://{text}"
    return f"{path.protocol}://{path.path}"


def check_writable(destination: ObjectStoragePath) -> None:
    """Write and remove an empty hidden sibling of ``destination``, so that a missing bucket or a
    refused write shows before anything is read or paid for, naming the path.

    An object store buffers what is written and talks to the server only on flush: without this, a
    missing bucket would show only once the whole result file was read.
    """
    probe = destination.parent / f".{destination.name}.probe"
    try:
        if destination.protocol in ("", "file", "local"):
            destination.parent.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"")
        probe.unlink(missing_ok=True)
    except Exception as err:
        raise OSError(f"cannot write to {uri(destination)}: {type(err).__name__}: {err}") from err


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
            target = target_dir / f"{prefix}-{number:05d}.jsonl"
            with atomic_sink(target) as sink:
                for line in lines:
                    sink.write(line)  # (not writelines: Airflow sees a write as the file's lineage)
            shards.append(Shard(path=str(target), rows=len(lines), bytes=sum(map(len, lines))))
    return shards


@contextmanager
def atomic_sink(destination: ObjectStoragePath) -> Iterator[Any]:
    """A binary stream to a hidden sibling of ``destination``, moved into place only on success.

    On any failure the sibling is removed; a killed process leaves at most the hidden sibling, never
    a partial ``destination``. The sibling's name is fixed, so the retry of a killed transfer writes
    over what it left and nothing stays behind.
    """
    temporary = destination.parent / f".{destination.name}.partial"
    if destination.protocol in ("", "file", "local"):
        destination.parent.mkdir(parents=True, exist_ok=True)  # object stores have no folders to make
    try:
        with temporary.open("wb") as sink:
            yield sink
        temporary.rename(destination)
    except BaseException:
        with suppress(Exception):  # cleaning up must not hide the real error
            temporary.unlink(missing_ok=True)
        raise
