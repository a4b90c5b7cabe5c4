"""The page's server-side cache: one load per key per ttl, shared by concurrent callers."""

from __future__ import annotations

import contextlib
import threading

from airflow_provider_gemini.plugins.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_value_is_loaded_once_per_ttl() -> None:
    clock, calls = Clock(), []
    cache: TtlCache[int] = TtlCache(4.0, clock)
    load = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert [cache.get("k", load) for _ in range(3)] == [1, 1, 1]
    clock.now = 3.9
    assert cache.get("k", load) == 1
    clock.now = 4.0
    assert cache.get("k", load) == 2
    assert cache.get("other", load) == 3


def test_concurrent_callers_share_one_load() -> None:
    cache: TtlCache[str] = TtlCache(60.0)
    started, release, calls = threading.Event(), threading.Event(), []

    def slow() -> str:
        calls.append(1)
        started.set()
        release.wait(30)
        return "page"

    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(cache.get("k", slow)))
    first.start()
    started.wait(30)
    others = [threading.Thread(target=lambda: results.append(cache.get("k", slow))) for _ in range(4)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(30)
    assert (results, calls) == (["page"] * 5, [1])


def test_a_failed_load_is_not_remembered() -> None:
    cache: TtlCache[int] = TtlCache(60.0)

    def fail() -> int:
        raise RuntimeError("down")

    for _ in range(2):
        with contextlib.suppress(RuntimeError):
            cache.get("k", fail)
    assert cache.get("k", lambda: 5) == 5
