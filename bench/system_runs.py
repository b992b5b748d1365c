"""The programs as they ship, measured per backend and round: memory, idle dispatch latency,
licence utilisation, HTTP intake, the consumer's drain rate and end to end with callbacks."""

from __future__ import annotations

import math
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bench.algos import read_marks
from bench.config import Config
from bench.databases import Databases
from bench.deploy import Deployment
from bench.library import durability
from bench.measure import Row, log, percentile
from bench.procs import resident_mib, wait_until
from bench.receiver import Receiver
from pqueue import NewJob, Status

ORIGINAL_TICK = 2.0  # seconds: the original design's fixed scheduler interval
LICENSE_JOB_SECONDS = 0.05
INTAKE_CLIENTS = (8, 32)
INTAKE_QUEUE = "intake"  # no consumer reads it: intake is measured alone


@dataclass
class BackendRows:
    """Every row the programs produce for one backend."""

    backend: str
    rows: dict[str, Row] = field(default_factory=dict)

    def row(self, key: str, section: str, test: str, unit: str, delivery: str = "at-least-once") -> Row:
        if key not in self.rows:
            self.rows[key] = Row(
                key=f"{self.backend}/{key}",
                section=section,
                test=test,
                system=f"pqueue ({self.backend})",
                durability=durability(self.backend),
                delivery=delivery,
                unit=unit,
            )
        return self.rows[key]


def run_rounds(config: Config, databases: Databases, version: str) -> list[Row]:
    """One deployment per backend per round, backends interleaved round by round."""
    per_backend = {backend: BackendRows(backend) for backend in config.backends}
    receiver = Receiver()
    try:
        for number in range(1, config.runs + 1):
            for backend in config.backends:
                rows = per_backend[backend]
                try:
                    _one_round(config, databases, rows, receiver, last=number == config.runs)
                except Exception as exc:  # noqa: BLE001 - record it and go on with the rest
                    log.exception("programs on %s, round %d failed", backend, number)
                    for row in rows.rows.values():
                        row.error = row.error or f"round {number}: {type(exc).__name__}: {exc}"[:300]
                    rows.row("failed", "Programs", "programs round", "").error = f"{type(exc).__name__}: {exc}"
    finally:
        receiver.close()
    result = [row for rows in per_backend.values() for row in rows.rows.values()]
    for row in result:
        row.version = version
    return result


def _one_round(config: Config, databases: Databases, rows: BackendRows, receiver: Receiver, last: bool) -> None:
    target = databases.fresh(rows.backend, "programs")
    deployment = Deployment(target, config.workdir)
    try:
        deployment.wait_ready()
        _memory(rows, deployment, "rest", jobs=0)
        _dispatch(rows, deployment, config.dispatch_samples_per_run, pause=0.2, key="dispatch")
        _license(rows, deployment, config.license_backlog)
        with busy_neighbour(processes=2):
            _license(rows, deployment, config.license_backlog, beside="a CPU-bound neighbour")
        _intake(rows, deployment, config.http_requests)
        _intake_keyed(rows, deployment, config.http_requests)
        _drain(rows, deployment, config.n)
        _end_to_end(rows, deployment, receiver, config.e2e_jobs)
        soak = last and "soak" in config.parts
        if soak and config.long_idle_samples:
            _dispatch(rows, deployment, config.long_idle_samples, pause=6.0, key="dispatch_long")
        if soak and rows.backend == "sqlite":
            _producer_memory_after(rows, deployment, config.memory_jobs)
            _consumer_memory_after(rows, deployment, config.memory_jobs)
        processed = deployment.store.count_items(status=Status.PROCESSED)
        _memory(rows, deployment, "after", jobs=processed)
    finally:
        deployment.close()
        databases.drop(target)


def _memory(rows: BackendRows, deployment: Deployment, when: str, jobs: int) -> None:
    section = "Memory (resident size, MiB)"
    unit = "MiB"
    label = "at rest" if when == "rest" else "after the round's jobs"
    consumer = rows.row(f"mem_consumer_{when}", section, f"pq-consumer process, {label}", unit, "")
    consumer.runs.append(resident_mib(deployment.consumer.pid))
    tree = rows.row(f"mem_tree_{when}", section, f"pq-consumer with helper and warm job process, {label}", unit, "")
    tree.runs.append(resident_mib(deployment.consumer.pid, with_children=True))
    producer = rows.row(f"mem_producer_{when}", section, f"pq-producer, {label}", unit, "")
    producer.runs.append(resident_mib(deployment.producer.pid))
    if jobs:
        for row in (consumer, tree):
            row.extra.setdefault("jobs_processed", []).append(jobs)
        producer.extra.setdefault("jobs_posted", []).append(deployment.posted)


