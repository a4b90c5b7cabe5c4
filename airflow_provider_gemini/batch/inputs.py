"""Building and validating a batch input before anything is paid for.

The input (a JSONL file, records, or requests) is streamed once: every line is checked and written,
normalised, to a local JSONL file while its fingerprint is computed. Any problem raises
:class:`BatchInputError` naming the source, the line and the reason, and leaves no file behind.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import string
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Annotated, Any

import msgspec

from airflow_provider_gemini.batch.errors import BatchInputError, EmptyInputError
from airflow_provider_gemini.batch.overlap import write_behind
from airflow_provider_gemini.batch.schemas import response_schema_problem

# Documented limits: an input file up to 2 GB, inline requests under 20 MB. Read as decimal units,
# the conservative reading.
MAX_FILE_BYTES = 2_000_000_000
MAX_INLINE_BYTES = 20_000_000
# input_mode="auto" sends requests inline up to this size, and through an uploaded file above it: the
# SDK encodes an inline body as Python objects, which peaked at 25 times the input's size (10,000
# requests, 6 MB: +147 MB in the create task), while an upload streams from disk.
AUTO_INLINE_BYTES = 2_000_000
# Room for the JSON around inline requests ({"batch": {"inputConfig": {"requests": ...}}}).
INLINE_MARGIN = 64 * 1024

# The spellings a request may give each option in, the API's first.
_SPELLINGS = {
    "systemInstruction": ("systemInstruction", "system_instruction"),
    "generationConfig": ("generationConfig", "generation_config"),
    "tools": ("tools",),
    "cachedContent": ("cachedContent", "cached_content"),
    "safetySettings": ("safetySettings", "safety_settings"),
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _plain(value: Any) -> Any:
    """SDK pydantic objects to JSON-able dicts (camelCase aliases, no unset fields)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True, by_alias=True)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _generation_config(config: Any) -> dict[str, Any]:
    """A generation config with camelCase top-level keys; schemas inside are user data and kept as is."""
    if isinstance(config, type) and hasattr(config, "model_json_schema"):
        raise TypeError("generation_config must be a dict or GenerateContentConfig, not a model class")
    schema_class = None
    if isinstance(config, dict):
        schema = config.get("response_schema", config.get("responseSchema"))
        if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
            schema_class = schema
            config = {k: v for k, v in config.items() if k not in ("response_schema", "responseSchema")}
    plain = _plain(config)
    if not isinstance(plain, dict):
        raise TypeError(f"generation_config must be a dict, not {type(config).__name__}")
    out = {_camel(k): v for k, v in plain.items() if v is not None}
    if schema_class is not None:
        # A pydantic model class as the schema: send its JSON Schema.
        out["responseJsonSchema"] = schema_class.model_json_schema()
    return out


def check_request(request: Any) -> str | None:
    """Why a GenerateContentRequest is unusable, or None."""
    if not isinstance(request, dict):
        return f'"request" must be an object, not {type(request).__name__}'
    contents = request.get("contents")
    if contents is None:
        return 'request has no "contents"'
    if not isinstance(contents, list):
        return f'"contents" must be a list, not {type(contents).__name__}'
    if not contents:
        return '"contents" is empty'
    for index, content in enumerate(contents, start=1):
        if not isinstance(content, dict) or not content.get("parts"):
            return f'contents[{index}] has no "parts"'
    return None


def check_embed_request(request: Any) -> str | None:
    """Why an EmbedContentRequest is unusable, or None."""
    if not isinstance(request, dict):
        return f'"request" must be an object, not {type(request).__name__}'
    content = request.get("content")
    if content is None:
        hint = ' (an embeddings request takes one "content", not "contents")' if "contents" in request else ""
        return f'request has no "content"{hint}'
    if not isinstance(content, dict) or not content.get("parts"):
        return '"content" has no "parts"'
    return None


