"""Job ids name one job for ever: an id given once is never given to another job.

(After a PostgreSQL failover: tests/faults/test_failover.py, which needs a standby.)
"""

from __future__ import annotations

from pqueue import PersistentQ, Status


def test_purged_newest_job__its_id_is_never_given_again(q: PersistentQ) -> None:
    q.put_item({"n": 1})
    newest = q.put_item({"n": 2})
    q.cancel(newest, reason="not needed")
    assert q.purge(0, [Status.CANCELLED]) == 1
    later = q.put_item({"n": 3})
    assert later > newest
    assert q.get_job(later).payload == {"n": 3}


def test_ids__small_numbers_on_a_database_that_never_failed_over(q: PersistentQ) -> None:
    """Operators type them (`pq show 3`): the first job is 1 (PostgreSQL: timeline 1)."""
    assert [q.put_item({"n": n}) for n in range(3)] == [1, 2, 3]
