"""Group commit: submissions waiting together share one transaction, and each still gets its own answer.

The groups are made deterministic by holding SQLite's write lock from another connection: the
writer blocks on it with one group while the next submissions queue up behind it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from pqueue import DatabaseError, IdempotencyConflict, NewJob, PersistentQ, PutResult
from producer.group_commit import GroupCommitter
from tests.support import wait_until

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


class CountingStore(PersistentQ):
    """The real store, counting its put_items transactions."""

    def __init__(self, store: PersistentQ) -> None:
        super().__init__(store.engine, store.settings)
        self.groups: list[int] = []

    def put_items(self, new_jobs: Sequence[NewJob], *, actor: str = "producer") -> list[PutResult]:
        self.groups.append(len(new_jobs))
        return super().put_items(new_jobs, actor=actor)


@contextmanager
def write_lock_held(store: PersistentQ) -> Iterator[None]:
    other = sqlite3.connect(str(store.engine.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.fixture
def counting(q: PersistentQ) -> CountingStore:
    return CountingStore(q)


@pytest.fixture
def committer(counting: CountingStore) -> Iterator[GroupCommitter]:
    writer = GroupCommitter(counting)
    yield writer
    writer.close()


def submit_behind_a_lock(
    committer: GroupCommitter, counting: CountingStore, first: NewJob, rest: list[NewJob]
) -> list[Callable[[], PutResult]]:
    """Submit `first` (the writer takes it and waits for the lock), then `rest` (they queue up)."""
    pool = ThreadPoolExecutor(max_workers=len(rest) + 1)
    futures: list[Future[PutResult]] = [pool.submit(committer.put, first)]
    wait_until(lambda: counting.groups == [1], what="the writer to take the first job")
    futures += [pool.submit(committer.put, job) for job in rest]
    wait_until(lambda: committer._waiting.qsize() == len(rest), what="the other jobs to queue up")
    pool.shutdown(wait=False)
    return [future.result for future in futures]


def test_group_commit__waiting_submissions_share_one_transaction(
    committer: GroupCommitter, counting: CountingStore
) -> None:
    with write_lock_held(counting):
        answers = submit_behind_a_lock(committer, counting, NewJob(0), [NewJob(n) for n in range(1, 20)])
    results = [answer() for answer in answers]

    assert counting.groups == [1, 19]
    assert all(result.created for result in results)
    assert [counting.get_job(result.id).payload for result in results] == list(range(20))


def test_group_commit__a_conflict_fails_only_its_own_request(
    committer: GroupCommitter, counting: CountingStore
) -> None:
    first = NewJob({"order": 1}, idempotency_key="k")
    clash = NewJob({"order": 2}, idempotency_key="k")
    repeat = NewJob({"order": 1}, idempotency_key="k")
    other = NewJob({"order": 3})
    with write_lock_held(counting):
        answers = submit_behind_a_lock(committer, counting, first, [clash, repeat, other])

    stored = answers[0]()
    with pytest.raises(IdempotencyConflict):
        answers[1]()
    assert answers[2]() == PutResult(id=stored.id, created=False)
    assert answers[3]().created
    assert counting.count_items() == 2


def test_group_commit__database_error_fails_every_request_of_the_group(make_queue: Callable[..., PersistentQ]) -> None:
    impatient = CountingStore(make_queue(write_timeout=0.2))
    committer = GroupCommitter(impatient)
    try:
        with write_lock_held(impatient):
            results: list[BaseException | PutResult] = []

            def put(n: int) -> None:
                try:
                    results.append(committer.put(NewJob(n)))
                except DatabaseError as exc:
                    results.append(exc)

            threads = [threading.Thread(target=put, args=(n,)) for n in range(5)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
    finally:
        committer.close()

    assert len(results) == 5 and all(isinstance(result, DatabaseError) for result in results)
    assert impatient.count_items() == 0


def test_group_commit__close_stores_what_is_queued_then_refuses(
    committer: GroupCommitter, counting: CountingStore
) -> None:
    with write_lock_held(counting):
        answers = submit_behind_a_lock(committer, counting, NewJob("a"), [NewJob("b"), NewJob("c")])
        closing = threading.Thread(target=committer.close)
        closing.start()
    closing.join(30)

    assert [answer().created for answer in answers] == [True, True, True]
    with pytest.raises(DatabaseError, match="shutting down"):
        committer.put(NewJob("late"))


def test_group_commit__event_loop_submissions_share_one_transaction(
    committer: GroupCommitter, counting: CountingStore
) -> None:
    async def submit_all() -> list[PutResult]:
        with write_lock_held(counting):
            first = asyncio.ensure_future(committer.submit(NewJob(0)))
            await asyncio.to_thread(wait_until, lambda: counting.groups == [1], what="the writer to take job 0")
            rest = [asyncio.ensure_future(committer.submit(NewJob(n))) for n in range(1, 10)]
            await asyncio.sleep(0)  # every submission is queued behind the lock
        return await asyncio.gather(first, *rest)

    results = asyncio.run(submit_all())

    assert counting.groups == [1, 9]
    assert [counting.get_job(result.id).payload for result in results] == list(range(10))


def test_group_commit__event_loop_conflict_fails_only_its_own_request(
    committer: GroupCommitter, counting: CountingStore
) -> None:
    async def submit_all() -> list[PutResult | BaseException]:
        with write_lock_held(counting):
            first = asyncio.ensure_future(committer.submit(NewJob({"order": 1}, idempotency_key="k")))
            await asyncio.to_thread(wait_until, lambda: counting.groups == [1], what="the writer to take the first")
            clash = asyncio.ensure_future(committer.submit(NewJob({"order": 2}, idempotency_key="k")))
            other = asyncio.ensure_future(committer.submit(NewJob({"order": 3})))
            await asyncio.sleep(0)
        return list(await asyncio.gather(first, clash, other, return_exceptions=True))

    stored, clash, other = asyncio.run(submit_all())

    assert isinstance(stored, PutResult) and stored.created
    assert isinstance(clash, IdempotencyConflict)
    assert isinstance(other, PutResult) and other.created
    assert counting.count_items() == 2
