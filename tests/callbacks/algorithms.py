"""An algorithm for consumer tests of callback delivery: quick, and says what it was given."""

from __future__ import annotations

from typing import Any


def echo(payload: Any) -> dict[str, Any]:
    return {"echo": payload}
