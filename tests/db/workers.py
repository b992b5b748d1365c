"""Process bodies for the multi-process tests (importable, so spawn can start them), and the
parent's side: the settings a process is given, and collecting what the processes report."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queue_module
import time
import traceback
from collections.abc import Callable
from multiprocessing.synchronize import Barrier, Event
from typing import Any

import pqueue
from pqueue import Settings

# The tests' processes are forked from one server process per test worker that imported this
# module, and pqueue with it, once: a spawned process imported them again (about 0.9 s of CPU
# each, 143 processes in a whole run, a tenth of the suite's CPU). Each is still a process of its
# own, with its own connections, started by the test and racing the others for the CPU.
PROCESSES = multiprocessing.get_context("forkserver")
PROCESSES.set_forkserver_preload([__name__])


def open_store(overrides: dict[str, Any]) -> pqueue.PersistentQ:
    return pqueue.connect(settings=pqueue.load_settings(**overrides), migrate=False)


def produce(overrides: dict[str, Any], count: int, tag: str, out: Any) -> None:
    """Put `count` jobs one per transaction; report each acknowledged id, or the error."""
    store = open_store(overrides)
    try:
        for n in range(count):
            out.put(("ack", store.put_item({"tag": tag, "n": n})))
    except Exception:  # noqa: BLE001 - any error reaching the caller is what the test looks for
        out.put(("error", traceback.format_exc()))
    finally:
        store.close()
        out.put(("done", tag))


def consume(overrides: dict[str, Any], stop: Event, out: Any, one_transaction: bool = False) -> None:
    """Claim and complete until told to stop, reporting (id, lease, start, end) of every run;
    with one_transaction, each outcome and the next claim go together (finish_and_claim)."""
    store = open_store(overrides)
    worker = f"w{os.getpid()}"
    job = None
    try:
        while not stop.is_set():
            if job is None:
                job = store.get_item(worker)
                if job is None:
                    store.wait_for_work(0.05)
                    continue
            started = time.monotonic()
            time.sleep(0.0005)
            ended = time.monotonic()
            out.put(("run", job.id, job.lease_id, started, ended))
            if one_transaction:
                _, job = store.finish_and_claim(
                    job.id, "processed", lease_id=job.lease_id, worker_id=worker, result=job.id
                )
            else:
                store.update_status(job.id, "processed", lease_id=job.lease_id, result=job.id)
                job = None
    except Exception:  # noqa: BLE001
        out.put(("error", traceback.format_exc()))
    finally:
        store.close()


def put_same_key(overrides: dict[str, Any], barrier: Barrier, out: Any) -> None:
    """Race other processes to put one idempotency key."""
    store = open_store(overrides)
    try:
        barrier.wait(30)
        out.put(("id", store.put_item({"same": True}, idempotency_key="race")))
    except Exception:  # noqa: BLE001
        out.put(("error", traceback.format_exc()))
    finally:
        store.close()


def claim_at_barrier(overrides: dict[str, Any], barrier: Barrier, out: Any) -> None:
    """Race other processes to claim from a queue with one seat."""
    store = open_store(overrides)
    try:
        barrier.wait(30)
        job = store.get_item(f"w{os.getpid()}")
        out.put(("claimed", job.id if job else None))
    except Exception:  # noqa: BLE001
        out.put(("error", traceback.format_exc()))
    finally:
        store.close()


def hold_job(overrides: dict[str, Any], out: Any) -> None:
    """Claim a job and then hang, as a worker that froze or will be killed."""
    store = open_store(overrides)
    job = store.get_item("doomed")
    out.put(("holding", job.id if job else None))
    time.sleep(3600)


def open_and_migrate(overrides: dict[str, Any], barrier: Barrier, out: Any) -> None:
    """Start at the same moment as other programs on a fresh database."""
    try:
        barrier.wait(30)
        store = pqueue.connect(settings=pqueue.load_settings(**overrides), migrate=True)
        store.put_item("started")
        store.close()
        out.put(("ok", os.getpid()))
    except Exception:  # noqa: BLE001
        out.put(("error", traceback.format_exc()))


def claim_rounds(overrides: dict[str, Any], rounds: int, barrier: Barrier, out: Any) -> None:
    """In each round, claim once at the same moment as every other process."""
    store = open_store(overrides)
    try:
        for _ in range(rounds):
            barrier.wait(60)
            job = store.get_item(f"w{os.getpid()}")
            out.put(("claimed", (job.id, job.lease_id) if job else None))
    except Exception:  # noqa: BLE001
        out.put(("error", traceback.format_exc()))
    finally:
        store.close()


def idle_consumer(overrides: dict[str, Any], count: int, out: Any) -> None:
    """Wait for work the way the consumer does; report when each claim happened."""
    store = open_store(overrides)
    try:
        out.put(("ready", os.getpid()))
        done = 0
        while done < count:
            job = store.get_item("idle")
            if job is None:
                store.wait_for_work(5.0)
                continue
            out.put(("claimed", job.id, time.time()))
            store.update_status(job.id, "processed", lease_id=job.lease_id)
            done += 1
    except Exception:  # noqa: BLE001
        out.put(("error", traceback.format_exc()))
    finally:
        store.close()


def resilient_consumer(overrides: dict[str, Any], stop: Event, out: Any) -> None:
    """A consumer loop that rides out a database restart, as pq-consumer does: an outcome it
    could not write is written again under the same lease, and a job whose claim or outcome was
    lost with the connection is rescued once its lease ends (it says when it is connected: the
    restart is meant to come while it runs)."""
    store = open_store(overrides)
    out.put(("connected", os.getpid()))
    while not stop.is_set():
        try:
            store.rescue_expired()
            job = store.get_item("resilient")
            if job is None:
                store.wait_for_work(0.2)
                continue
        except pqueue.DatabaseError:
            out.put(("outage", time.time()))
            time.sleep(0.2)
            continue
        while not stop.is_set():
            try:
                store.update_status(job.id, "processed", lease_id=job.lease_id, result=job.payload)
                out.put(("done", job.id))
                break
            except pqueue.DatabaseError:
                out.put(("outage", time.time()))
                time.sleep(0.2)
            except pqueue.LeaseLost:  # rescued meanwhile: it runs again
                break
    store.close()


def overrides_of(settings: Settings, **extra: Any) -> dict[str, Any]:
    base = {"home": settings.home, "database_url": settings.database_url, "db_schema": settings.db_schema}
    base.update(extra)
    return base


def drain(out: Any, until: Callable[[list[tuple[Any, ...]]], bool], timeout: float) -> list[tuple[Any, ...]]:
    """Collect messages from the processes until `until` holds or the deadline passes."""
    messages: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + timeout
    while not until(messages):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last messages: {messages[-5:]}")
        with contextlib.suppress(queue_module.Empty):
            messages.append(out.get(timeout=0.5))
    return messages
