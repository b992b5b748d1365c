# mypy: disable-error-code="import-not-found", allow-untyped-decorators
# (it runs in bench/.venv-peers; the project environment lacks these libraries)
"""persist-queue's SQLiteAckQueue, huey's SqliteHuey and litequeue, at synchronous=FULL like pqueue."""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import Any

from bench.payloads import payload, payload_text

FULL = 2  # PRAGMA synchronous value


def _sync_words(value: int) -> str:
    return "WAL, synchronous=" + {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(value, str(value))


def persist_queue(test: str, n: int, path: str) -> dict[str, Any]:
    import persistqueue

    queue = persistqueue.SQLiteAckQueue(path, multithreading=False)
    sync = queue._putter.execute("PRAGMA synchronous").fetchone()[0]
    result = {
        "version": version("persist-queue"),
        "durability": _sync_words(sync),
        "delivery": "at-least-once (ack; unacked items return on restart; one process)",
    }
    if test == "put_one":
        started = time.perf_counter()
        for number in range(n):
            queue.put(payload(number))
        return {**result, "value": n / (time.perf_counter() - started)}
    for number in range(n):
        queue.put(payload(number))
    started = time.perf_counter()
    for _ in range(n):
        item = queue.get(block=False)
        queue.ack(item)
    return {**result, "value": n / (time.perf_counter() - started)}


def huey(test: str, n: int, path: str) -> dict[str, Any]:
    from huey import SqliteHuey

    app = SqliteHuey(filename=f"{path}/huey.db", fsync=True, results=False)

    @app.task()
    def noop(job: dict[str, Any]) -> None:
        return None

    sync = app.storage.conn.execute("PRAGMA synchronous").fetchone()[0]
    result = {
        "version": version("huey"),
        "durability": _sync_words(sync) + " (fsync=True)",
        "delivery": "at-most-once (the row is deleted when dequeued)",
    }
    if test == "put_one":
        started = time.perf_counter()
        for number in range(n):
            noop(payload(number))
        return {**result, "value": n / (time.perf_counter() - started)}
    for number in range(n):
        noop(payload(number))
    started = time.perf_counter()
    done = 0
    while True:
        task = app.dequeue()
        if task is None:
            break
        app.execute(task)
        done += 1
    elapsed = time.perf_counter() - started
    if done != n:
        raise RuntimeError(f"huey ran {done} of {n}")
    return {**result, "value": n / elapsed}


def litequeue(test: str, n: int, path: str) -> dict[str, Any]:
    from litequeue import LiteQueue

    queue = LiteQueue(f"{path}/litequeue.db")
    queue.conn.execute("PRAGMA synchronous = FULL")  # its default is NORMAL; measured like pqueue
    sync = queue.conn.execute("PRAGMA synchronous").fetchone()[0]
    result = {
        "version": version("litequeue"),
        "durability": _sync_words(sync) + " (set; default NORMAL)",
        "delivery": "at-least-once (pop locks, done acknowledges)",
    }
    if test == "put_one":
        started = time.perf_counter()
        for number in range(n):
            queue.put(payload_text(number))
        return {**result, "value": n / (time.perf_counter() - started)}
    for number in range(n):
        queue.put(payload_text(number))
    started = time.perf_counter()
    done = 0
    while True:
        message = queue.pop()
        if message is None:
            break
        queue.done(message.message_id)
        done += 1
    elapsed = time.perf_counter() - started
    if done != n:
        raise RuntimeError(f"litequeue ran {done} of {n}")
    return {**result, "value": n / elapsed}