@dataclass(frozen=True)
class RequestOptions:
    """Settings merged into every request that does not set them itself.

    :param system_instruction: a str, or a Content (dict or SDK type).
    :param generation_config: a dict or ``GenerateContentConfig``-like object; merged key by key.
    :param tools: a list of tools (dicts or SDK types).
    :param cached_content: a context cache name, ``cachedContents/...``.
    :param safety_settings: a list of safety settings.
    """

    system_instruction: Any = None
    generation_config: Any = None
    tools: Any = None
    cached_content: str | None = None
    safety_settings: Any = None
    _wire: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wire: dict[str, Any] = {}
        if self.system_instruction is not None:
            instruction = _plain(self.system_instruction)
            wire["systemInstruction"] = (
                {"parts": [{"text": instruction}]} if isinstance(instruction, str) else instruction
            )
        if self.generation_config is not None:
            wire["generationConfig"] = _generation_config(self.generation_config)
            if problem := response_schema_problem(wire["generationConfig"]):
                raise BatchInputError(problem, source="generation_config")
        if self.tools is not None:
            wire["tools"] = _plain(list(self.tools))
        if self.cached_content is not None:
            wire["cachedContent"] = self.cached_content
        if self.safety_settings is not None:
            wire["safetySettings"] = _plain(list(self.safety_settings))
        object.__setattr__(self, "_wire", wire)

    #: What the requests are: GenerateContentRequests (``EmbedOptions``: EmbedContentRequests).
    embeddings = False

    @property
    def active(self) -> bool:
        """Whether any option is set, so that requests may change."""
        return bool(self._wire)

    check = staticmethod(check_request)

    def from_text(self, text: str) -> dict[str, Any]:
        """The request that asks this text."""
        return {"contents": [{"role": "user", "parts": [{"text": text}]}]}

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        """The request with these options added where it has none of its own."""
        if not self._wire:
            return request
        merged = dict(request)
        for wire_name, value in self._wire.items():
            own = next((s for s in _SPELLINGS[wire_name] if s in request), None)
            if own is None:
                merged[wire_name] = value
            elif wire_name == "generationConfig" and isinstance(request[own], dict):
                own_keys = {_camel(k) for k in request[own]}
                merged[own] = {**{k: v for k, v in value.items() if k not in own_keys}, **request[own]}
        return merged


# The task types the embeddings API takes (EmbedContentRequest.taskType).
TASK_TYPES = (
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
)


@dataclass(frozen=True)
class EmbedOptions:
    """Settings of an embeddings batch, merged into every EmbedContentRequest that does not set them.

    :param task_type: what the vectors are for (``TASK_TYPES``), e.g. ``RETRIEVAL_DOCUMENT``.
    :param title: the documents' title; the API takes one only with ``RETRIEVAL_DOCUMENT``.
    :param output_dimensionality: the vectors' length (the model's full length when None).
    """

    task_type: str | None = None
    title: str | None = None
    output_dimensionality: int | None = None
    _wire: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    embeddings = True

    def __post_init__(self) -> None:
        if self.task_type is not None and self.task_type not in TASK_TYPES:
            raise BatchInputError(
                f"task_type {self.task_type!r} is not one of {', '.join(TASK_TYPES)}", source="task_type"
            )
        if self.title is not None and self.task_type != "RETRIEVAL_DOCUMENT":
            raise BatchInputError('a title is only taken with task_type="RETRIEVAL_DOCUMENT"', source="title")
        dims = self.output_dimensionality
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
            raise BatchInputError(
                f"output_dimensionality must be a positive integer, not {dims!r}",
                source="output_dimensionality",
            )
        wire = {"taskType": self.task_type, "title": self.title, "outputDimensionality": dims}
        # Built once: ``apply`` runs for every request.
        object.__setattr__(self, "_wire", {name: value for name, value in wire.items() if value is not None})

    @property
    def active(self) -> bool:
        return bool(self._wire)

    check = staticmethod(check_embed_request)

    def from_text(self, text: str) -> dict[str, Any]:
        return {"content": {"parts": [{"text": text}]}}

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        own = {_camel(name) for name in request}
        return {**request, **{k: v for k, v in self._wire.items() if k not in own}}


Options = RequestOptions | EmbedOptions


@dataclass(frozen=True)
class PreparedInput:
    """A validated, normalised batch input on local disk."""

    path: str
    request_count: int
    size_bytes: int
    fingerprint: str
    keys_sample: tuple[str, ...]
    null_records: int = 0  # records with a null prompt field, skipped or filled (``null_policy``)

    @property
    def fits_inline(self) -> bool:
        return self.size_bytes + INLINE_MARGIN < MAX_INLINE_BYTES

    @property
    def inline_by_default(self) -> bool:
        """Small enough to send inline when nobody asked for a mode (``AUTO_INLINE_BYTES``)."""
        return self.size_bytes <= AUTO_INLINE_BYTES

    def iter_lines(self) -> Iterator[dict[str, Any]]:
        with open(self.path, "rb") as handle:
            yield from map(msgspec.json.decode, handle)

    def inline_requests(self) -> list[dict[str, Any]]:
        return [{"request": line["request"], "metadata": {"key": line["key"]}} for line in self.iter_lines()]


