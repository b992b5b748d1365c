"""The smallest algorithm: {"a": 2, "b": 3} -> {"sum": 5}. A template for writing your own.

It also takes the calculate service's payload, {"number1": 2, "number2": 3, ...} (docs/seeds.md).
"""

from __future__ import annotations

from typing import Any


def run(payload: Any) -> dict[str, float]:
    """Add two numbers. Safe to run again: the same payload always gives the same result."""
    if not isinstance(payload, dict):
        raise ValueError('payload must be an object like {"a": 2, "b": 3}')
    names = ("number1", "number2") if "a" not in payload and "number1" in payload else ("a", "b")
    numbers = []
    for name in names:
        if name not in payload:
            raise ValueError(f"payload has no {name!r}")
        value = payload[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r}")
        numbers.append(value)
    return {"sum": numbers[0] + numbers[1]}
