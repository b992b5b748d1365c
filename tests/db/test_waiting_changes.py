"""waiting_changes: the waiting depth's history read from the event log, so a chart of it has a
line on the first look (nothing sampled by the reader)."""

from __future__ import annotations

from datetime import timedelta

from pqueue import PersistentQ, Status


def test_waiting_changes__net_moves_into_and_out_of_waiting_per_bucket(q: PersistentQ) -> None:
    q.clock_offset = -timedelta(minutes=30)
    first = [q.put_item({"n": n}) for n in range(3)]  # +3
    q.clock_offset = -timedelta(minutes=20)
    job = q.get_item("worker-1")  # -1
    assert job is not None and job.id == first[0]
    q.update_status(job.id, Status.CRASHED, lease_id=job.lease_id, error="ValueError: x")  # +1: crashed waits
    q.cancel(first[1])  # -1
    q.clock_offset = -timedelta(minutes=5)
    done = q.get_item("worker-1")  # -1
    assert done is not None
    q.update_status(done.id, Status.PROCESSED, lease_id=done.lease_id, result=1)  # 0
    q.clock_offset = timedelta(0)

    changes = q.waiting_changes(window_seconds=3600, bucket_seconds=60)

    assert [change for _at, change in changes] == [3, -1, -1]
    assert [at for at, _change in changes] == sorted(at for at, _change in changes)
    waiting_now = sum(q.stats().total(s) for s in (Status.UNPROCESSED, Status.CRASHED))
    assert waiting_now == sum(change for _at, change in changes) == 1
    assert q.waiting_changes(window_seconds=600, bucket_seconds=60) == changes[-1:], "only the window's moves"
