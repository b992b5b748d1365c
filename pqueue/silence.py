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

from collections.abc import Iterable
from datetime import datetime

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
