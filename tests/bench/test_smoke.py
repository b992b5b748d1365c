"""The benchmark harness cannot rot: a small SQLite-only run produces every row (speed is never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

TABLE_SIZES = (1_000, 10_000, 100_000)  # --quick
WAIT_SIZES = (1_000, 50_000)  # --quick: waiting jobs
EXPECTED_KEYS = [
    *(
        f"sqlite/{test}/{system}"
        for test in ("put_one", "put_batch", "claim_complete", "finish_and_claim")
        for system in ("pqueue", "raw")
    ),
    *(f"sqlite/size_{kind}/{size}" for kind in ("claim", "both") for size in TABLE_SIZES),
    *(f"sqlite/size_{kind}/100000/{n}partners" for kind in ("claim", "both") for n in (10, 100)),
    *(
        f"sqlite/{kind}/{2 * waiting}{partners}"
        for kind in ("size_wait", "size_wait_fresh")
        for waiting in WAIT_SIZES
        for partners in ("", "/100partners")
    ),
    "sqlite/mixed",
    "sqlite/dispatch",
    "sqlite/license_busy",
    "sqlite/license_gap",
    "sqlite/license_tick",
    "sqlite/license_busy_neighbour",
    "sqlite/license_gap_neighbour",
    "sqlite/intake_8",
    "sqlite/intake_32",
    "sqlite/intake_token_8",
    "sqlite/intake_key_8",
    "sqlite/consumer_drain",
    "sqlite/e2e",
    *(f"sqlite/mem_{what}_{when}" for what in ("consumer", "tree", "producer") for when in ("rest", "after")),
    "sqlite/mem_producer_total",
    "sqlite/mem_consumer_total",
    "sqlite/mem_tree_total",
]
EXPECTED_SECTIONS = [
    "## How to run",
    "## This run",
    "## Targets",
    "## SQLite: library beside the raw driver and the peers",
    "## Drain",
    "## Claim cost against table size",
    "## Wait of a waiting job (GET /jobs/{id})",
    "## Several processes",
    "## Dispatch latency",
    "## Licence utilisation",
    "## HTTP intake (POST /jobs)",
    "## End to end",
    "## Memory (resident size, MiB)",
]


@pytest.mark.process
def test_quick_sqlite_run__writes_every_row(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench", "--quick", "--n", "200", "--runs", "1", "--sqlite-only", "--no-peers"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=280, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {row["key"]: row for row in results["rows"]}
    missing = [key for key in EXPECTED_KEYS if key not in rows]
    assert not missing, f"rows missing: {missing}"
    empty = [key for key in EXPECTED_KEYS if not rows[key]["runs"] or rows[key]["error"]]
    assert not empty, f"rows without a figure: {[(k, rows[k]['error']) for k in empty]}"
    markdown = (tmp_path / "RESULTS.md").read_text()
    assert [s for s in EXPECTED_SECTIONS if s not in markdown] == []
    for row in results["rows"]:
        assert row["test"] in markdown and row["system"] in markdown
    assert "not measured" not in markdown.split("## Targets")[1].split("PostgreSQL")[0]


def test_help__names_every_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    for option in ("--quick", "--n", "--runs", "--no-peers", "--sqlite-only", "--out"):
        assert option in done.stdout


def test_bad_n__is_refused_with_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--n", "3"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "--n must be at least 10" in done.stderr