def _dispatch(rows: BackendRows, deployment: Deployment, samples: int, pause: float, key: str) -> None:
    """Idle consumer: from put_item returning (the job committed) to the algorithm's first line."""
    how = "NOTIFY" if rows.backend == "postgresql" else "inotify on the database files"
    test = f"idle consumer ({pause:g} s idle), commit to algorithm start ({how})"
    row = rows.row(key, "Dispatch latency", test, "ms")
    path = str(deployment.workdir / f"marks-{uuid.uuid4().hex}.log")
    found: list[float] = []
    for number in range(samples):
        time.sleep(pause)  # the consumer is idle meanwhile: this is what is measured
        tag = f"d{number}"
        job_id = deployment.store.put_item({"log": path, "tag": tag})
        committed = time.time()
        wait_until(partial(_is_processed, deployment, job_id), interval=0.005)
        found.append(read_marks(path)[tag]["start"] - committed)
    row.samples.extend(found)
    row.runs.append(percentile(found, 0.5) * 1000)


def _is_processed(deployment: Deployment, job_id: int) -> bool:
    return deployment.store.get_job(job_id).status == Status.PROCESSED


@contextmanager
def busy_neighbour(processes: int) -> Iterator[None]:
    """`processes` busy loops beside the system (on 2 cores: every core contended), stopped on
    leaving; each also ends by itself after 10 minutes, whatever happens to the harness."""
    spin = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(processes)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _license(rows: BackendRows, deployment: Deployment, backlog: int, beside: str = "") -> None:
    """A backlog of 50 ms jobs, one seat: the gap between runs and the seat's busy share (beside:
    what else loads the machine meanwhile, for the rows measured under contention)."""
    store = deployment.store
    path = str(deployment.workdir / f"license-{uuid.uuid4().hex}.log")
    before = store.count_items(status=Status.PROCESSED)
    store.pause()
    store.put_items([NewJob({"log": path, "tag": f"L{i:06d}", "sleep": LICENSE_JOB_SECONDS}) for i in range(backlog)])
    store.resume()
    deployment.wait_processed(before + backlog, timeout=backlog * 2 + 120)
    wait_until(lambda: sum("end" in m for m in read_marks(path).values()) == backlog, what="every run's end")
    marks = sorted(read_marks(path).values(), key=lambda m: m["start"])
    gaps = [later["start"] - earlier["end"] for earlier, later in zip(marks, marks[1:], strict=False)]
    durations = [m["end"] - m["start"] for m in marks]
    wall = marks[-1]["end"] - marks[0]["start"]
    section = "Licence utilisation (backlog of 50 ms jobs, PQ_MAX_RUNNING=1)"
    key, words = ("_neighbour", f", beside {beside}") if beside else ("", "")
    busy = rows.row(f"license_busy{key}", section, f"seat busy share of the wall time{words}", "% busy")
    busy.runs.append(100 * sum(durations) / wall)
    busy.n = backlog
    gap = rows.row(f"license_gap{key}", section, f"handoff gap: one run's end to the next one's start{words}", "ms")
    gap.samples.extend(gaps)
    gap.runs.append(percentile(gaps, 0.5) * 1000)
    gap.n = backlog
    if beside:
        return
    tick_gaps, tick_share = fixed_tick(durations, ORIGINAL_TICK)
    tick = rows.row("license_tick", section, "the same jobs under a fixed 2 s scheduler tick (computed)", "% busy")
    tick.runs.append(100 * tick_share)
    tick.extra.setdefault("gap_p50_ms", []).append(percentile(tick_gaps, 0.5) * 1000)
    tick.n = backlog


def fixed_tick(durations: list[float], tick: float) -> tuple[list[float], float]:
    """Gaps and busy share if each job could start only on a scheduler tick after the previous ended."""
    moment = 0.0
    gaps: list[float] = []
    for duration in durations:
        end = moment + duration
        next_start = math.ceil(end / tick - 1e-9) * tick
        gaps.append(next_start - end)
        moment = next_start
    wall = moment - gaps[-1] if gaps else 0.0
    return gaps[:-1], (sum(durations) / wall if wall else 0.0)


def _intake(rows: BackendRows, deployment: Deployment, requests: int) -> None:
    """POST /jobs from a second process, into a queue no consumer reads (so nothing else runs)."""
    for clients in INTAKE_CLIENTS:
        result = deployment.load(requests, clients, queue=INTAKE_QUEUE)
        _intake_row(rows, f"intake_{clients}", f"{clients} concurrent clients", result, requests)


