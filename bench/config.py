"""The run's sizes: full by default, small with --quick; --n scales the throughput runs."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

FULL_N = 1000
QUICK_N = 200
# What a run can be limited to (--only); "soak" is the programs' long rows, taken after their last round.
PARTS = ("library", "sizes", "processes", "programs", "soak")
WAIT_PARTNERS = (1, 100)  # partners backlogged when a waiting job's wait is measured


def parse_parts(text: str) -> tuple[str, ...]:
    """An --only value: comma-separated names of PARTS (argparse shows the error in one line)."""
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in chosen if part not in PARTS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(PARTS)}")
    return chosen


@dataclass(frozen=True)
class Config:
    """Everything the measurements need to know about this run."""

    quick: bool
    n: int
    runs: int
    backends: tuple[str, ...]
    peers: bool
    postgres_url: str
    workdir: Path
    results_md: Path
    command: str
    parts: tuple[str, ...] = PARTS

    @property
    def n_single(self) -> int:
        """Jobs in a one-per-transaction put run (each waits for its own commit to reach the disk)."""
        return max(50, self.n // 4)

    @property
    def n_batch(self) -> int:
        """Jobs in a batch-put run (batches of 1,000)."""
        return max(2000, self.n * 10)

    @property
    def table_sizes(self) -> tuple[int, ...]:
        """Jobs already in the table when the claim cost is measured."""
        return (1_000, 10_000, 100_000) if self.quick else (10_000, 100_000, 1_000_000)

    @property
    def claims_per_size(self) -> int:
        return 50 if self.quick else 300

    @property
    def wait_sizes(self) -> tuple[int, ...]:
        """Waiting jobs when a waiting job's wait is measured (the table holds as many processed);
        each with WAIT_PARTNERS partners. The largest shares the claim's largest table."""
        return (1_000, 50_000) if self.quick else (1_000, 100_000, 500_000)

    @property
    def waits_per_size(self) -> int:
        """Waits per run with a new line every time (PQ_WAIT_SNAPSHOT_SECONDS=0): each simulates the
        whole line ahead of the newest job."""
        return 5 if self.quick else 20

    @property
    def kept_waits_per_size(self) -> int:
        """Waits per run from the kept line (the default PQ_WAIT_SNAPSHOT_SECONDS): most are cheap, a
        run's first pays a new line."""
        return 20 if self.quick else 200

    @property
    def n_mixed(self) -> int:
        """Jobs the 2 producer + 2 consumer processes move."""
        return self.n if self.quick else 5000

    @property
    def n_scaling(self) -> int:
        """Jobs the 1, 2 and 4 consumer processes drain on PostgreSQL."""
        return max(50, self.n // 2)

    @property
    def dispatch_samples_per_run(self) -> int:
        return 10 if self.quick else 70

    @property
    def long_idle_samples(self) -> int:
        """Samples after 6 s of idleness (SQLite's change poll has slowed down by then)."""
        return 0 if self.quick else 5

    @property
    def license_backlog(self) -> int:
        return 30 if self.quick else 500

    @property
    def http_requests(self) -> int:
        return max(200, self.n) if self.quick else max(2000, self.n)

    @property
    def e2e_jobs(self) -> int:
        return max(50, self.n // 4) if self.quick else max(500, self.n // 2)

    @property
    def memory_jobs(self) -> int:
        """Jobs posted to the producer before its resident size is read again."""
        return 2 * self.n if self.quick else 100_000
