"""Result lines to rows: one typed decoder for every output format and for the manifest.

A result line is ``{"key", "response": GenerateContentResponse}`` or, for a request that failed,
``{"key", "error" | "status": {"code", "message", "status"}}``. Inline results carry the key in
``metadata``. Both spellings of every field read here (camelCase and snake_case) are declared.

Each line is decoded by msgspec into the small structures below, which name only what a row or the
manifest uses; the rest of a line is skipped in C. A candidate's content (the answer's text) is read
only when a row needs it: the ``jsonl`` passthrough never does, yet it counts every line exactly as
the flat formats do, because both go through ``_row``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

import msgspec

from airflow_provider_gemini.batch.errors import ResultsFormatError

# The base columns, in order, with their types as lineage's schema facet names them (parsed and
# joined columns vary).
COLUMN_TYPES = {
    "key": "string",
    "text": "string",
    "finish_reason": "string",
    "prompt_tokens": "integer",
    "output_tokens": "integer",
    "cached_tokens": "integer",
    "total_tokens": "integer",
    "error": "string",
}
FLAT_COLUMNS = tuple(COLUMN_TYPES)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


# What is read of a line. Decoded JSON holds no reference cycles, hence gc=False (faster to allocate).
class _Usage(msgspec.Struct, gc=False):
    promptTokenCount: int | None = None
    prompt_token_count: int | None = None
    candidatesTokenCount: int | None = None
    candidates_token_count: int | None = None
    thoughtsTokenCount: int | None = None  # billed as output
    thoughts_token_count: int | None = None
    cachedContentTokenCount: int | None = None
    cached_content_token_count: int | None = None
    totalTokenCount: int | None = None
    total_token_count: int | None = None


class _Blob(msgspec.Struct, gc=False):
    mimeType: str | None = None
    mime_type: str | None = None
    data: str | None = None  # base64


class _Part(msgspec.Struct, gc=False):
    text: str | None = None
    thought: bool | None = None
    inlineData: _Blob | None = None  # an image the model made (responseModalities IMAGE)
    inline_data: _Blob | None = None


class _Content(msgspec.Struct, gc=False):
    parts: list[_Part] | None = None


class _Candidate(msgspec.Struct, gc=False):
    finishReason: str | None = None
    finish_reason: str | None = None


class _Answer(_Candidate, gc=False):
    """A candidate with its text, for rows that carry it."""

    content: _Content | None = None


class _Embedding(msgspec.Struct, gc=False):
    values: list[float] | None = None


class _Counted(msgspec.Struct, gc=False):
    """An embedding seen, its values left as raw JSON (the passthrough only counts it)."""

    values: msgspec.Raw = msgspec.Raw(b"")  # (Raw cannot be part of a union)


_C = TypeVar("_C", bound=_Candidate)
_E = TypeVar("_E", _Embedding, _Counted)


class _Feedback(msgspec.Struct, gc=False):
    blockReason: str | None = None
    block_reason: str | None = None


class _Response(msgspec.Struct, Generic[_C, _E], gc=False):
    candidates: list[_C] | None = None
    embedding: _E | None = None  # an EmbedContentResponse
    usageMetadata: _Usage | None = None
    usage_metadata: _Usage | None = None
    promptFeedback: _Feedback | None = None
    prompt_feedback: _Feedback | None = None


class _Status(msgspec.Struct, gc=False):
    code: int | str | None = None
    message: Any = None
    status: str | None = None


class _Metadata(msgspec.Struct, gc=False):
    key: str | int | None = None


class _Line(msgspec.Struct, Generic[_C, _E], gc=False):
    key: str | int | None = None
    metadata: _Metadata | None = None
    response: _Response[_C, _E] | None = None
    error: _Status | str | None = None
    status: _Status | str | None = None


# The same line read two ways: with each answer's text (flat rows), or without (what is counted
# alone, for the passthrough: the text is skipped unread). strict=False: int64 counts may travel as
# JSON strings ("12").
_LINE: dict[bool, msgspec.json.Decoder[_Line[Any, Any]]] = {
    True: msgspec.json.Decoder(_Line[_Answer, _Embedding], strict=False),
    False: msgspec.json.Decoder(_Line[_Candidate, _Counted], strict=False),
}
_NO_USAGE = _Usage()


class ResultRow(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """One request's outcome, flattened; encoded as JSON it is its base record (``parsed`` is left out)."""

    key: str
    text: str | None
    finish_reason: str | None
    prompt_tokens: int
    output_tokens: int
    cached_tokens: int
    total_tokens: int
    error: str | None
    parsed: dict[str, Any] | None = None
    embedding: list[float] | None = None  # an embeddings job's vector
    images: list[tuple[str, str]] | None = None  # (MIME type, base64 data) of each image in the answer

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def to_record(self, *, parse_json: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """A flat dict: the base columns, then the ``fields`` beyond them."""
        record: dict[str, Any] = {
            "key": self.key,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.total_tokens,
            "error": self.error,
        }
        if parse_json or extra or self.embedding is not None:
            record.update(self.fields(parse_json=parse_json, extra=extra))
        return record

    def fields(self, *, parse_json: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The fields beyond the base columns: an embedding's vector, the parsed answer's fields, then
        the joined input's.

        A parsed field named like a base column is prefixed ``parsed_``; an input field named like
        either is prefixed ``input_``.
        """
        fields: dict[str, Any] = {}
        if self.embedding is not None:
            fields["embedding"] = self.embedding
        if parse_json and self.parsed:
            for name, value in self.parsed.items():
                fields[f"parsed_{name}" if name in _BASE or name in fields else name] = value
        if extra:
            for name, value in extra.items():
                fields[f"input_{name}" if name in _BASE or name in fields else name] = value
        return fields


_BASE = frozenset(FLAT_COLUMNS)


class _NoKey(Exception):
    """A line without a key; re-raised with its line number."""


def _row(line: _Line[Any, Any], text: bool, parse_json: bool) -> ResultRow:
    """The one place a decoded line becomes an outcome: succeeded, failed or blocked, and its tokens."""
    key = line.key
    if key is None and line.metadata is not None:
        key = line.metadata.key
    if key is None:
        raise _NoKey
    response, error = line.response, line.error
    if error is None and response is None:
        error = line.status
    if error is not None or response is None:
        message = _error_text(error) if error is not None else "no response"
        return ResultRow(str(key), None, None, 0, 0, 0, 0, message)
    usage = response.usageMetadata or response.usage_metadata or _NO_USAGE
    prompt = usage.promptTokenCount or usage.prompt_token_count or 0
    output = (usage.candidatesTokenCount or usage.candidates_token_count or 0) + (
        usage.thoughtsTokenCount or usage.thoughts_token_count or 0
    )
    cached = usage.cachedContentTokenCount or usage.cached_content_token_count or 0
    total = usage.totalTokenCount or usage.total_token_count or prompt + output
    if response.embedding is not None:  # an embeddings job: the vector is the answer
        values = response.embedding.values
        if isinstance(values, msgspec.Raw):  # the passthrough: the values as raw JSON
            values = None if bytes(values).replace(b" ", b"") in (b"", b"[]", b"null") else values
        if not values:
            return ResultRow(str(key), None, None, prompt, output, cached, total, "no embedding values")
        vector = values if text else []  # (the passthrough counts vectors without reading them)
        return ResultRow(str(key), None, None, prompt, output, cached, total, None, None, vector)
    candidates = response.candidates
    if not candidates:  # an empty answer or a blocked prompt: a failure in every format
        feedback = response.promptFeedback or response.prompt_feedback
        reason = (feedback and (feedback.blockReason or feedback.block_reason)) or "no candidates"
        return ResultRow(str(key), None, None, prompt, output, cached, total, f"blocked: {reason}")
    candidate = candidates[0]
    finish = candidate.finishReason or candidate.finish_reason
    if not text:
        return ResultRow(str(key), None, finish, prompt, output, cached, total, None)
    answer = _text(candidate.content)
    parsed = parse_structured(answer) if parse_json else None
    parts = candidate.content.parts if candidate.content is not None else None
    # (The usual answer, one part of text, is not searched for images: most rows, read fast.)
    images = _images(parts) if parts and (len(parts) > 1 or parts[0].text is None) else None
    return ResultRow(str(key), answer, finish, prompt, output, cached, total, None, parsed, None, images)


def _text(content: _Content | None) -> str | None:
    if content is None or not content.parts:
        return None
    if len(content.parts) == 1:  # the usual answer, without the list and the join
        part = content.parts[0]
        return None if part.thought else part.text
    texts = [p.text for p in content.parts if p.text is not None and not p.thought]
    return "".join(texts) if texts else None


def _images(parts: list[_Part]) -> list[tuple[str, str]] | None:
    images = []
    for part in parts:
        blob = part.inlineData or part.inline_data
        if blob is not None and blob.data:
            images.append((blob.mimeType or blob.mime_type or "application/octet-stream", blob.data))
    return images or None


def _error_text(error: _Status | str) -> str:
    if isinstance(error, str):
        return error
    head = " ".join(str(p) for p in (error.code, error.status) if p not in (None, ""))
    message = error.message or ""
    return f"{head}: {message}" if head else str(message or "error")


def parse_result_line(
    line: bytes | str, *, line_number: int | None = None, parse_json: bool = False, text: bool = True
) -> ResultRow:
    """One line of a result file as a row; a line we cannot read is an error naming it.

    :param text: decode the answer's text (False: the row counts the same, its ``text`` is None).
    """
    try:
        return _row(_LINE[text].decode(line), text, parse_json)
    except msgspec.ValidationError as err:
        raise ResultsFormatError(f"result line {line_number}: not a result line ({err})") from None
    except msgspec.DecodeError as err:
        raise ResultsFormatError(f"result line {line_number}: not JSON ({err})") from None
    except _NoKey:
        raise ResultsFormatError(f"result line {line_number}: no key") from None


def decode_block(
    block: bytes, *, first_line: int = 1, parse_json: bool = False, text: bool = True
) -> list[ResultRow]:
    """The rows of a block of whole lines (blank lines skipped), in order.

    :param first_line: the number of the block's first line in the file, for error messages.
    """
    try:
        return [_row(line, text, parse_json) for line in _LINE[text].decode_lines(block)]
    except (msgspec.DecodeError, _NoKey):
        pass
    # Some line is unreadable: read them one by one to name it.
    for number, line in enumerate(block.split(b"\n"), start=first_line):
        if line.strip():
            parse_result_line(line, line_number=number, parse_json=parse_json, text=text)
    last = first_line + block.count(b"\n") - 1
    raise ResultsFormatError(f"result lines {first_line}-{last}: not JSON lines")


def iter_rows(lines: Iterable[bytes | str], *, parse_json: bool = False) -> Iterator[ResultRow]:
    """Rows from result-file lines, streamed (blank lines skipped)."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield parse_result_line(line, line_number=number, parse_json=parse_json)


def inline_result_lines(items: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """A job's inline responses as result-file lines: the key moved from each item's metadata."""
    for number, item in enumerate(items, start=1):
        key = (item.get("metadata") or {}).get("key") or f"request-{number:06d}"
        body = {k: v for k, v in item.items() if k != "metadata"}
        yield msgspec.json.encode({"key": key, **body})


def parse_inline_responses(
    items: Iterable[dict[str, Any]], *, parse_json: bool = False
) -> Iterator[ResultRow]:
    """Rows from a job's inline responses (small batches); keys come from each item's metadata."""
    return iter_rows(inline_result_lines(items), parse_json=parse_json)


def parse_structured(text: str | None) -> dict[str, Any] | None:
    """The JSON object of a structured-output answer (fences tolerated); an array becomes ``items``."""
    if not text:
        return None
    fenced = _FENCE.match(text)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {"items": value}
    return None


def schema_columns(schema: dict[str, Any] | None) -> list[str] | None:
    """Property names of an object schema (OpenAPI-style or JSON Schema), to fix columns up front."""
    if not isinstance(schema, dict):
        return None
    kind = str(schema.get("type", "object" if "properties" in schema else "")).lower()
    if kind != "object" or not isinstance(schema.get("properties"), dict):
        return None
    return list(schema["properties"])
