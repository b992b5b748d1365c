"""Group commit: the single-job submissions that arrive together share one transaction.

Each commit costs a disk flush (SQLite runs with synchronous=FULL), so committing one job per
request caps the intake at one flush per job. Here one writer thread takes every submission
waiting at that moment and stores them with one `put_items` call: one commit, one flush. A
request still gets its answer only after the commit that holds its job (acknowledged means
stored), and a lone request waits for nobody: the writer never holds a group open.

Requests on the event loop `await submit(job)`: no threadpool hop per request, and the writer
wakes the loop once per group (not once per job) to hand out the answers. Threads call `put`.

One writer also means this process's writes never fight each other for SQLite's write lock.
If a group fails because of one job (an idempotency conflict, bad input), its jobs are stored
one by one so only that job's request gets the error; a database error fails the whole group,
and every request in it answers 503, having stored nothing.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import defaultdict
from concurrent.futures import Future

from pqueue import DatabaseError, NewJob, PQError, PutResult, WorkQueue

log = logging.getLogger("producer")
MAX_GROUP = 500

Waiter = Future[PutResult] | asyncio.Future[PutResult]
Submission = tuple[NewJob, Waiter]
Outcome = tuple[Waiter, PutResult | BaseException]


class GroupCommitter:
    """Stores submissions from many requests in as few transactions as it can."""

    def __init__(self, store: WorkQueue, max_group: int = MAX_GROUP) -> None:
        self.store = store
        self.max_group = max_group
        self._waiting: queue.SimpleQueue[Submission | None] = queue.SimpleQueue()
        self._closed = False
        self._closing = threading.Lock()  # nothing is queued after the stop mark
        self._thread = threading.Thread(target=self._run, name="pq-group-commit", daemon=True)
        self._thread.start()

    def put(self, job: NewJob) -> PutResult:
        """Store one job from a thread; returns once the transaction holding it has committed."""
        future: Future[PutResult] = Future()
        self._enqueue(job, future)
        return future.result()

    async def submit(self, job: NewJob) -> PutResult:
        """Store one job from the event loop; returns once the transaction holding it has committed."""
        future: asyncio.Future[PutResult] = asyncio.get_running_loop().create_future()
        self._enqueue(job, future)
        return await future

    def close(self, timeout: float = 30.0) -> None:
        """Store what is queued, then stop the writer."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._waiting.put(None)
        self._thread.join(timeout)

    def _enqueue(self, job: NewJob, waiter: Waiter) -> None:
        with self._closing:
            if self._closed:
                raise DatabaseError("the intake is shutting down")
            self._waiting.put((job, waiter))

    def _run(self) -> None:
        while True:
            group, stop = self._next_group()
            if group:
                _settle(self._store(group))
            if stop:
                return

    def _next_group(self) -> tuple[list[Submission], bool]:
        """Block for one submission, then take whatever else is already waiting."""
        first = self._waiting.get()
        if first is None:
            return [], True
        group = [first]
        while len(group) < self.max_group:
            try:
                item = self._waiting.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return group, True
            group.append(item)
        return group, False

    def _store(self, group: list[Submission]) -> list[Outcome]:
        """Each submission's result or error, once its transaction is over."""
        try:
            results = self.store.put_items([job for job, _ in group])
        except DatabaseError as exc:
            return [(waiter, exc) for _, waiter in group]
        except PQError as exc:
            if len(group) == 1:
                return [(group[0][1], exc)]
            # One job spoiled the group: give each job its own answer.
            return [outcome for submission in group for outcome in self._store([submission])]
        except BaseException as exc:  # noqa: BLE001 - never leave a request waiting forever
            log.exception("storing %d submissions failed", len(group))
            return [(waiter, exc) for _, waiter in group]
        return [(waiter, result) for (_, waiter), result in zip(group, results, strict=True)]


def _settle(outcomes: list[Outcome]) -> None:
    """Hand out the answers: thread futures at once, each event loop's in one wake-up."""
    by_loop: defaultdict[asyncio.AbstractEventLoop, list[Outcome]] = defaultdict(list)
    for waiter, outcome in outcomes:
        if isinstance(waiter, asyncio.Future):
            by_loop[waiter.get_loop()].append((waiter, outcome))
        else:
            _resolve(waiter, outcome)
    for loop, on_loop in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve_all, on_loop)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.warning("%d answers had no event loop to go to", len(on_loop))


def _resolve_all(outcomes: list[Outcome]) -> None:
    for waiter, outcome in outcomes:
        _resolve(waiter, outcome)


def _resolve(waiter: Waiter, outcome: PutResult | BaseException) -> None:
    if waiter.done():  # cancelled
        return
    if isinstance(outcome, BaseException):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)
