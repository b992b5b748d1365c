"""Fixtures that start whole systems and a partner that receives callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.callbacks.partner import Partner
from tests.e2e.system import System


@pytest.fixture
def partner() -> Iterator[Partner]:
    receiver = Partner().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def start_system(tmp_path: Path) -> Iterator[Callable[..., System]]:
    """Start a System in its own directory: start_system(name, **PQ_env)."""
    systems: list[System] = []

    def start(name: str = "one", **env: str) -> System:
        system = System(tmp_path / name, env)
        systems.append(system)
        return system.start()

    yield start
    for system in systems:
        system.stop()
