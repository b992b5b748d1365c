"""The one payload every system queues, so sizes match (about 150 bytes of JSON)."""

from __future__ import annotations

import json
from typing import Any


def payload(n: int) -> dict[str, Any]:
    """A small IQR-style request, numbered."""
    return {"n": n, "readings": [{"vendor": "acme", "value": 12.5}, {"vendor": "acme", "value": 13.1 + n % 7}]}


def payload_text(n: int) -> str:
    return json.dumps(payload(n), separators=(",", ":"))
