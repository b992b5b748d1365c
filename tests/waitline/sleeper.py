"""The algorithm the calibration run's consumer runs (PQ_ALGORITHM=tests.waitline.sleeper:run):
it holds the seat for payload["seconds"], a duration the test drew from a fixed distribution."""

from __future__ import annotations

import time
from typing import Any


def run(payload: dict[str, Any]) -> dict[str, Any]:
    time.sleep(float(payload["seconds"]))
    return {"slept": payload["seconds"]}
