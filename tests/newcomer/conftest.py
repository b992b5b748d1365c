"""The newcomer tests' fixture: a fresh machine for each `make run` (tests/newcomer/machine.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.newcomer.machine import Newcomer


@pytest.fixture
def newcomer() -> Iterator[Newcomer]:
    """A fresh PQ_HOME, short (supervisord's socket lives in it), removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="pq-nc-"))
    person = Newcomer(home)
    yield person
    person.cleanup()
    shutil.rmtree(home, ignore_errors=True)
