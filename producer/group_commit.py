"""Group commit: the single-job submissions that arrive together share one transaction.

Each commit costs a disk flush (SQLite runs with synchronous=FULL), so committing one job per
request caps the intake at one flush per job. Here one writer thread takes every submission
waiting at that moment and stores them with one `put_items` call: one commit, one flush. A
request still gets its answer only after the commit that holds its job (acknowledged means
stored), and a lone request waits for nobody: the writer never holds a group open.

One writer also means this process's writes never fight each other for SQLite's write lock.
If a group fails because of one job (an idempotency conflict, bad input), its jobs are stored
one by one so only that job's request gets the error; a database error fails the whole group,
and every request in it answers 503, having stored nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from pqueue import DatabaseError, NewJob, PersistentQ, PQError, PutResult

log = logging.getLogger("producer")
MAX_GROUP = 500

Submission = tuple[NewJob, "Future[PutResult]"]


class GroupCommitter:
    """Stores submissions from many request threads in as few transactions as it can."""

    def __init__(self, store: PersistentQ, max_group: int = MAX_GROUP) -> None:
        self.store = store
        self.max_group = max_group
        self._waiting: queue.SimpleQueue[Submission | None] = queue.SimpleQueue()
        self._closed = False
        self._closing = threading.Lock()  # nothing is queued after the stop mark
        self._thread = threading.Thread(target=self._run, name="pq-group-commit", daemon=True)
        self._thread.start()

    def put(self, job: NewJob) -> PutResult:
        """Store one job; returns once the transaction holding it has committed."""
        future: Future[PutResult] = Future()
        with self._closing:
            if self._closed:
                raise DatabaseError("the intake is shutting down")
            self._waiting.put((job, future))
        return future.result()

    def close(self, timeout: float = 30.0) -> None:
        """Store what is queued, then stop the writer."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._waiting.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            group, stop = self._next_group()
            if group:
                self._store(group)
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

    def _store(self, group: list[Submission]) -> None:
        try:
            results = self.store.put_items([job for job, _ in group])
        except DatabaseError as exc:
            for _, future in group:
                future.set_exception(exc)
        except PQError as exc:
            if len(group) == 1:
                group[0][1].set_exception(exc)
            else:  # one job spoiled the group: give each job its own answer
                for submission in group:
                    self._store([submission])
        except BaseException as exc:  # noqa: BLE001 - never leave a request waiting forever
            log.exception("storing %d submissions failed", len(group))
            for _, future in group:
                future.set_exception(exc)
        else:
            for (_, future), result in zip(group, results, strict=True):
                future.set_result(result)