class _KeyIndex:
    """Which keys repeat, in about 8 bytes a key: their hashes, spread over buckets of arrays.

    A set of two million key strings takes a quarter of a gigabyte; these arrays take 16 MB, and
    each bucket is checked on its own at the end. A repeated hash is only a suspect: the writer
    confirms it by comparing the keys themselves.
    """

    BUCKETS = 256

    def __init__(self) -> None:
        self._buckets = [array("q") for _ in range(self.BUCKETS)]

    def add(self, keys: Iterable[str]) -> None:
        buckets, mask = self._buckets, self.BUCKETS - 1
        for hashed in map(hash, keys):
            buckets[hashed & mask].append(hashed)

    def repeated_hashes(self) -> set[int]:
        repeated: set[int] = set()
        for bucket in self._buckets:
            if len(set(bucket)) < len(bucket):
                repeated.update(hashed for hashed, count in Counter(bucket).items() if count > 1)
        return repeated


class _Writer:
    """Writes normalised lines, checking the size and computing the fingerprint as it goes, and the
    keys once every line is in."""

    def __init__(self, workdir: str | os.PathLike[str], source: str, what: str = "line") -> None:
        self.source = source
        self.what = what
        fd, self.path = tempfile.mkstemp(dir=workdir, prefix="batch-input-", suffix=".jsonl")
        self.handle = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()
        self.keys = _KeyIndex()
        self.keys_sample: list[str] = []
        self.skipped: list[int] = []  # numbers of blank lines, to name lines of the input
        self.size = 0
        self.count = 0
        # Hashing and writing release the GIL: a thread does both while the next block is checked.
        self._behind = write_behind(self._sink)
        self._put = self._behind.__enter__()
        self._pending: list[bytes] = []
        self._pending_size = 0

    def add(self, key: str, request: dict[str, Any], line: int) -> None:
        """One request, encoded compactly."""
        self.add_line(key, _encode({"key": key, "request": request}), line)

    def add_line(self, key: str, data: bytes, line: int) -> None:
        """One encoded line (without its newline), kept byte for byte."""
        self._write(data + b"\n", [key], line)

    def add_block(self, block: bytes, keys: list[str], first_line: int) -> bool:
        """Lines already in their final form, kept byte for byte; False (nothing written) when the size
        limit is crossed, so that the caller takes the lines one by one and names the line."""
        if self.size + len(block) > MAX_FILE_BYTES:
            return False
        self._write(block, keys, first_line)
        return True

    def skip(self, line: int) -> None:
        self.skipped.append(line)

    def _write(self, data: bytes, keys: list[str], line: int) -> None:
        self.size += len(data)
        if self.size > MAX_FILE_BYTES:
            raise self.error(
                f"input is over the {MAX_FILE_BYTES / 1e9:.0f} GB batch file limit "
                f"({self.size / 1e9:.2f} GB after {self.count + len(keys)} requests)",
                line,
            )
        self.keys.add(keys)
        if len(self.keys_sample) < 5:
            self.keys_sample.extend(keys[: 5 - len(self.keys_sample)])
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= FLUSH_BYTES:
            self._flush()
        self.count += len(keys)

    def _flush(self) -> None:
        if self._pending:
            self._put(b"".join(self._pending))
            self._pending, self._pending_size = [], 0

    def _sink(self, data: bytes) -> None:
        self.handle.write(data)
        self.digest.update(data)

    def _close(self) -> None:
        try:
            self._flush()
        finally:
            self._behind.__exit__(None, None, None)
            self.handle.close()

    def error(self, reason: str, line: int | None) -> BatchInputError:
        if line is not None and self.what != "line":
            return BatchInputError(f"{self.what} {line}: {reason}", source=self.source)
        return BatchInputError(reason, source=self.source, line=line)

    def finish(self) -> PreparedInput:
        self._close()
        if not self.count:
            raise EmptyInputError("no requests: the input is empty", source=self.source)
        if suspects := self.keys.repeated_hashes():
            self._raise_first_repeat(suspects)
        return PreparedInput(
            path=self.path,
            request_count=self.count,
            size_bytes=self.size,
            fingerprint=self.digest.hexdigest(),
            keys_sample=tuple(self.keys_sample),
        )

    def _raise_first_repeat(self, suspects: set[int]) -> None:
        """Read the written lines again for the keys whose hashes repeat; name the first repeat."""
        first_seen: dict[str, int] = {}
        with open(self.path, "rb") as written:
            for index, raw in enumerate(written):
                key = _key_only.decode(raw).key
                if hash(key) not in suspects:
                    continue
                line = self._line_number(index)
                if key in first_seen:
                    raise self.error(
                        f'duplicate key "{key}" (first seen on {self.what} {first_seen[key]})', line
                    )
                first_seen[key] = line

    def _line_number(self, index: int) -> int:
        """The number in the input of the written line at ``index``, counting the blank lines."""
        line = index + 1
        for blank in self.skipped:
            if blank > line:
                break
            line += 1
        return line

    def discard(self) -> None:
        try:
            self._close()
        except OSError:
            pass  # a write that failed is what is being discarded
        finally:
            os.unlink(self.path)


