"""What the database holds after a fault: every job, and waiting until they have all finished."""

from __future__ import annotations

from collections.abc import Iterable

from pqueue import FINAL, Job, PersistentQ, Status
from tests.support import wait_until

PAGE = 1000  # the store's largest page


def all_jobs(store: PersistentQ) -> dict[int, Job]:
    """Every job stored, by id."""
    found: dict[int, Job] = {}
    cursor = None
    while True:
        page = store.get_all_items(limit=PAGE, cursor=cursor, oldest_first=True)
        found.update((job.id, job) for job in page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def wait_finished(store: PersistentQ, ids: Iterable[int], timeout: float, *statuses: Status) -> dict[int, Job]:
    """Wait until every one of these jobs is in a final state (or one of `statuses`); them all."""
    wanted, ends = set(ids), set(statuses or FINAL)

    def finished() -> list[dict[int, Job]]:
        jobs = all_jobs(store)
        pending = [i for i in wanted if i not in jobs or jobs[i].status not in ends]
        return [] if pending else [jobs]

    return wait_until(finished, timeout=timeout, interval=0.25, what=f"{len(wanted)} jobs to finish")[0]
