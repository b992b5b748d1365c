"""What the header and the charts show, read through the library with a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pqueue import CLAIMABLE, Insights, Stats, Status, ThroughputPoint, Worker

HOUR = 3600
# The histogram needs a sample, not every run: the newest this many runs in the window.
DURATION_SAMPLE = 2000
# Statuses that count as a failed run in the header: an attempt that crashed, or a run that
# ended in manual_intervention (out of attempts, refused, timed out), and an operator's fail.
FAILED = (Status.CRASHED, Status.MANUAL_INTERVENTION)


@dataclass(frozen=True)
class Overview:
    """One render's worth of numbers."""

    stats: Stats
    workers: list[Worker]
    last_hour: list[ThroughputPoint]
    throughput: list[ThroughputPoint]
    durations: list[float]
    waiting_changes: list[tuple[datetime, int]]  # (bucket start, net change), from the event log

    @property
    def waiting(self) -> int:
        return sum(self.stats.total(status) for status in CLAIMABLE)

    @property
    def running(self) -> int:
        return self.stats.total(Status.UNDER_PROCESS)

    @property
    def manual_intervention(self) -> int:
        return self.stats.total(Status.MANUAL_INTERVENTION)

    def waiting_depth(self, window_seconds: int, now: datetime) -> list[tuple[datetime, int]]:
        """The waiting count over the window: walked back from the count now through each
        bucket's net change, so it is there on the first look and the same for every viewer.
        Each bucket's change is drawn at its end (within the bucket the moves' order is not kept)."""
        bucket = timedelta(seconds=bucket_for(window_seconds))
        start = now - timedelta(seconds=window_seconds)
        depth = self.waiting - sum(change for _at, change in self.waiting_changes)
        points = [(start, depth)]
        for at, change in self.waiting_changes:
            depth += change
            points.append((min(max(at + bucket, start), now), depth))
        points.append((now, self.waiting))
        return points

    @property
    def processed_last_hour(self) -> int:
        return sum(p.count for p in self.last_hour if p.status == Status.PROCESSED)

    @property
    def failed_last_hour(self) -> int:
        return sum(p.count for p in self.last_hour if p.status in FAILED)


def bucket_for(window_seconds: int) -> int:
    """Minute buckets up to two hours, then wider ones so a chart keeps about 120 bars."""
    return max(60, (window_seconds // 120) // 60 * 60)


def load_overview(store: Insights, window_seconds: int) -> Overview:
    """Aggregates only: counts and buckets come from SQL, never from loading every job."""
    return Overview(
        stats=store.stats(),
        workers=store.workers(),
        last_hour=store.throughput(window_seconds=HOUR, bucket_seconds=HOUR),
        throughput=store.throughput(window_seconds=window_seconds, bucket_seconds=bucket_for(window_seconds)),
        durations=store.run_durations(window_seconds=window_seconds, limit=DURATION_SAMPLE),
        waiting_changes=store.waiting_changes(window_seconds=window_seconds, bucket_seconds=bucket_for(window_seconds)),
    )
