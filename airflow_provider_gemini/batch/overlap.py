"""Read ahead and write behind in threads, so the network, the decoding and the disk overlap.

Socket reads and file writes release the GIL; the decoding in between holds it. With one thread per
stage the copy runs at the speed of its slowest stage instead of the sum of all three.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """Yield ``items`` while a thread fetches up to ``depth`` more; errors surface where they are read."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as err:
            put(err)

    worker = threading.Thread(target=produce, name="gemini-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()  # a consumer that stops early releases the reader
        worker.join(timeout=5)


@contextmanager
def write_behind(write: Callable[[bytes], object], depth: int = 4) -> Iterator[Callable[[bytes], None]]:
    """A ``put(data)`` whose data ``write`` gets, in order, in a thread; leaving the block waits for
    every write. A failed write is raised by the next ``put`` or on leaving, never lost."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []

    def consume() -> None:
        while (data := buffer.get()) is not _DONE:
            if not failure:
                try:
                    write(data)  # type: ignore[arg-type]
                except BaseException as err:
                    failure.append(err)

    worker = threading.Thread(target=consume, name="gemini-write-behind", daemon=True)
    worker.start()

    def put(data: bytes) -> None:
        if failure:
            raise failure[0]
        buffer.put(data)

    try:
        yield put
    finally:
        buffer.put(_DONE)
        worker.join()
    if failure:
        raise failure[0]
