"""Fixtures that start whole systems and a partner that receives callbacks."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.system import System
from tests.programs import MARKER, Programs


@pytest.fixture
def start_system(programs: Programs) -> Iterator[Callable[..., System]]:
    """Start a System in its own directory: start_system(name, **PQ_env). Its processes carry
    the test's marker: none may outlive the test.

    The directory is a short one under /tmp: supervisord's unix socket lives in it, and a socket
    path may not be longer than about 100 bytes (pytest's tmp_path often is).
    """
    systems: list[System] = []
    root = Path(tempfile.mkdtemp(prefix="pq-e2e-"))

    def start(name: str = "one", **env: str) -> System:
        system = System(root / name, {**env, MARKER: programs.marker})
        systems.append(system)
        return system.start()

    yield start
    for system in systems:
        system.stop()
    shutil.rmtree(root, ignore_errors=True)
