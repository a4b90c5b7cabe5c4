"""A brief, shared memory of API answers: however many browsers refresh, one list call per key per
``ttl`` seconds reaches the API, and concurrent requests for the same key wait for one call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 256


class TtlCache(Generic[T]):
    """``get(key, load)`` returns the value loaded less than ``ttl`` seconds ago, else calls ``load``
    once (other callers for the key wait for it). Failures are not remembered."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._values: dict[Hashable, tuple[float, T]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            hit = self._values.get(key)
            if hit is not None and self.clock() - hit[0] < self.ttl:
                return hit[1]
            value = load()
            with self._guard:
                if len(self._values) >= MAX_ENTRIES:
                    self._drop_expired()
                self._values[key] = (self.clock(), value)
            return value

    def _drop_expired(self) -> None:
        now = self.clock()
        for key in [k for k, (at, _) in self._values.items() if now - at >= self.ttl]:
            del self._values[key]
            self._locks.pop(key, None)
        if len(self._values) >= MAX_ENTRIES:  # all fresh: forget the oldest
            oldest = min(self._values, key=lambda k: self._values[k][0])
            del self._values[oldest]
