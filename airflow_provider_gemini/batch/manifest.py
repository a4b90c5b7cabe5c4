"""The manifest of a results transfer: where the rows went, how many of what, tokens and cost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any

from airflow_provider_gemini.batch.errors import BatchJobError
from airflow_provider_gemini.batch.pricing import estimate_cost
from airflow_provider_gemini.batch.results import ResultRow

SAMPLE = 20
_ERROR = attrgetter("error")
_VECTOR = attrgetter("embedding")
_TOKENS = [(name, attrgetter(f"{name}_tokens")) for name in ("prompt", "output", "cached", "total")]


class ManifestBuilder:
    """Counts rows as they stream past; holds the expected keys, never the rows.

    :param model: the job's model, for the price.
    :param expected_keys: the input's keys, to account for every one.
    :param expected_count: how many requests the job had, when the keys are not known.
    :param prices: overrides of the price table.
    :param allow_missing: a key with no result line is not an error.
    """

    def __init__(
        self,
        *,
        model: str | None,
        expected_keys: Iterable[str] | None = None,
        expected_count: int | None = None,
        prices: Mapping[str, Any] | None = None,
        allow_missing: bool = False,
    ) -> None:
        self.model = model
        self.expected = set(expected_keys) if expected_keys is not None else None
        self.expected_count = len(self.expected) if self.expected is not None else expected_count
        self.prices = prices
        self.allow_missing = allow_missing
        self.seen: set[str] = set()
        self.rows = self.succeeded = self.failed = self.duplicates = self.vectors = 0
        self.images = 0  # images written as objects (the storage operator counts them)
        self.unexpected: list[str] = []
        self.tokens = {"prompt": 0, "output": 0, "cached": 0, "total": 0}

    def add(self, row: ResultRow) -> None:
        self.add_rows((row,))

    def add_rows(self, rows: Sequence[ResultRow]) -> None:
        """Count rows (a block of them at a time: summed in a few passes rather than row by row)."""
        # Keys are only remembered when there are expected ones to check them against: a set of
        # millions of keys would make memory grow with the file.
        if self.expected is not None:
            kept = []
            for row in rows:
                if row.key in self.seen:
                    self.duplicates += 1
                    continue
                self.seen.add(row.key)
                if row.key not in self.expected:
                    self.unexpected.append(row.key)
                kept.append(row)
            rows = kept
        failed = len(rows) - list(map(_ERROR, rows)).count(None)
        self.rows += len(rows)
        self.failed += failed
        self.succeeded += len(rows) - failed
        for name, read in _TOKENS:
            self.tokens[name] += sum(map(read, rows))
        self.vectors += len(rows) - list(map(_VECTOR, rows)).count(None)

    @property
    def missing_keys(self) -> list[str]:
        if self.expected is None:
            return []
        return sorted(self.expected - self.seen)

    @property
    def missing(self) -> int:
        if self.expected is not None:
            return len(self.expected - self.seen)
        return max(0, (self.expected_count or 0) - self.rows)

    def build(
        self,
        *,
        destination: str,
        errors_destination: str | None = None,
        batch_name: str | None = None,
        bytes_written: int | None = None,
        reattached: bool | None = None,
    ) -> dict[str, Any]:
        """The manifest. ``reattached``: the job was submitted by an earlier try of its create task, so
        its cost may be counted in an earlier run's manifest already (None: not known)."""
        cost = estimate_cost(
            self.model,
            prompt_tokens=self.tokens["prompt"],
            output_tokens=self.tokens["output"],
            cached_tokens=self.tokens["cached"],
            prices=self.prices,
        ).to_dict()
        if self.vectors and not self.tokens["total"]:  # a cost of 0 would be a guess, not a figure
            note = "the embedding responses carried no token counts: the cost is not known from them"
            cost.update(batch=None, standard=None, savings=None, note=note)
        return {
            "destination": destination,
            "errors_destination": errors_destination,
            "batch_name": batch_name,
            "model": self.model,
            "reattached": reattached,
            "rows": self.rows,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "missing": self.missing,
            "missing_keys_sample": self.missing_keys[:SAMPLE],
            "unexpected": len(self.unexpected),
            "duplicates": self.duplicates,
            "bytes": bytes_written,
            "tokens": dict(self.tokens),
            "embeddings": self.vectors,
            "images": self.images,
            "cost": cost,
        }

    def check(self, max_failed_request_ratio: float) -> None:
        """Raise when too many requests failed or (unless allowed) some keys have no result."""
        if self.missing and not self.allow_missing:
            first = f" (first: {', '.join(self.missing_keys[:5])})" if self.expected is not None else ""
            raise BatchJobError(
                f"{self.missing} of {self.expected_count} requests have no result{first}; "
                "pass allow_missing=True to accept that"
            )
        if self.rows and self.failed / self.rows > max_failed_request_ratio:
            raise BatchJobError(
                f"{self.failed} of {self.rows} requests failed ({self.failed / self.rows:.1%}), over "
                f"max_failed_request_ratio={max_failed_request_ratio}"
            )
