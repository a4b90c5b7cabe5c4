"""Counts over a block of result lines with NumPy, without parsing any line.

The raw ``jsonl`` passthrough must count lines, answers and tokens at close to copying speed. Parsing
each line runs at ~30 MB/s and regular expressions at ~300 MB/s (a pass per name, each holding the
GIL); here a few vectorised passes find the bytes that are rare in text but start the keys we want
('[' for ``"candidates": [``, 'T' for ``...TokenCount":``), read the bytes around each eight at a
time, and take the digits after the token-count keys.

Inside a JSON string a quote is escaped (``\\"``), so ``TokenCount":`` (a quote right after a letter,
then a colon) only ever ends a key: key names quoted inside generated text never match. Anything
unexpected returns None and the caller counts the exact, slow way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

TOKEN_NAMES = (
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "totalTokenCount",
)
_BEFORE = 16  # the 16 bytes before each 'T' or '[' are read; no line starts with one of our keys
_PAD = 40  # spaces after the block, so the reads after its last key stay inside

_numpy: Any = None
_numpy_loaded = threading.Event()
_numpy_lock = threading.Lock()
_numpy_started = False
_scratch = threading.local()


def preload_numpy() -> None:
    """Import NumPy in a thread (~0.1 s of CPU), so a transfer's first blocks need not wait for it."""
    global _numpy_started
    with _numpy_lock:
        if _numpy_started:
            return
        _numpy_started = True

    def load() -> None:
        global _numpy
        try:
            import numpy

            _numpy = numpy
        except ImportError:
            pass
        finally:
            _numpy_loaded.set()

    threading.Thread(target=load, name="gemini-numpy-import", daemon=True).start()


def wait_for_numpy(timeout: float = 60.0) -> None:
    """Start NumPy's import if need be and wait for it (it is not an error if NumPy is missing)."""
    preload_numpy()
    _numpy_loaded.wait(timeout)


def _loaded_numpy() -> Any:
    preload_numpy()
    return _numpy if _numpy_loaded.is_set() else None


@dataclass(frozen=True)
class BlockScan:
    lines: int  # newline characters
    answered: int  # "candidates" keys with a non-empty list: one per answered line
    tokens: dict[str, int]  # each of TOKEN_NAMES summed


def scan_block(block: bytes) -> BlockScan | None:
    """The counts, or None when NumPy is missing (or still loading) or a token count is not written
    as ``: 123`` or ``:123`` (the caller then counts the exact, slow way)."""
    np = _loaded_numpy()
    if np is None:
        return None
    size = len(block)
    data, flags = _buffers(np, size)
    data[:size] = np.frombuffer(block, dtype=np.uint8)
    data[size:] = ord(" ")
    # Every offset read as the 8 bytes starting there: one gather fetches a whole word.
    words = np.ndarray(shape=(len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    lines = int(np.count_nonzero(np.equal(data[:size], ord("\n"), out=flags[:size])))

    brackets = _positions(np, data, flags, ord("["))
    opening = brackets - 13 - (data[brackets - 1] == ord(" "))  # '"candidates":[' or '"candidates": ['
    listed = _starts(np, words[opening], b'"candida') & _starts(np, words[opening + 8], b'tes":')
    answered = int(np.count_nonzero(listed & (data[brackets + 1] != ord("]"))))

    capitals = _positions(np, data, flags, ord("T"))
    keys = capitals[_starts(np, words[capitals], b"TokenCou") & _starts(np, words[capitals + 8], b'nt"')]
    values = _numbers_after(np, data, words, keys + 11)
    if values is None:
        return None
    # The 16 bytes before each key, as two words, matched against each '"name' right-aligned.
    low, high = words[keys - 16], words[keys - 8]
    tokens = {}
    for name in TOKEN_NAMES:
        quoted = b'"' + name.removesuffix("TokenCount").encode()
        hit = _ends(np, high, quoted[-8:])
        if len(quoted) > 8:
            hit &= _ends(np, low, quoted[:-8])
        tokens[name] = int(values[hit].sum())
    return BlockScan(lines=lines, answered=answered, tokens=tokens)


def _buffers(np: Any, size: int) -> tuple[Any, Any]:
    """This thread's copy of the block (padded with spaces) and a flag per byte, reused from block to
    block: fresh megabyte arrays would cost a page fault per 4 KB every time."""
    padded = -(-size // 8) * 8 + _PAD  # whole words, so flags can be read eight at a time
    if getattr(_scratch, "capacity", 0) < padded:
        _scratch.capacity = max(padded, 2 * getattr(_scratch, "capacity", 0))
        _scratch.data = np.empty(_scratch.capacity, dtype=np.uint8)
        _scratch.flags = np.empty(_scratch.capacity, dtype=bool)
    return _scratch.data[:padded], _scratch.flags[:padded]


def _positions(np: Any, data: Any, flags: Any, byte: int) -> Any:
    """Where ``byte`` is (from ``_BEFORE`` on), for a byte that is rare: the flags are read as words
    of eight, and a word with one flag in it (nearly all) tells its place by its logarithm."""
    words = np.equal(data, byte, out=flags).view(np.uint64)
    hits = np.flatnonzero(words != 0)
    values = words[hits]
    lone = (values & (values - np.uint64(1))) == 0
    positions = hits[lone] * 8 + np.log2(values[lone]).astype(np.int64) // 8
    if not lone.all():  # two or more in one word: look at each of its eight bytes
        crowded = (hits[~lone][:, None] * 8 + np.arange(8)).ravel()
        positions = np.concatenate((positions, crowded[flags[crowded]]))
    return positions[positions >= _BEFORE]


def _starts(np: Any, words: Any, chunk: bytes) -> Any:
    """Whether each 8-byte word begins with ``chunk``."""
    mask = (1 << (8 * len(chunk))) - 1
    return (words & np.uint64(mask)) == np.uint64(int.from_bytes(chunk, "little"))


def _ends(np: Any, words: Any, chunk: bytes) -> Any:
    """Whether each 8-byte word ends with ``chunk``."""
    shift = 8 * (8 - len(chunk))
    mask = ((1 << (8 * len(chunk))) - 1) << shift
    return (words & np.uint64(mask)) == np.uint64(int.from_bytes(chunk, "little") << shift)


def _numbers_after(np: Any, data: Any, words: Any, positions: Any) -> Any:
    """The integer after ``: `` or ``:`` at each position, or None if one is written otherwise."""
    if len(positions) == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.all(data[positions] == ord(":")):
        return None
    starts = positions + 1 + (data[positions + 1] == ord(" "))
    pair = np.stack((words[starts], words[starts + 8]), axis=1)  # 16 bytes after each key
    digits = pair.view(np.uint8).reshape(-1, 16) - np.uint8(ord("0"))  # non-digits wrap above 9
    is_digit = digits <= 9
    count = np.argmin(is_digit, axis=1)  # the first non-digit; 0 when there is none in 16 bytes
    if not np.all(count > 0):
        return None  # no digit, or 16 or more: not a token count as the API writes it
    values = np.zeros(len(positions), dtype=np.int64)
    for column in range(int(count.max())):  # Horner's rule, one digit column at a time
        values = np.where(column < count, values * 10 + digits[:, column], values)
    return values