def _intake_row(rows: BackendRows, key: str, test: str, result: dict[str, Any], requests: int) -> None:
    """One load generator run's figures in the intake's row: its rate, p50 and p99."""
    row = rows.row(key, "HTTP intake (POST /jobs)", test, "requests/s")
    row.runs.append(result["rate"])
    row.n = requests
    row.extra.setdefault("p50_ms", []).append(result["p50"] * 1000)
    row.extra.setdefault("p99_ms", []).append(result["p99"] * 1000)


def _intake_keyed(rows: BackendRows, deployment: Deployment, requests: int) -> None:
    """POST /jobs with PQ_API_TOKEN and with a partner's key, in turns, 8 clients: what a key check
    costs. Skipped on a revision without partners (bench/compare against an older commit)."""
    store = deployment.store
    if not hasattr(store, "create_key"):
        return
    if not any(partner.name == "bench" for partner in store.partners()):
        store.add_partner("bench")
    key = store.create_key("bench").key
    for label, token in (("token", None), ("key", key), ("key", key), ("token", None)):
        result = deployment.load(requests, 8, queue=INTAKE_QUEUE, token=token)
        what = "PQ_API_TOKEN" if label == "token" else "a partner's key (pq key create)"
        _intake_row(rows, f"intake_{label}_8", f"8 concurrent clients, with {what}", result, requests)


def _drain(rows: BackendRows, deployment: Deployment, backlog: int) -> None:
    """A backlog of no-op jobs put while the queue is paused, then drained by the running consumer."""
    store = deployment.store
    before = store.count_items(status=Status.PROCESSED)
    store.pause()
    store.put_items([NewJob({"n": i}) for i in range(backlog)])
    began = store.now()
    store.resume()
    deployment.wait_processed(before + backlog, timeout=backlog + 120)
    last = store.get_all_items(status=Status.PROCESSED, limit=1).items[0]
    assert last.finished_at is not None
    drain = rows.row("consumer_drain", "Drain", "pq-consumer, no-op algorithm, child process per job, 1 seat", "jobs/s")
    drain.runs.append(backlog / (last.finished_at - began).total_seconds())
    drain.n = backlog


def _end_to_end(rows: BackendRows, deployment: Deployment, receiver: Receiver, jobs: int) -> None:
    """Jobs submitted over HTTP (8 clients) until processed and their callbacks delivered."""
    receiver.reset()
    result = deployment.load(jobs, 8, callback=receiver.url)
    wait_until(lambda: len(receiver.job_ids) >= jobs, timeout=jobs + 120, interval=0.02, what="callbacks")
    row = rows.row("e2e", "End to end", "HTTP submit, no-op algorithm, processed and callback delivered", "jobs/s")
    row.runs.append(jobs / (receiver.last_at - result["started"]))
    row.n = jobs
    row.extra.setdefault("duplicate_deliveries", []).append(receiver.deliveries - len(receiver.job_ids))


def _consumer_memory_after(rows: BackendRows, deployment: Deployment, total: int) -> None:
    """Put no-op jobs until the consumer has processed `total`, let it drain them, then read its
    resident size (and its tree's): a leak per job would show here."""
    store = deployment.store
    done = store.count_items(status=Status.PROCESSED)
    for start in range(done, total, 1000):
        store.put_items([NewJob({"n": n}) for n in range(start, min(total, start + 1000))])
    # A slow poll: a count every 20 ms over a growing table would take CPU from the consumer.
    wait_until(lambda: store.count_items(status=Status.PROCESSED) >= total, timeout=total + 120, interval=1.0)
    section, label = "Memory (resident size, MiB)", "after the jobs processed"
    consumer = rows.row("mem_consumer_total", section, f"pq-consumer process, {label}", "MiB", "")
    consumer.runs.append(resident_mib(deployment.consumer.pid))
    tree = rows.row("mem_tree_total", section, f"pq-consumer with helper and warm job process, {label}", "MiB", "")
    tree.runs.append(resident_mib(deployment.consumer.pid, with_children=True))
    for row in (consumer, tree):
        row.extra.setdefault("jobs_processed", []).append(store.count_items(status=Status.PROCESSED))


def _producer_memory_after(rows: BackendRows, deployment: Deployment, total: int) -> None:
    """Post until the producer has taken `total` jobs (queue paused), then read its resident size."""
    remaining = total - deployment.posted
    if remaining > 0:
        deployment.load(remaining, 32, queue=INTAKE_QUEUE)
    row = rows.row("mem_producer_total", "Memory (resident size, MiB)", "pq-producer, after the jobs posted", "MiB", "")
    row.runs.append(resident_mib(deployment.producer.pid))
    row.extra.setdefault("jobs_posted", []).append(deployment.posted)
