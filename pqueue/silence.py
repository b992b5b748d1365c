"""Rescue only what has been silent on our own clock: a database clock that jumps cannot fake it.

Rescue compares a lease's expiry with the database's clock. If that clock jumps forward (an
NTP step on the database host, a virtual machine restored, a wrong manual date; on SQLite the
clock of the host itself), every running job's lease looks expired at once, and a rescuer
would hand a job to a successor while its algorithm still runs. So a rescuer also watches the
leases itself: a heartbeat moves a lease's expiry, and a lease is rescued only once its
(job, lease, expiry) has stayed the same for the lease plus its margin on the rescuer's
monotonic clock, which no wall-clock change moves. A backward jump only delays rescue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pqueue.policy import lease_margin

LeaseStamp = tuple[int, int, datetime | None]  # job id, lease id, lease expiry as last renewed


class SilenceWatch:
    """Remembers since when (monotonic) each running job's lease stamp has been unchanged."""

    def __init__(self) -> None:
        self._since: dict[LeaseStamp, float] = {}

    def observe(self, stamps: Iterable[LeaseStamp], now: float) -> None:
        """Take the running jobs' stamps as read now; a changed or finished lease is forgotten."""
        self._since = {stamp: self._since.get(stamp, now) for stamp in stamps}

    def silent(self, now: float, seconds: float) -> list[tuple[int, int]]:
        """(job id, lease id) of the leases unchanged for at least `seconds`."""
        return [(job_id, lease_id) for (job_id, lease_id, _), since in self._since.items() if now - since >= seconds]

    def silent_leases(self, now: float, stamps: Sequence[Any], default_lease: float) -> set[tuple[int, int]]:
        """(job id, lease id) of the leases silent for their own claim's lease length plus its
        margin; `stamps` are rows with lease_ms (a job claimed before revision 0005 has none and
        counts `default_lease`)."""
        lease_of = {(s.id, s.lease_id): s.lease_ms / 1000 if s.lease_ms else default_lease for s in stamps}
        silent: set[tuple[int, int]] = set()
        for lease in set(lease_of.values()):
            quiet = self.silent(now, lease + lease_margin(lease))
            silent.update(key for key in quiet if lease_of.get(key) == lease)
        return silent
