"""Building and validating a batch input before anything is paid for.

The input (a JSONL file, records, or requests) is streamed once: every line is checked and written,
normalised, to a local JSONL file while its fingerprint is computed. Any problem raises
:class:`BatchInputError` naming the source, the line and the reason, and leaves no file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_gemini.batch.errors import BatchInputError

# Documented limits: an input file up to 2 GB, inline requests under 20 MB. Read as decimal units,
# the conservative reading.
MAX_FILE_BYTES = 2_000_000_000
MAX_INLINE_BYTES = 20_000_000
# Room for the JSON around inline requests ({"batch": {"inputConfig": {"requests": ...}}}).
INLINE_MARGIN = 64 * 1024

_SPELLINGS = {
    "system_instruction": ("systemInstruction", "system_instruction"),
    "generation_config": ("generationConfig", "generation_config"),
    "tools": ("tools",),
    "cached_content": ("cachedContent", "cached_content"),
    "safety_settings": ("safetySettings", "safety_settings"),
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
    if config is None:
        return {}
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
        if self.tools is not None:
            wire["tools"] = _plain(list(self.tools))
        if self.cached_content is not None:
            wire["cachedContent"] = self.cached_content
        if self.safety_settings is not None:
            wire["safetySettings"] = _plain(list(self.safety_settings))
        object.__setattr__(self, "_wire", wire)

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        """The request with these options added where it has none of its own."""
        if not self._wire:
            return request
        merged = dict(request)
        for option, spellings in _SPELLINGS.items():
            wire_name = spellings[0]
            value = self._wire.get(wire_name)
            if value is None:
                continue
            own = next((s for s in spellings if s in request), None)
            if own is None:
                merged[wire_name] = value
            elif option == "generation_config" and isinstance(request[own], dict):
                own_keys = {_camel(k) for k in request[own]}
                merged[own] = {**{k: v for k, v in value.items() if k not in own_keys}, **request[own]}
        return merged


@dataclass(frozen=True)
class PreparedInput:
    """A validated, normalised batch input on local disk."""

    path: str
    request_count: int
    size_bytes: int
    fingerprint: str
    keys_sample: tuple[str, ...]

    @property
    def fits_inline(self) -> bool:
        return self.size_bytes + INLINE_MARGIN < MAX_INLINE_BYTES

    def iter_lines(self) -> Iterator[dict[str, Any]]:
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)

    def inline_requests(self) -> list[dict[str, Any]]:
        return [{"request": line["request"], "metadata": {"key": line["key"]}} for line in self.iter_lines()]


class _Writer:
    """Writes normalised lines, checking keys, size and computing the fingerprint as it goes."""

    def __init__(self, workdir: str | os.PathLike[str], source: str) -> None:
        self.source = source
        fd, self.path = tempfile.mkstemp(dir=workdir, prefix="batch-input-", suffix=".jsonl")
        self.handle = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()
        self.first_seen: dict[str, int] = {}
        self.size = 0
        self.count = 0

    def add(self, key: str, request: dict[str, Any], line: int | None, what: str = "line") -> None:
        if key in self.first_seen:
            raise self.error(f'duplicate key "{key}" (first seen on {what} {self.first_seen[key]})', line)
        self.first_seen[key] = line if line is not None else self.count + 1
        data = (
            json.dumps({"key": key, "request": request}, ensure_ascii=False, separators=(",", ":")) + "\n"
        ).encode()
        self.size += len(data)
        if self.size > MAX_FILE_BYTES:
            raise self.error(
                f"input is over the {MAX_FILE_BYTES / 1e9:.0f} GB batch file limit "
                f"({self.size / 1e9:.2f} GB after {self.count + 1} requests)",
                line,
            )
        self.handle.write(data)
        self.digest.update(data)
        self.count += 1

    def error(self, reason: str, line: int | None) -> BatchInputError:
        return BatchInputError(reason, source=self.source, line=line)

    def finish(self) -> PreparedInput:
        self.handle.close()
        if not self.count:
            raise self.error("no requests: the input is empty", None)
        return PreparedInput(
            path=self.path,
            request_count=self.count,
            size_bytes=self.size,
            fingerprint=self.digest.hexdigest(),
            keys_sample=tuple(list(self.first_seen)[:5]),
        )

    def discard(self) -> None:
        self.handle.close()
        os.unlink(self.path)


def _prepare(workdir: str | os.PathLike[str], source: str, fill: Callable[[_Writer], None]) -> PreparedInput:
    writer = _Writer(workdir, source)
    try:
        fill(writer)
        return writer.finish()
    except BaseException:
        writer.discard()
        raise


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


def _key_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def prepare_from_lines(
    lines: Iterable[bytes],
    *,
    source: str,
    options: RequestOptions | None = None,
    workdir: str | os.PathLike[str],
) -> PreparedInput:
    """Validate and normalise the raw lines of a JSONL file of ``{"key", "request"}`` objects."""
    options = options or RequestOptions()

    def fill(writer: _Writer) -> None:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise writer.error(
                    f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start})", number
                ) from None
            try:
                line = json.loads(text)
            except ValueError as err:
                reason = getattr(err, "msg", str(err))
                column = getattr(err, "colno", None)
                raise writer.error(f"invalid JSON: {reason} (column {column})", number) from None
            if not isinstance(line, dict):
                raise writer.error(f"a line must be a JSON object, not {type(line).__name__}", number)
            if "key" not in line:
                raise writer.error('missing "key"', number)
            key = _key_of(line["key"])
            if key is None:
                raise writer.error('"key" must be a non-empty string or an integer', number)
            if "request" not in line:
                raise writer.error('missing "request"', number)
            if problem := check_request(line["request"]):
                raise writer.error(problem, number)
            writer.add(key, options.apply(line["request"]), number)

    return _prepare(workdir, source, fill)


def prepare_from_records(
    records: Iterable[dict[str, Any]],
    *,
    prompt_template: str | Callable[[dict[str, Any]], str],
    key_field: str,
    options: RequestOptions | None = None,
    workdir: str | os.PathLike[str],
    source: str = "records",
) -> PreparedInput:
    """One request per record: the prompt is ``prompt_template.format_map(record)`` (or a callable)."""
    options = options or RequestOptions()

    def fill(writer: _Writer) -> None:
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise BatchInputError(
                    f"record {number} is not a dict but {type(record).__name__}", source=source
                )
            if key_field not in record:
                raise BatchInputError(f'record {number} has no key field "{key_field}"', source=source)
            key = _key_of(record[key_field])
            if key is None:
                raise BatchInputError(f'record {number}: key field "{key_field}" is empty', source=source)
            try:
                prompt = (
                    prompt_template(record)
                    if callable(prompt_template)
                    else prompt_template.format_map(record)
                )
            except KeyError as err:
                raise BatchInputError(
                    f"record {number} has no field {err} used by the prompt template", source=source
                ) from None
            except (IndexError, ValueError) as err:
                raise BatchInputError(
                    f"record {number}: prompt template failed: {err}", source=source
                ) from None
            request = {"contents": [{"role": "user", "parts": [{"text": str(prompt)}]}]}
            try:
                writer.add(key, options.apply(request), number, what="record")
            except BatchInputError as err:
                raise BatchInputError(f"record {number}: {err.reason}", source=source) from None

    return _prepare(workdir, source, fill)


def prepare_from_requests(
    requests: Iterable[Any],
    *,
    options: RequestOptions | None = None,
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
                    raise BatchInputError(
                        f'request {number}: "key" must be a non-empty string', source=source
                    )
                request = item["request"]
            else:
                key, request = f"request-{number:06d}", item
            if problem := check_request(request):
                raise BatchInputError(f"request {number}: {problem}", source=source)
            try:
                writer.add(key, options.apply(request), number, what="request")
            except BatchInputError as err:
                raise BatchInputError(f"request {number}: {err.reason}", source=source) from None

    return _prepare(workdir, source, fill)
