"""The peers' separate environment (bench/.venv-peers) and one run of a peer in it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.databases import Databases
from bench.measure import Row, log
from bench.procs import REPO

PEERS_VENV = REPO / "bench" / ".venv-peers"
REQUIREMENTS = REPO / "bench" / "requirements-peers.txt"
STAMP = PEERS_VENV / ".installed"
SQLITE_PEERS = ("persist-queue", "huey", "litequeue")
POSTGRES_PEERS = ("procrastinate", "pgqueuer")


def peers_python() -> Path:
    """Create (or bring up to date) the peers' virtual environment; return its interpreter."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        log.info("creating %s", PEERS_VENV)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    if not STAMP.exists() or REQUIREMENTS.stat().st_mtime > STAMP.stat().st_mtime:
        log.info("installing %s into %s", REQUIREMENTS.name, PEERS_VENV)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
            check=True,
        )
        STAMP.touch()
    return python


def peer_run(python: Path, databases: Databases, row: Row, system: str, test: str, n: int) -> Callable[[], float]:
    """One run of a peer on a fresh database; fills in the row's version, durability and delivery."""
    backend = "sqlite" if system in SQLITE_PEERS else "postgresql"

    def run() -> float:
        target = databases.fresh(backend, f"{system}_{test}")
        where = str(target.home) if backend == "sqlite" else str(target.conninfo)
        try:
            done = subprocess.run(
                [str(python), "-m", "bench.peers", system, test, f"--n={n}", f"--where={where}"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
        finally:
            databases.drop(target)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        row.version = answer["version"]
        row.durability = answer["durability"]
        row.delivery = answer["delivery"]
        row.note = answer.get("note", row.note)
        return float(answer["value"])

    return run
