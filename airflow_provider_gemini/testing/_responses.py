"""Deterministic model answers for the emulator: text, token counts, structured output, embeddings."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import zlib
from typing import Any

from airflow_provider_gemini.batch.wire import field

CHARS_PER_TOKEN = 4


def tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def prompt_text(request: dict[str, Any]) -> str:
    """All text parts of a GenerateContentRequest's contents, joined."""
    parts = (part for content in field(request, "contents") or [] for part in field(content, "parts") or [])
    texts = (field(part, "text") for part in parts)
    return "\n".join(text for text in texts if isinstance(text, str))


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def answer_text(prompt: str) -> str:
    """A short, stable answer that visibly depends on the prompt."""
    head = " ".join(prompt.split()[:12])
    return f"[emulated {_digest(prompt) % 100000:05d}] {head}".strip()


def generate_content_response(
    request: dict[str, Any], *, model: str, cached_tokens: int = 0
) -> dict[str, Any]:
    """A valid GenerateContentResponse for a request; ``cached_tokens`` come from its context cache."""
    prompt = prompt_text(request)
    config = field(request, "generationConfig", "generation_config") or {}
    mime = field(config, "responseMimeType", "response_mime_type")
    schema = field(config, "responseJsonSchema", "response_json_schema", "responseSchema", "response_schema")
    if mime == "application/json" and isinstance(schema, dict):
        text = json.dumps(value_for_schema(schema, prompt, "root"), ensure_ascii=False)
    elif mime == "application/json":
        text = json.dumps({"answer": answer_text(prompt)})
    else:
        text = answer_text(prompt)
    usage = {  # as the API counts: the prompt includes the cached tokens, reported apart as well
        "promptTokenCount": tokens(prompt) + cached_tokens,
        "candidatesTokenCount": tokens(text),
        "totalTokenCount": tokens(prompt) + cached_tokens + tokens(text),
    }
    if cached_tokens:
        usage["cachedContentTokenCount"] = cached_tokens
    parts: list[dict[str, Any]] = [{"text": text}]
    modalities = field(config, "responseModalities", "response_modalities") or []
    if "IMAGE" in [str(m).upper() for m in modalities]:  # an image made for the prompt, after its text
        parts.append(
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png(prompt)).decode()}}
        )
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": model.removeprefix("models/"),
        "responseId": f"emu-{_digest(prompt + model) % 10**12:012d}",
    }


def png(prompt: str, size: int = 4) -> bytes:
    """A small valid PNG whose colour depends on the prompt (an image answer, deterministic)."""
    seed = _digest(prompt)
    pixel = bytes([seed % 256, seed // 256 % 256, seed // 65536 % 256])
    raw = b"".join(b"\x00" + pixel * size for _ in range(size))  # each row: filter byte, RGB pixels

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def value_for_schema(schema: dict[str, Any], prompt: str, path: str) -> Any:
    """A value conforming to an OpenAPI-style (``"OBJECT"``) or JSON Schema (``"object"``) schema."""
    seed = _digest(f"{prompt}|{path}")
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[seed % len(enum)]
    kind = schema.get("type")
    if isinstance(kind, list):  # JSON Schema unions like ["string", "null"]
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    kind = str(kind or ("object" if "properties" in schema else "string")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: value_for_schema(sub or {}, prompt, f"{path}.{name}") for name, sub in props.items()}
    if kind == "array":
        items = schema.get("items") or {}
        count = max(int(schema.get("minItems") or 1), 1 + seed % 2)
        return [value_for_schema(items, prompt, f"{path}[{i}]") for i in range(count)]
    if kind == "integer":
        low = int(schema.get("minimum", 0))
        high = int(schema.get("maximum", low + 100))
        return low + seed % (high - low + 1)
    if kind == "number":
        floor = float(schema.get("minimum", 0.0))
        ceiling = float(schema.get("maximum", floor + 1.0))
        return round(floor + (seed % 1000) / 1000 * (ceiling - floor), 3)
    if kind == "boolean":
        return bool(seed % 2)
    # The end of a prompt usually names its subject ("... for: Cast-iron skillet").
    words = prompt.replace(":", " ").split()
    return " ".join(words[-6:]) if words else path.rsplit(".", 1)[-1]


def embedding(text: str, dims: int = 8) -> list[float]:
    """A deterministic vector of ``dims`` values in [-1, 1) (``outputDimensionality``; 8 by default)."""
    raw = b"".join(hashlib.sha256(f"{block}:{text}".encode()).digest() for block in range(-(-dims // 32)))
    return [round((b - 128) / 128, 4) for b in raw[:dims]]
