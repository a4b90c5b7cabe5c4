"""The read-ahead thread: order kept, errors surface where read, an early stop releases the reader."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_gemini.batch.overlap import read_ahead, write_behind


def test_items_arrive_in_order():
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))


def test_errors_surface_after_the_items_before_them():
    def items():
        yield 1
        yield 2
        raise ConnectionResetError("dropped")

    reader = read_ahead(items())
    assert [next(reader), next(reader)] == [1, 2]
    with pytest.raises(ConnectionResetError, match="dropped"):
        next(reader)


def test_stopping_early_releases_the_reader():
    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    reader = read_ahead(endless(), depth=2)
    assert next(reader) == 0
    reader.close()
    assert not any(t.name == "gemini-read-ahead" and t.is_alive() for t in threading.enumerate())
    assert len(produced) < 10


def test_write_behind_keeps_order_and_waits_for_every_write():
    written: list[bytes] = []
    with write_behind(written.append, depth=2) as put:
        for n in range(500):
            put(b"%d" % n)
    assert written == [b"%d" % n for n in range(500)]


def test_a_failed_write_is_raised_not_lost():
    def write(data: bytes) -> None:
        if data == b"3":
            raise OSError("disk full")

    def copy_five() -> None:
        with write_behind(write) as put:
            for n in range(5):
                put(b"%d" % n)

    with pytest.raises(OSError, match="disk full"):
        copy_five()
    assert not any(t.name == "gemini-write-behind" and t.is_alive() for t in threading.enumerate())
