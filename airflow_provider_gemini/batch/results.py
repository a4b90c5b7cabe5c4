"""Result lines to flat rows: one per request, ready for a warehouse.

A result line is ``{"key", "response": GenerateContentResponse}`` or, for a request that failed,
``{"key", "error" | "status": {"code", "message", "status"}}``. Inline results carry the key in
``metadata``. Both spellings of every field (camelCase and snake_case) are read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_gemini.batch._block_scan import TOKEN_NAMES, scan_block
from airflow_provider_gemini.batch.errors import ResultsFormatError
from airflow_provider_gemini.batch.wire import field

FLAT_COLUMNS = (
    "key",
    "text",
    "finish_reason",
    "prompt_tokens",
    "output_tokens",
    "cached_tokens",
    "total_tokens",
    "error",
)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)

# For the passthrough: what the manifest needs, counted over whole blocks with C-speed byte searches.
# A quote that starts a JSON key is never escaped, so these names only match real keys; they appear
# only in usageMetadata.
_USAGE = re.compile(rb'"usageMetadata"\s*:\s*\{([^{}]*)\}')
_TOKEN_COUNTS = {
    name: re.compile(rb'"' + name.encode() + rb'"\s*:\s*"?(\d+)')
    for name in (
        "promptTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "cachedContentTokenCount",
        "totalTokenCount",
    )
}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class ResultRow:
    """One request's outcome, flattened."""

    key: str
    text: str | None
    finish_reason: str | None
    prompt_tokens: int
    output_tokens: int
    cached_tokens: int
    total_tokens: int
    error: str | None
    parsed: dict[str, Any] | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def to_record(self, *, parse_json: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """A flat dict: the base columns, then parsed fields, then the joined input's fields.

        A parsed field named like a base column is prefixed ``parsed_``; an input field named like
        either is prefixed ``input_``.
        """
        record: dict[str, Any] = {name: getattr(self, name) for name in FLAT_COLUMNS}
        if parse_json:
            for name, value in (self.parsed or {}).items():
                record[f"parsed_{name}" if name in record else name] = value
        for name, value in (extra or {}).items():
            record[f"input_{name}" if name in record else name] = value
        return record


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        code = error.get("code")
        status = error.get("status")
        message = error.get("message") or ""
        head = " ".join(str(p) for p in (code, status) if p not in (None, ""))
        return f"{head}: {message}" if head else str(message or "error")
    return str(error)


def row_from_result(key: str, response: Any, error: Any, *, parse_json: bool = False) -> ResultRow:
    """A row from one request's response or error."""
    if error is not None or not isinstance(response, dict):
        return ResultRow(
            key, None, None, 0, 0, 0, 0, _error_text(error if error is not None else "no response")
        )
    usage = field(response, "usageMetadata", "usage_metadata") or {}
    prompt = _int(field(usage, "promptTokenCount", "prompt_token_count"))
    output = _int(field(usage, "candidatesTokenCount", "candidates_token_count"))
    thoughts = _int(field(usage, "thoughtsTokenCount", "thoughts_token_count"))  # billed as output
    cached = _int(field(usage, "cachedContentTokenCount", "cached_content_token_count"))
    total = _int(field(usage, "totalTokenCount", "total_token_count")) or prompt + output + thoughts
    candidates = field(response, "candidates") or []
    if not candidates:
        feedback = field(response, "promptFeedback", "prompt_feedback") or {}
        reason = field(feedback, "blockReason", "block_reason") or "no candidates"
        return ResultRow(key, None, None, prompt, output + thoughts, cached, total, f"blocked: {reason}")
    candidate = candidates[0]
    parts = field(field(candidate, "content") or {}, "parts") or []
    texts = [
        p["text"]
        for p in parts
        if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    ]
    text = "".join(texts) if texts else None
    finish = field(candidate, "finishReason", "finish_reason")
    parsed = parse_structured(text) if parse_json else None
    return ResultRow(key, text, finish, prompt, output + thoughts, cached, total, None, parsed)


def parse_result_line(
    line: bytes | str, *, line_number: int | None = None, parse_json: bool = False
) -> ResultRow:
    """One line of a result file as a row; a line we cannot read is an error naming it."""
    try:
        data = json.loads(line)
    except ValueError as err:
        raise ResultsFormatError(f"result line {line_number}: not JSON ({err})") from None
    key = field(data, "key")
    if key is None:
        key = field(field(data, "metadata") or {}, "key")
    if key is None:
        raise ResultsFormatError(f"result line {line_number}: no key")
    error = field(data, "error")
    if error is None and field(data, "response") is None:
        error = field(data, "status")
    return row_from_result(str(key), field(data, "response"), error, parse_json=parse_json)


@dataclass(frozen=True)
class BlockSummary:
    """Counts over a block of whole result lines; the failed lines are kept for a full parse."""

    lines: int  # in the block, blank ones included
    succeeded: int
    failed_lines: list[bytes]
    failed_at: list[int]  # where each failed line is in the block, from 0
    prompt_tokens: int
    output_tokens: int
    cached_tokens: int
    total_tokens: int


def summarize_block(block: bytes) -> BlockSummary | None:
    """Counts without parsing each line (for the raw ``jsonl`` passthrough). Lines without an answer
    (failed or blocked) are returned for a full parse, their tokens left out here; None when the
    block needs a full parse altogether."""
    scan = scan_block(block)
    if scan is not None:
        lines, answered, tokens = scan.lines, scan.answered, scan.tokens
    else:  # no NumPy (yet): byte searches and regular expressions, ~300 MB/s
        lines = block.count(b"\n")
        answered = (
            block.count(b'"candidates"') - block.count(b'"candidates": []') - block.count(b'"candidates":[]')
        )
        tokens = _token_sums_by_regex(block)
    succeeded, failed, failed_at = lines, [], []
    if answered != lines:  # some line failed, was blocked or is blank: look at each one
        succeeded = 0
        for index, line in enumerate(block.split(b"\n")):
            if _answered(line):
                succeeded += 1
            elif line.strip():
                failed.append(line)
                failed_at.append(index)
        if failed:  # their tokens are counted when they are parsed
            rest = _token_sums(b"\n".join(failed) + b"\n")
            tokens = {name: tokens[name] - rest[name] for name in TOKEN_NAMES}
    if not any(tokens.values()) and b'"usage_metadata"' in block:
        return None  # snake_case keys: only a full parse reads them
    return BlockSummary(
        lines=lines,
        succeeded=succeeded,
        failed_lines=failed,
        failed_at=failed_at,
        prompt_tokens=tokens["promptTokenCount"],
        output_tokens=tokens["candidatesTokenCount"] + tokens["thoughtsTokenCount"],
        cached_tokens=tokens["cachedContentTokenCount"],
        total_tokens=tokens["totalTokenCount"],
    )


def _answered(line: bytes) -> bool:
    return b'"candidates"' in line and b'"candidates": []' not in line and b'"candidates":[]' not in line


def _token_sums(block: bytes) -> dict[str, int]:
    scan = scan_block(block)
    return scan.tokens if scan is not None else _token_sums_by_regex(block)


def _token_sums_by_regex(block: bytes) -> dict[str, int]:
    """The exact, slower count (no NumPy, or an unusual block). The counts sit in each line's small
    usageMetadata object: cut those out in one pass and count there, unless some object nests others
    (then the whole block is searched)."""
    usage = _USAGE.findall(block)
    source = b"\n".join(usage) if len(usage) == block.count(b'"usageMetadata"') else block
    return {
        name: sum(map(int, pattern.findall(source))) if name.encode() in source else 0
        for name, pattern in _TOKEN_COUNTS.items()
    }


def iter_rows(lines: Iterable[bytes | str], *, parse_json: bool = False) -> Iterator[ResultRow]:
    """Rows from result-file lines, streamed (blank lines skipped)."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield parse_result_line(line, line_number=number, parse_json=parse_json)


def parse_inline_responses(
    items: Iterable[dict[str, Any]], *, parse_json: bool = False
) -> Iterator[ResultRow]:
    """Rows from a job's inline responses (small batches); keys come from each item's metadata."""
    for number, item in enumerate(items, start=1):
        key = field(field(item, "metadata") or {}, "key") or f"request-{number:06d}"
        yield row_from_result(str(key), field(item, "response"), field(item, "error"), parse_json=parse_json)


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
