"""What a batch cost, and what the same tokens would have cost at the standard price.

Standard (interactive) prices in USD per million tokens, Gemini Developer API paid tier, prompts up to
200k tokens, as published in late 2026. Prices change: pass ``prices`` to override or extend them.
Batch mode costs half the standard price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens; output includes thinking tokens."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None
    valid_until: date | None = None  # an introductory price; the next entry applies after it


DEFAULT_PRICES: dict[str, tuple[ModelPrice, ...]] = {
    "gemini-3.8-flash": (
        ModelPrice(0.75, 3.75, valid_until=date(2026, 12, 31)),
        ModelPrice(1.50, 7.50),
    ),
    "gemini-3.5-flash-lite": (ModelPrice(0.30, 2.50),),
    "gemini-3.5-flash": (ModelPrice(1.50, 9.00),),
    "gemini-3.1-pro": (ModelPrice(2.00, 12.00),),
    "gemini-2.5-pro": (ModelPrice(1.25, 10.00, 0.31),),
    "gemini-2.5-flash-lite": (ModelPrice(0.10, 0.40, 0.025),),
    "gemini-2.5-flash": (ModelPrice(0.30, 2.50, 0.075),),
    "gemini-2.0-flash-lite": (ModelPrice(0.075, 0.30, 0.01875),),
    "gemini-2.0-flash": (ModelPrice(0.10, 0.40, 0.025),),
    # Embeddings are billed on their input tokens only.
    "gemini-embedding-001": (ModelPrice(0.15, 0.0),),
}


@dataclass(frozen=True)
class CostEstimate:
    currency: str
    batch_cost: float | None
    standard_cost: float | None
    savings: float | None
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "batch": self.batch_cost,
            "standard": self.standard_cost,
            "savings": self.savings,
            "note": self.note,
        }


def _as_prices(value: Any) -> tuple[ModelPrice, ...]:
    """One price or a list of them, each a ModelPrice or its fields."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return tuple(v if isinstance(v, ModelPrice) else ModelPrice(**v) for v in values)


def price_for(
    model: str | None, prices: Mapping[str, Any] | None = None, on: date | None = None
) -> ModelPrice | None:
    """The price of the longest known model name that ``model`` starts with (versions, previews)."""
    if not model:
        return None
    name = model.removeprefix("models/")
    table = {**DEFAULT_PRICES, **{key: _as_prices(value) for key, value in (prices or {}).items()}}
    match = max((key for key in table if name.startswith(key)), key=len, default=None)
    if match is None:
        return None
    today = on or date.today()
    current = (p for p in table[match] if p.valid_until is None or today <= p.valid_until)
    return next(current, table[match][-1])


def estimate_cost(
    model: str | None,
    *,
    prompt_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    prices: Mapping[str, Any] | None = None,
    on: date | None = None,
) -> CostEstimate:
    """Cost at the batch price and at the standard price.

    Cached tokens are part of the prompt tokens (``usageMetadata`` counts them inside
    ``promptTokenCount``) and are billed at the cached price where one is known.
    """
    price = price_for(model, prices, on)
    if price is None:
        reason = (
            f"no price known for model {model!r}; pass prices={{...}}" if model else "the model is unknown"
        )
        return CostEstimate("USD", None, None, None, reason)
    note = None
    cached_price = price.cached_input_per_million
    if cached_price is None:
        cached_price = price.input_per_million
        if cached_tokens:
            note = (
                "no cached-token price known: cached tokens are counted at the input price (an over-estimate)"
            )
    fresh = max(0, prompt_tokens - cached_tokens)
    standard = (
        fresh * price.input_per_million
        + cached_tokens * cached_price
        + output_tokens * price.output_per_million
    ) / 1_000_000
    batch = standard * BATCH_DISCOUNT
    return CostEstimate("USD", round(batch, 6), round(standard, 6), round(standard - batch, 6), note)
