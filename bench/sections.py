"""The library-level tables: pqueue beside the raw driver and the peers, claim cost against table
size, and several processes at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench import library, raw, tablesize
from bench.config import WAIT_PARTNERS, Config
from bench.databases import Databases, Target
from bench.library import durability, open_store
from bench.measure import Case, Row, interleave, log
from bench.peer_runs import POSTGRES_PEERS, SQLITE_PEERS, peer_run
from pqueue import PersistentQ, Settings

TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
PUT_ONE = "put, 1 job per transaction"
PUT_BATCH = "batch put, 1,000 jobs per transaction"
CLAIM = "claim + complete (with event rows)"
FINISH_AND_CLAIM = "claim + complete in one transaction per job (finish_and_claim, with event rows)"
DRAIN = "drain a backlog of no-op jobs, one worker"
WAIT = "wait of a waiting job (GET /jobs/{id}), ms"
WAIT_SECTION = "Wait of a waiting job (GET /jobs/{id})"


def _pqueue_row(key: str, section: str, test: str, backend: str, version: str, n: int) -> Row:
    return Row(
        key=key,
        section=section,
        test=test,
        system="pqueue",
        version=version,
        durability=durability(backend),
        delivery="at-least-once",
        n=n,
    )


def _raw_row(key: str, section: str, test: str, backend: str, n: int) -> Row:
    name = "raw sqlite3" if backend == "sqlite" else "raw psycopg 3 (FOR UPDATE SKIP LOCKED)"
    return Row(
        key=key,
        section=section,
        test=test,
        system=name + " — the limit",
        version=raw_version(backend),
        durability=durability(backend),
        delivery="at-least-once (no seat check)",
        n=n,
    )


def raw_version(backend: str) -> str:
    import sqlite3

    import psycopg

    return f"SQLite {sqlite3.sqlite_version}" if backend == "sqlite" else f"psycopg {psycopg.__version__}"


def library_tables(config: Config, databases: Databases, version: str, peers: Path | None) -> list[Row]:
    """put one, batch put, claim + complete (two transactions per job, then one), and the PostgreSQL peers'
    drain, interleaved per test."""
    rows: list[Row] = []
    for backend in config.backends:
        section = f"{TITLES[backend]}: library beside the raw driver and the peers"
        tests: list[tuple[str, str, int, Callable[[], float], Callable[[], float]]] = [
            ("put_one", PUT_ONE, config.n_single, library.put_one(databases, backend, config.n_single),
             (raw.sqlite_put_one if backend == "sqlite" else raw.pg_put_one)(databases, config.n_single)),
            ("put_batch", PUT_BATCH, config.n_batch, library.put_batch(databases, backend, config.n_batch),
             (raw.sqlite_put_batch if backend == "sqlite" else raw.pg_put_batch)(databases, config.n_batch)),
            ("claim_complete", CLAIM, config.n, library.claim_complete(databases, backend, config.n),
             (raw.sqlite_claim_complete if backend == "sqlite" else raw.pg_claim_complete)(databases, config.n)),
            ("finish_and_claim", FINISH_AND_CLAIM, config.n, library.finish_and_claim(databases, backend, config.n),
             (raw.sqlite_finish_and_claim if backend == "sqlite" else raw.pg_finish_and_claim)(databases, config.n)),
        ]  # fmt: skip
        for test_key, test, n, ours, limit in tests:
            ours_row = _pqueue_row(f"{backend}/{test_key}/pqueue", section, test, backend, version, n)
            raw_row = _raw_row(f"{backend}/{test_key}/raw", section, test, backend, n)
            cases = [Case(ours_row, ours), Case(raw_row, limit)]
            cases += _peer_cases(config, databases, peers, backend, section, test_key, test, n)
            interleave(cases, config.runs)
            rows += [case.row for case in cases]
        if backend == "postgresql" and peers is not None:
            rows += _postgres_drains(config, databases, peers)
    return rows


def _peer_cases(
    config: Config, databases: Databases, peers: Path | None, backend: str, section: str, key: str, test: str, n: int
) -> list[Case]:
    if peers is None:
        return []
    systems = SQLITE_PEERS if backend == "sqlite" else POSTGRES_PEERS
    supported = {"put_one": True, "put_batch": backend == "postgresql", "claim_complete": backend == "sqlite"}
    if not supported.get(key, False):
        return []
    cases = []
    for system in systems:
        row = Row(key=f"{backend}/{key}/{system}", section=section, test=test, system=system, n=n)
        cases.append(Case(row, peer_run(peers, databases, row, system, key, n)))
    return cases


def _postgres_drains(config: Config, databases: Databases, peers: Path) -> list[Row]:
    section = "Drain"
    cases = []
    for system in POSTGRES_PEERS:
        for test_key, label in (("drain", "one worker"), ("drain_cap1", "one worker, database-enforced cap of 1")):
            row = Row(
                key=f"postgresql/{test_key}/{system}",
                section=section,
                test=f"{DRAIN}",
                system=f"{system} (postgresql), {label}",
                n=config.n,
            )
            cases.append(Case(row, peer_run(peers, databases, row, system, test_key, config.n)))
    interleave(cases, config.runs)
    return [case.row for case in cases]


def table_size_rows(config: Config, databases: Databases, version: str) -> tuple[list[Row], dict[str, str]]:
    """Claim cost with each table size already stored, and a waiting job's wait at each number of
    waiting jobs and partners (a shape both measure is filled once); the candidate query's plan at
    the largest."""
    rows: list[Row] = []
    plans: dict[str, str] = {}
    largest = max(config.table_sizes)
    claim_shapes = [(size, 1) for size in config.table_sizes]
    if tablesize.has_partners():
        claim_shapes += [(largest, 10), (largest, 100)]
    wait_shapes = [(2 * waiting, partners) for waiting in config.wait_sizes for partners in WAIT_PARTNERS]
    if not tablesize.has_wait():
        wait_shapes = []
    elif not tablesize.has_partners():
        wait_shapes = [(size, partners) for size, partners in wait_shapes if partners == 1]
    for backend in config.backends:
        cases: list[Case] = []
        opened: dict[tuple[int, int], tuple[Target, PersistentQ]] = {}
        fresh: list[PersistentQ] = []  # stores on those tables that simulate a new line for every wait
        try:
            for size, partners in dict.fromkeys(claim_shapes + wait_shapes):
                target, store, seconds = tablesize.open_filled(databases, backend, size, partners)
                opened[(size, partners)] = (target, store)
                log.info("filled %s with %d jobs of %d partners in %.1fs", backend, size, partners, seconds)
            for size, partners in claim_shapes:
                claim, both = _claim_rows(config, backend, version, size, partners)
                rows += [claim, both]
                store = opened[(size, partners)][1]
                cases.append(Case(both, tablesize.measure(store, config.claims_per_size, claim, both)))
            for size, partners in wait_shapes:  # the newest waiting job stays waiting: claims take the oldest
                target, store = opened[(size, partners)]
                keeps = "wait_snapshot_seconds" in Settings.model_fields  # this revision keeps lines
                kept = (
                    f"line kept (PQ_WAIT_SNAPSHOT_SECONDS={store.settings.wait_snapshot_seconds:g})"
                    if keeps
                    else "every wait simulated (this revision keeps no line)"
                )
                asked = [(store, kept, "size_wait", config.kept_waits_per_size)]
                if keeps:
                    fresh.append(open_store(target, wait_snapshot_seconds=0))
                    how = "a new line every time (PQ_WAIT_SNAPSHOT_SECONDS=0)"
                    asked.append((fresh[-1], how, "size_wait_fresh", config.waits_per_size))
                for answering, how, name, calls in asked:
                    wait = _wait_row(backend, version, size, partners, name, how)
                    wait.extra["waits_per_run"] = calls
                    rows.append(wait)
                    cases.append(Case(wait, tablesize.measure_wait(answering, calls, wait)))
            interleave(cases, config.runs)
            plans[backend] = tablesize.query_plan(opened[claim_shapes[-1]][1])  # the largest, with the most partners
        finally:
            for store in fresh:
                store.close()
            for target, store in opened.values():
                store.close()
                databases.drop(target)
    return rows, plans


def _claim_rows(config: Config, backend: str, version: str, size: int, partners: int) -> tuple[Row, Row]:
    section = "Claim cost against table size"
    key = f"{size}" if partners == 1 else f"{size}/{partners}partners"
    claim = _pqueue_row(f"{backend}/size_claim/{key}", section, "claim (get_item), ms", backend, version, size)
    both = _pqueue_row(f"{backend}/size_both/{key}", section, "claim + complete, ms", backend, version, size)
    spread = "" if partners == 1 else f", {partners} partners backlogged"
    for row in (claim, both):
        row.unit = "ms"
        row.system = f"pqueue ({backend}), {size:,} jobs in the table{spread}"
        row.extra["table_size"] = size
        row.extra["partners"] = partners
    both.extra["claims_per_run"] = config.claims_per_size
    return claim, both


def _wait_row(backend: str, version: str, size: int, partners: int, name: str, how: str) -> Row:
    """The wait of the newest of the table's size/2 waiting jobs, answered as `how` says."""
    key = f"{size}" if partners == 1 else f"{size}/{partners}partners"
    row = _pqueue_row(f"{backend}/{name}/{key}", WAIT_SECTION, WAIT, backend, version, size // 2)
    row.unit = "ms"
    backlogged = "1 partner" if partners == 1 else f"{partners} partners"
    row.system = f"pqueue ({backend}), {size // 2:,} jobs waiting, {backlogged} backlogged, {how}"
    row.extra.update(table_size=size, partners=partners)
    return row


def process_rows(config: Config, databases: Databases, version: str) -> list[Row]:
    """2 producers + 2 consumers on both backends; 1, 2, 4 consumers at 1 and 4 seats on PostgreSQL."""
    cases: list[Case] = []
    section = "Several processes"
    for backend in config.backends:
        row = _pqueue_row(
            f"{backend}/mixed", section, "2 producer + 2 consumer processes", backend, version, config.n_mixed
        )
        row.system = f"pqueue ({backend})"
        cases.append(Case(row, _process_case(databases, backend, row, 2, 2, 1, prefill=False)))
    if "postgresql" in config.backends:
        for seats in (1, 4):
            for consumers in (1, 2, 4):
                row = _pqueue_row(
                    f"postgresql/consumers_{consumers}_seats_{seats}",
                    section,
                    f"{consumers} consumer processes, PQ_MAX_RUNNING={seats}, backlog",
                    "postgresql",
                    version,
                    config.n_scaling,
                )
                row.system = "pqueue (postgresql)"
                cases.append(Case(row, _process_case(databases, "postgresql", row, 0, consumers, seats, prefill=True)))
    interleave(cases, config.runs)
    return [case.row for case in cases]


def _process_case(
    databases: Databases, backend: str, row: Row, producers: int, consumers: int, seats: int, prefill: bool
) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh(backend, "procs")
        try:
            outcome = library.processes(target, producers, consumers, row.n, seats, prefill)
        finally:
            databases.drop(target)
        for name in ("lost", "duplicated", "locked", "lease_lost", "peak_running"):
            row.extra.setdefault(name, []).append(getattr(outcome, name))
        return outcome.jobs_per_second

    return run
