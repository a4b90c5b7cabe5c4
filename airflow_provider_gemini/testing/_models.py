"""The models the emulator knows, with the methods each supports, as ``models.get`` reports them.

An unknown model, or one without batch support, is refused at create time with the API's 404, so a
misspelled model fails on the emulator as it does on the real API. ``extra_models`` (a setting) adds
names for a newer model the list does not have yet.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_gemini.batch.pricing import DEFAULT_PRICES

GENERATE = ("generateContent", "countTokens", "createCachedContent", "batchGenerateContent")
EMBED = ("embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent")
MODELS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(DEFAULT_PRICES, GENERATE),
    "gemini-embedding-001": EMBED,
    "gemini-2.0-flash-live-001": ("bidiGenerateContent",),  # a model batch mode does not serve
}


def methods(model: str, settings: dict[str, Any]) -> tuple[str, ...] | None:
    """The methods of ``model`` (``models/`` optional), or None when the emulator does not know it."""
    name = model.removeprefix("models/")
    if name in MODELS:
        return MODELS[name]
    extra = settings.get("extra_models") or ()
    return GENERATE + EMBED if name in extra else None


def resource(model: str, supported: tuple[str, ...]) -> dict[str, Any]:
    name = model.removeprefix("models/")
    return {
        "name": f"models/{name}",
        "displayName": name,
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": list(supported),
    }


def not_found(model: str, version: str, method: str) -> str:
    """The API's message for a model it does not have, or that does not support ``method``."""
    return (
        f"models/{model.removeprefix('models/')} is not found for API version {version}, or is not "
        f"supported for {method}. Call ListModels to see the list of available models and their "
        "supported methods."
    )
