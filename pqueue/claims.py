"""What one handle remembers of its own claims, so a newcomer's two calls work without ceremony:
`get_item()` claims as this process (a worker id from host and pid), and `update_status(id,
status)` records the outcome under the lease that same handle got when it claimed the job.

Fencing is untouched: the remembered lease is the one the claim returned, so an outcome for a
job whose lease this handle lost is refused (LeaseLost) exactly as with an explicit lease_id.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import OrderedDict

from pqueue.errors import InvalidInput

# Claims remembered per handle at most: far above any window of outstanding claims, and a bound
# on what claims that never got an outcome here (rescued, finished elsewhere) can hold.
REMEMBERED = 10_000


def process_worker_id() -> str:
    """`host:pid`, computed at each call so a forked child claims under its own id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class OwnClaims:
    """Job id -> lease id of the claims this handle made and has not finished yet."""

    def __init__(self) -> None:
        self._leases: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, job_id: int, lease_id: int) -> None:
        with self._lock:
            self._leases[job_id] = lease_id
            self._leases.move_to_end(job_id)
            if len(self._leases) > REMEMBERED:
                self._leases.popitem(last=False)

    def lease_of(self, job_id: int) -> int:
        """The lease this handle holds on the job; InvalidInput (saying what to do) if none."""
        with self._lock:
            lease_id = self._leases.get(job_id)
        if lease_id is None:
            raise InvalidInput(
                "lease_id",
                f"this handle did not claim job {job_id} (or already recorded its outcome); "
                "pass lease_id=, the lease_id of the job get_item returned",
            )
        return lease_id

    def forget(self, job_id: int, lease_id: int) -> None:
        """The claim is over (outcome recorded, released, or lost): drop it if it is still this one."""
        with self._lock:
            if self._leases.get(job_id) == lease_id:
                del self._leases[job_id]
