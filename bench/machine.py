"""The machine a run measured on: cores, memory, the disk's fsync cost, load, versions."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psycopg

from bench.measure import percentile
from bench.procs import REPO

PACKAGES = ("pqueue", "sqlalchemy", "psycopg", "fastapi", "uvicorn", "alembic")


def fsync_cost(directory: Path, count: int) -> dict[str, float]:
    """Append 4 KiB and fsync, `count` times: what one durable commit costs at least, in ms."""
    path = directory / "fsync-probe"
    samples = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            started = time.perf_counter()
            os.fsync(fd)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"median_ms": statistics.median(samples), "p99_ms": percentile(samples, 0.99), "count": count}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        # The harness's own output files do not count: a rerun over an earlier run's output is clean.
        outputs = [":!bench/RESULTS.md", ":!bench/results.json", ":!bench/plots"]
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", *outputs], cwd=REPO, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def postgres_info(server_url: str) -> dict[str, str]:
    with psycopg.connect(server_url, autocommit=True) as conn:
        return {
            name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
            for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")
        }


def describe(workdir: Path, fsync_samples: int, server_url: str | None) -> dict[str, Any]:
    """Everything about the machine, measured at the start of the run."""
    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(_memory_gib(), 1),
        "kernel": platform.release(),
        "load_start": os.getloadavg(),
        "fsync": fsync_cost(workdir, fsync_samples),
        "versions": versions,
        "postgres": postgres_info(server_url) if server_url else {},
        "commit": _git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
