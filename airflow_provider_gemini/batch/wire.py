"""Reading the API's JSON, which arrives in camelCase and snake_case alike."""

from __future__ import annotations

from typing import Any


def field(data: Any, *names: str) -> Any:
    """The value of the first of ``names`` present in ``data`` (a dict), else None."""
    if not isinstance(data, dict):
        return None
    for name in names:
        if name in data:
            return data[name]
    return None
