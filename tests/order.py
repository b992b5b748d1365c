"""The order the suite's tests start in: the longest first.

pytest-xdist hands each free worker the next test of the collection, so a long test collected
late starts when the others are nearly done and the whole run waits for it alone. Sorting the
collection by how long each test took (tests/durations.json, written by a run with
PQ_TEST_STORE_DURATIONS=1) starts the long ones first and lets the short ones fill the gaps at
the end. A test not in the file yet counts as a long one when it starts programs (marked
`process`), a short one otherwise. The order changes nothing a test checks: every test owns its
files, schema and ports.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
UNKNOWN_PROCESS = 15.0  # seconds a new process test counts as before it was measured
UNKNOWN = 0.5


def _key(nodeid: str) -> str:
    """The test's id without the "@group" xdist's loadgroup adds to a grouped test's."""
    path, _, rest = nodeid.partition("::")
    return f"{path}::{rest.split('@')[0]}" if rest else path


def _load() -> dict[str, float]:
    try:
        loaded = json.loads(DURATIONS.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): float(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first; ties keep the collection's order (every worker must sort alike)."""
    known = _load()

    def expected(item: pytest.Item) -> float:
        if _key(item.nodeid) in known:
            return known[_key(item.nodeid)]
        return UNKNOWN_PROCESS if item.get_closest_marker("process") else UNKNOWN

    items.sort(key=lambda item: -expected(item))


class _Recorder:
    """Adds up each test's setup, call and teardown and writes them to tests/durations.json: the
    tests that ran replace their figures, the others keep theirs while their file exists."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        key = _key(report.nodeid)
        self.seconds[key] = self.seconds.get(key, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        if not self.seconds:
            return
        merged = {k: v for k, v in _load().items() if (self.root / k.split("::")[0]).exists()}
        merged.update({k: round(v, 1) for k, v in self.seconds.items()})
        DURATIONS.write_text(json.dumps(dict(sorted(merged.items())), indent=0) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    # Only the run that sees every report records (xdist's controller, or a run without workers).
    if os.environ.get("PQ_TEST_STORE_DURATIONS") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(config.rootpath), "pq-durations")
