"""bench/compare cannot rot: it measures a commit against the working tree and reads moved rows right."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.compare import verdict
from tests.support import REPO


def test_verdict__moves_only_when_the_ranges_do_not_overlap() -> None:
    assert verdict("jobs/s", [100, 110], [120, 130]) == "better"
    assert verdict("jobs/s", [100, 110], [80, 99]) == "worse"
    assert verdict("ms", [3.0, 3.2], [3.3, 3.5]) == "worse"
    assert verdict("ms", [3.0, 3.2], [2.5, 2.9]) == "better"
    assert verdict("jobs/s", [100, 110], [105, 130]) == "within spread"


@pytest.mark.process
def test_compare_head_with_the_working_tree__reports_every_library_row() -> None:
    command = [sys.executable, "-m", "bench.compare", "HEAD", "--turns", "2", "--n", "20"]
    done = subprocess.run(
        [*command, "--only", "library", "--sqlite-only"], cwd=REPO, capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ") and "jobs/s" in line]
    assert len(table) == 8, done.stdout  # four tests, pqueue and the raw driver each
    assert all(line.rstrip(" |").rsplit("| ", 1)[1] in ("better", "worse", "within spread") for line in table)
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "pqcompare-" not in worktrees.stdout  # its checkout is removed


def test_bad_part__is_refused_with_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "library,nonsense"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "choose from library,sizes,processes,programs,soak" in done.stderr
