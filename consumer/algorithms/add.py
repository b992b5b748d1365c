"""The smallest algorithm: {"a": 2, "b": 3} -> {"sum": 5}. A template for writing your own."""

from __future__ import annotations

from typing import Any


def run(payload: Any) -> dict[str, float]:
    """Add two numbers. Safe to run again: the same payload always gives the same result."""
    if not isinstance(payload, dict):
        raise ValueError('payload must be an object like {"a": 2, "b": 3}')
    numbers = []
    for name in ("a", "b"):
        if name not in payload:
            raise ValueError(f"payload has no {name!r}")
        value = payload[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r}")
        numbers.append(value)
    return {"sum": numbers[0] + numbers[1]}