def _prepare(
    workdir: str | os.PathLike[str], source: str, fill: Callable[[_Writer], None], what: str = "line"
) -> PreparedInput:
    writer = _Writer(workdir, source, what)
    try:
        fill(writer)
        return writer.finish()
    except BaseException:
        writer.discard()
        raise


def _key_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


# The shape of a line that is already in its final form: exactly a non-empty string key and a request
# whose contents each have parts. The rest of the request is skipped in C (``check_request`` is the
# same rule for one decoded line, with its reasons).
class _Part(msgspec.Struct, gc=False):
    pass


class _Content(msgspec.Struct, gc=False):
    parts: Annotated[list[_Part], msgspec.Meta(min_length=1)]


class _Request(msgspec.Struct, gc=False):
    contents: Annotated[list[_Content], msgspec.Meta(min_length=1)]


class _KeyOnly(msgspec.Struct, gc=False):
    key: str


class _FinalLine(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    key: Annotated[str, msgspec.Meta(min_length=1)]
    request: _Request


# A block of lines becomes [[line],[line],...]: a line holding anything but one object fails the
# decode, so every item is exactly one line.
_final_lines = msgspec.json.Decoder(list[tuple[_FinalLine]])
_key_only = msgspec.json.Decoder(_KeyOnly)
_encode = msgspec.json.Encoder().encode
BLOCK_BYTES = 256 * 1024  # small enough that each step over a block stays in the CPU's cache
FLUSH_BYTES = 1024 * 1024  # single lines are handed to the writing thread in runs of this size


def _final_keys(block: bytes) -> list[str] | None:
    """The keys of a block of ``\\n``-ended lines when every line is already final, else None."""
    if b"\r" in block or not (block.isascii() or _is_utf8(block)):
        return None
    try:
        lines = _final_lines.decode(b"[[" + block[:-1].replace(b"\n", b"],[") + b"]]")
    except msgspec.DecodeError:
        return None
    keys = [line.key for (line,) in lines]
    return keys if all(key.strip() for key in keys) else None


def _is_utf8(data: bytes, slice_bytes: int = 16 * 1024) -> bool:
    """Whether ``data`` is valid UTF-8. Decoded in slices whose text (up to 4 bytes a character)
    stays in the CPU's cache: about twice as fast as one decode of the whole (benchmarks/prepare_input.py)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), slice_bytes):
            decoder.decode(view[start : start + slice_bytes])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _line_blocks(handle: IO[bytes], block_bytes: int) -> Iterator[bytes]:
    """The file in blocks of whole lines, each ending with ``\\n`` (added to a last line without)."""
    rest: list[bytes] = []  # the start of a line that is longer than a block, joined once
    while chunk := handle.read(block_bytes):
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            rest.append(chunk)
            continue
        yield b"".join([*rest, chunk[:cut]])
        rest = [chunk[cut:]]
    if last := b"".join(rest):
        yield last + b"\n"


def prepare_from_file(
    handle: IO[bytes],
    *,
    source: str,
    options: Options | None = None,
    workdir: str | os.PathLike[str],
    block_bytes: int = BLOCK_BYTES,
) -> PreparedInput:
    """Validate and normalise a JSONL file of ``{"key", "request"}`` objects, read in blocks.

    A line already in its final form (a string key, a request, nothing else) is kept byte for byte;
    any other line is decoded, checked with a reason, given the options and re-encoded. A block whose
    lines are all final is checked in one decode and written whole (see ``benchmarks/prepare_input.py``).
    """
    options = options or RequestOptions()

    def fill(writer: _Writer) -> None:
        number = 1
        for block in _line_blocks(handle, block_bytes):
            # The one-decode check knows GenerateContentRequests only.
            keys = None if options.active or options.embeddings else _final_keys(block)
            if keys is not None and writer.add_block(block, keys, number):
                number += len(keys)
                continue
            for raw in block.split(b"\n")[:-1]:
                _add_line(writer, raw, number, options)
                number += 1

    return _prepare(workdir, source, fill)


def _add_line(writer: _Writer, raw: bytes, number: int, options: Options) -> None:
    if not raw.strip():
        writer.skip(number)
        return
    raw = raw.removesuffix(b"\r")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        reason = f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start})"
        raise writer.error(reason, number) from None
    try:
        line = msgspec.json.decode(raw)
    except msgspec.DecodeError as err:
        raise writer.error(f"invalid JSON: {err}", number) from None
    if not isinstance(line, dict):
        raise writer.error(f"a line must be a JSON object, not {type(line).__name__}", number)
    if "key" not in line:
        raise writer.error('missing "key"', number)
    key = _key_of(line["key"])
    if key is None:
        raise writer.error('"key" must be a non-empty string or an integer', number)
    if "request" not in line:
        raise writer.error('missing "request"', number)
    if problem := options.check(line["request"]):
        raise writer.error(problem, number)
    if not options.active and key is line["key"] and len(line) == 2:
        writer.add_line(key, raw, number)  # already final: kept as it came, as a whole block would be
    else:
        writer.add(key, options.apply(line["request"]), number)


def prepare_from_records(
    records: Iterable[dict[str, Any]],
    *,
    prompt_template: str | Callable[[dict[str, Any]], str],
    key_field: str,
    options: Options | None = None,
    workdir: str | os.PathLike[str],
    source: str = "records",
    null_policy: str = "fail",
) -> PreparedInput:
    """One request per record: the prompt is ``prompt_template.format_map(record)`` (or a callable).

    A null (``None``) in a field the template names would reach the prompt as the text ``None``, paid
    for: ``null_policy`` fails on it (``fail``), leaves the record out (``skip_row``) or fills the
    field with an empty string (``empty``). A callable template gets the record as it is.
    """
    options = options or RequestOptions()
    if null_policy not in NULL_POLICIES:
        raise ValueError(f"null_policy must be one of {', '.join(NULL_POLICIES)}, not {null_policy!r}")
    fields = () if callable(prompt_template) else template_fields(prompt_template)
    render = prompt_template if callable(prompt_template) else prompt_template.format_map
    nulls = 0

    def fill(writer: _Writer) -> None:
        nonlocal nulls
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise BatchInputError(
                    f"record {number} is not a dict but {type(record).__name__}", source=source
                )
            if empty := [name for name in fields if name in record and record[name] is None]:
                if null_policy == "fail":
                    raise BatchInputError(
                        f'record {number}: field "{empty[0]}" is null; the prompt would say "None". '
                        'Set null_policy="skip_row" or "empty", or fill it in the query',
                        source=source,
                    )
                nulls += 1
                if null_policy == "skip_row":
                    continue
                record = {**record, **dict.fromkeys(empty, "")}
            if key_field not in record:
                raise BatchInputError(f'record {number} has no key field "{key_field}"', source=source)
            key = _key_of(record[key_field])
            if key is None:
                raise BatchInputError(f'record {number}: key field "{key_field}" is empty', source=source)
            try:
                prompt = render(record)
            except KeyError as err:
                raise BatchInputError(
                    f"record {number} has no field {err} used by the prompt template", source=source
                ) from None
            except (IndexError, ValueError) as err:
                raise writer.error(f"prompt template failed: {err}", number) from None
            writer.add(key, options.apply(options.from_text(str(prompt))), number)

    return replace(_prepare(workdir, source, fill, what="record"), null_records=nulls)


NULL_POLICIES = ("fail", "skip_row", "empty")


def template_fields(template: str) -> tuple[str, ...]:
    """The record fields a format string reads (``{a.b}`` and ``{a[0]}`` read ``a``)."""
    names = (name for _, name, _, _ in string.Formatter().parse(template) if name)
    return tuple(dict.fromkeys(re.split(r"[.\[]", name, maxsplit=1)[0] for name in names))


def prepare_from_requests(
    requests: Iterable[Any],
    *,
    options: Options | None = None,
    workdir: str | os.PathLike[str],
    source: str = "requests",
) -> PreparedInput:
    """Requests as dicts: ``{"key", "request"}`` pairs, or bare requests keyed ``request-000001``..."""
    options = options or RequestOptions()

    def fill(writer: _Writer) -> None:
        for number, item in enumerate(requests, start=1):
            item = _plain(item)
            if isinstance(item, dict) and "request" in item:
                key = _key_of(item.get("key"))
                if key is None:
                    raise writer.error('"key" must be a non-empty string', number)
                request = item["request"]
            else:
                key, request = f"request-{number:06d}", item
            if problem := options.check(request):
                raise writer.error(problem, number)
            writer.add(key, options.apply(request), number)

    return _prepare(workdir, source, fill, what="request")
