"""bench/RESULTS.md from results.json: how to run, the run, the targets, the tables, the notes."""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import log, percentile
from bench.procs import REPO
from bench.targets import evaluate

HOW_TO_RUN = """\
# pqueue benchmarks

## How to run

```
bench/run                 # the full run: 3 interleaved runs of everything (under 30 minutes on 2 cores)
bench/run --quick         # small sizes and one run: a sanity check (under 3 minutes)
bench/run --n 5000        # jobs per throughput run (default 1000; --quick 200)
bench/run --runs 5        # runs of each measurement (default 3; --quick 1)
bench/run --no-peers      # pqueue and the raw drivers only: installs nothing
bench/run --sqlite-only   # skip PostgreSQL
bench/run --only programs # only some parts: library, sizes, processes, programs, soak (the programs' long rows)
bench/run --out /tmp/b    # write RESULTS.md, results.json and plots/ elsewhere
bench/run --rewrite       # measure nothing: redo RESULTS.md and the plots from results.json
bench/compare a9bacef     # a commit against the working tree, 5 runs each in turns: which rows moved
BENCH_CLAIM_AHEAD=1 bench/run --only programs  # the programs' rows with the consumer claiming ahead
```

`bench/run` is `.venv/bin/python -m bench`. PostgreSQL is the server at
`postgresql://postgres@127.0.0.1:5432/postgres` (`--postgres-url` or `BENCH_POSTGRES_URL` to change it); the
harness creates one database per measurement there and drops it afterwards. SQLite files live in a temporary
directory. Programs listen on 127.0.0.1 only.

The peers (persist-queue, huey, litequeue, procrastinate, PGQueuer) and matplotlib are installed by the harness
into `bench/.venv-peers` from `bench/requirements-peers.txt`, never into the project's environment; the plots
are drawn in that environment too (`--no-peers` therefore also skips the plots). Every figure is the median of
the runs with their min–max; runs of one test are interleaved across systems (run 1 of each, then run 2 of
each, …) so a change in the machine's load hits every system alike. Speed is measured here, never asserted in
tests; `tests/bench` only checks that a small run produces every row.

Two full runs taken minutes apart can differ by more than either run's spread when the machine's neighbours
change, so "did this change make anything slower?" is answered by `bench/compare BASE [--head REV]`: both
commits checked out side by side and measured by today's harness (library and programs by default,
`--only` as above), in turns (base, head, head, base, …), each row read as moved only when the two sides'
ranges of runs do not overlap. [COMPARE.md](COMPARE.md) keeps the last such comparison and what it found.
"""


def plot(peers_python: Path, out: Path) -> list[Path]:
    """Draw the PNGs in the peers' environment (it has matplotlib); returns the files drawn."""
    done = subprocess.run(
        [str(peers_python), "-m", "bench.plot", str(out)], cwd=REPO, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        log.error("plotting failed: %s", done.stderr.strip()[-500:])
        return []
    return sorted((out / "plots").glob("*.png"))


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("jobs/s", "requests/s"):
        return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    if unit == "MiB":
        return f"{value:,.0f}"
    return f"{value:,.2f}" if value < 10 else f"{value:,.1f}"


def spread(runs: list[float], unit: str) -> str:
    if not runs:
        return "—"
    return f"{number(min(runs), unit)}–{number(max(runs), unit)}"


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def _value(row: dict[str, Any]) -> str:
    if row["error"]:
        return f"not measured: {row['error']}"
    return number(median(row["runs"]), row["unit"])


SAME = ["system", "version", "durability", "delivery"]


def _same(row: dict[str, Any]) -> list[str]:
    return [row["system"], row["version"] or "—", row["durability"] or "—", row["delivery"] or "—"]


def throughput_table(rows: list[dict[str, Any]]) -> str:
    header = ["test", *SAME, "n", "median", "min–max", "unit", "note"]
    lines = [
        [r["test"], *_same(r), f"{r['n']:,}", _value(r), spread(r["runs"], r["unit"]), r["unit"], r["note"]]
        for r in rows
    ]
    return table(header, lines)


def latency_table(rows: list[dict[str, Any]]) -> str:
    header = ["test", *SAME, "samples", "p50 ms", "p99 ms", "max ms", "p50 of each run, ms"]
    lines = []
    for r in rows:
        samples = [s * 1000 for s in r["samples"]]
        if not samples:
            lines.append([r["test"], *_same(r), "0", _value(r), "—", "—", "—"])
            continue
        lines.append(
            [
                r["test"],
                *_same(r),
                str(len(samples)),
                f"{percentile(samples, 0.5):.2f}",
                f"{percentile(samples, 0.99):.2f}",
                f"{max(samples):.2f}",
                spread(r["runs"], "ms"),
            ]
        )
    return table(header, lines)


def _extra(row: dict[str, Any], name: str, how: Callable[[list[float]], float] = max) -> str:
    values = row["extra"].get(name)
    if not values:
        return "—"
    value = how(values)
    return f"{value:,.1f}" if isinstance(value, float) and not value.is_integer() else f"{value:,.0f}"


def intake_table(rows: list[dict[str, Any]]) -> str:
    header = ["clients", *SAME, "requests per run", "median req/s", "min–max", "p50 ms (median of runs)", "p99 ms"]
    lines = [
        [
            r["test"],
            *_same(r),
            f"{r['n']:,}",
            _value(r),
            spread(r["runs"], r["unit"]),
            _extra(r, "p50_ms", statistics.median),
            _extra(r, "p99_ms", statistics.median),
        ]
        for r in rows
    ]
    return table(header, lines)


def process_table(rows: list[dict[str, Any]]) -> str:
    header = ["test", *SAME, "jobs", "median jobs/s", "min–max", "lost", "duplicated", "'locked' seen", "peak running"]
    lines = [
        [
            r["test"],
            *_same(r),
            f"{r['n']:,}",
            _value(r),
            spread(r["runs"], r["unit"]),
            _extra(r, "lost", sum),
            _extra(r, "duplicated", sum),
            _extra(r, "locked", sum),
            _extra(r, "peak_running", max),
        ]
        for r in rows
    ]
    return table(header, lines)


def memory_table(rows: list[dict[str, Any]]) -> str:
    header = ["what", *SAME, "median MiB", "min–max", "jobs handled"]
    lines = []
    for r in rows:
        jobs = r["extra"].get("jobs_processed") or r["extra"].get("jobs_posted") or []
        lines.append([r["test"], *_same(r), _value(r), spread(r["runs"], "MiB"), f"{max(jobs):,}" if jobs else "0"])
    return table(header, lines)


def license_table(rows: list[dict[str, Any]]) -> str:
    header = ["figure", *SAME, "jobs per run", "median", "min–max", "unit", "gap p50 / p99 ms (all runs)"]
    lines = []
    for r in rows:
        if r["samples"]:
            ms = [s * 1000 for s in r["samples"]]
            gaps = f"{percentile(ms, 0.5):.2f} / {percentile(ms, 0.99):.2f}"
        elif r["extra"].get("gap_p50_ms"):
            gaps = f"{statistics.median(r['extra']['gap_p50_ms']):,.0f} (p50)"
        else:
            gaps = "—"
        lines.append([r["test"], *_same(r), f"{r['n']:,}", _value(r), spread(r["runs"], r["unit"]), r["unit"], gaps])
    return table(header, lines)


def machine_section(results: dict[str, Any], plots: list[Path]) -> str:
    about = results["machine"]
    config = results["config"]
    versions = ", ".join(f"{k} {v}" for k, v in about["versions"].items())
    postgres = ", ".join(f"{k}={v}" for k, v in about.get("postgres", {}).items()) or "not used"
    load_start = ", ".join(f"{x:.2f}" for x in about["load_start"])
    load_end = ", ".join(f"{x:.2f}" for x in about["load_end"])
    lines = [
        "## This run",
        "",
        f"- Command: `{config['command']}` ({'quick' if config['quick'] else 'full'} run, "
        f"--n {config['n']}, {config['runs']} runs of each measurement, took {about['seconds'] / 60:.1f} minutes)",
        f"- Date: {about['date']}; commit {about['commit']}",
        f"- Machine: {about['cores']} cores ({about['cpu']}), {about['memory_gib']} GiB memory, "
        f"Linux {about['kernel']}",
        f"- Disk: fsync of a 4 KiB append costs {about['fsync']['median_ms']:.2f} ms median, "
        f"{about['fsync']['p99_ms']:.2f} ms p99 ({about['fsync']['count']} samples, measured by the harness "
        "at the start)",
        f"- Load average (1, 5, 15 min): {load_start} at the start; {load_end} at the end",
        f"- Versions: {versions}",
        f"- PostgreSQL: {postgres}",
    ]
    if about["load_start"][0] > 2 or about["load_end"][0] > 2:
        lines += [
            "",
            f"> **The machine was busy:** the 1-minute load average was {about['load_start'][0]:.1f} at the start "
            f"and {about['load_end'][0]:.1f} at the end on {about['cores']} cores, so other work shared the CPUs "
            "with this run. Every figure below is lower (latencies higher) than on an idle machine; the "
            "interleaved runs keep the comparisons between systems fair, the absolute numbers are not.",
        ]
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{p.name}](plots/{p.name})" for p in plots)]
    return "\n".join(lines)


SECTIONS: list[tuple[str, Callable[[list[dict[str, Any]]], str], str]] = [
    ("SQLite: library beside the raw driver and the peers", throughput_table, ""),
    ("PostgreSQL: library beside the raw driver and the peers", throughput_table, ""),
    ("Drain", throughput_table, "A backlog of no-op jobs drained by one worker; the pqueue library loops are the "
     "`claim + complete` rows above (two transactions per job, and one with finish_and_claim), repeated here."),
    ("Claim cost against table size", throughput_table, "Half the stored jobs are processed (3 event rows each), "
     "half wait (1 event row); claims take from the waiting half. Median ms per call within a run."),
    ("Wait of a waiting job (GET /jobs/{id})", latency_table, "The library's wait of the newest waiting job (the "
     "deepest in line), as GET /jobs/{id} answers it, on tables filled as the claim's (half the jobs processed, "
     "half waiting, dealt in turn to the partners; the same run-time history on both backends), calls one after "
     "another; p50, p99 and max over every call of every run. From the kept line (the default: one simulation "
     "per queue shared by every request for PQ_WAIT_SNAPSHOT_SECONDS) a run's first call pays a new line, so "
     "its max is one simulation; with PQ_WAIT_SNAPSHOT_SECONDS=0 every call simulates the line: the worst case."),
    ("Several processes", process_table, "Library-level processes (spawned), each with its own connection. "
     "'lost' = acknowledged jobs not processed at the end, 'duplicated' = jobs completed twice, 'locked seen' = "
     "'database is locked' errors that reached the caller, 'peak running' = most jobs under_process at once "
     "(from the jobs' started_at and finished_at on the database's clock)."),
    ("Dispatch latency", latency_table, "A real `pq-consumer` waits idle; the harness puts one job and notes the "
     "time put_item returned (committed); the algorithm notes the time its first line ran. Pooled over the runs; "
     "each run is a fresh consumer on a fresh database."),
    ("Licence utilisation (backlog of 50 ms jobs, PQ_MAX_RUNNING=1)", license_table, "A real `pq-consumer`; the "
     "gap is from one run's last line to the next run's first line (recording the result, claiming the next job, "
     "handing it to the warm job process). The 2 s tick row places the same measured run times on the original "
     "design's fixed scheduler tick: one job per tick."),
    ("HTTP intake (POST /jobs)", intake_table, "`pq-producer` as it ships (uvicorn, one worker process) with the "
     "queue paused; `python -m bench.loadgen` in a second process keeps the clients' keep-alive connections busy."),
    ("End to end", throughput_table, "Jobs POSTed over HTTP (8 clients) with a callback_url on a receiver in the "
     "harness; from the first request to the last callback received, with `pq-consumer` running the no-op "
     "algorithm in a child process per job."),
    ("Memory (resident size, MiB)", memory_table, "Resident set size from /proc; the consumer's tree includes "
     "its algorithm helper and the warm job process. The \"after the jobs\" rows come from the last SQLite "
     "round: the producer after taking the jobs posted (queue paused), the consumer after processing them."),
]  # fmt: skip


def markdown(results: dict[str, Any], plots: list[Path]) -> str:
    rows: list[dict[str, Any]] = results["rows"]
    parts = [HOW_TO_RUN, machine_section(results, plots), evaluate(results)]
    for title, render, intro in SECTIONS:
        chosen = [r for r in rows if r["section"] == title]
        if title == "Drain":
            chosen = _drain_rows(rows) + chosen
        if not chosen:
            continue
        parts.append(f"## {title}\n\n" + (intro + "\n\n" if intro else "") + render(chosen))
        if title.startswith("Claim cost"):
            parts.append(_plans(results) + _image(plots, "claim_cost.png"))
        if title == "Dispatch latency":
            parts.append(_image(plots, "latency.png"))
    parts.append(child_process_cost(rows))
    parts.append(behind(rows))
    return "\n\n".join(p.strip() for p in parts if p.strip()) + "\n"


def child_process_cost(rows: list[dict[str, Any]]) -> str:
    """What running each job in a child process costs: pq-consumer's time per job minus the library loop's."""
    lines = []
    for backend in ("sqlite", "postgresql"):
        consumer = next((r for r in rows if r["key"] == f"{backend}/consumer_drain" and r["runs"]), None)
        # The loop the consumer runs (finish_and_claim); an older results.json has only the two-commit one.
        loop = next(
            (
                r
                for key in (f"{backend}/finish_and_claim/pqueue", f"{backend}/claim_complete/pqueue")
                for r in rows
                if r["key"] == key and r["runs"]
            ),
            None,
        )
        if consumer is None or loop is None:
            continue
        per_job = 1000 / statistics.median(consumer["runs"])
        per_claim = 1000 / statistics.median(loop["runs"])
        name = "finish_and_claim" if "/finish_and_claim/" in loop["key"] else "get_item + update_status"
        lines.append([backend, f"{per_job:.2f}", name, f"{per_claim:.2f}", f"{per_job - per_claim:.2f}"])
    if not lines:
        return ""
    header = ["backend", "pq-consumer ms per job", "library loop", "library loop ms per job", "difference ms"]
    return (
        "## Per-job overhead of the child process\n\nThe consumer's drain (no-op algorithm) against the library's "
        "claim + complete loop on the same backend, the one that records an outcome and claims the next job in "
        "one transaction (finish_and_claim) as pq-consumer does with a backlog: the difference is what handing "
        "each job to a forked job process (warm: forked while the previous job ran) and reading its answer "
        "costs, plus the lease thread and the consumer's bookkeeping.\n\n" + table(header, lines)
    )


DRAIN_LOOPS = {
    "postgresql/claim_complete/pqueue": "pqueue (postgresql), library loop: get_item + update_status, 1 seat",
    "postgresql/finish_and_claim/pqueue": "pqueue (postgresql), library loop: get_item, then finish_and_claim, 1 seat",
}


def _drain_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The library loops' rows, renamed for the drain table (a results.json may lack either)."""
    by_key = {r["key"]: r for r in rows}
    return [
        {**by_key[key], "test": "drain a backlog of no-op jobs, one worker", "system": system}
        for key, system in DRAIN_LOOPS.items()
        if key in by_key
    ]


def _plans(results: dict[str, Any]) -> str:
    parts = []
    sizes = results["config"]["table_sizes"]
    for backend, plan in results.get("plans", {}).items():
        title = f"Query plan of the claim's candidate SELECT on {backend} with {sizes[-1]:,} jobs stored:"
        parts.append(f"{title}\n\n```\n{plan}\n```")
    return "\n\n".join(parts)


def _image(plots: list[Path], name: str) -> str:
    return f"\n\n![{name}](plots/{name})" if any(p.name == name for p in plots) else ""


def _comparisons(rows: list[dict[str, Any]]) -> list[tuple[str, list[str], str]]:
    """(our row key, the peers' row keys, explanation key) for every test that has peers."""
    pairs = []
    for backend in ("sqlite", "postgresql"):
        for test in ("put_one", "put_batch", "claim_complete", "finish_and_claim"):
            peers = [
                r["key"]
                for r in rows
                if r["key"].startswith(f"{backend}/{test}/") and r["key"].rsplit("/", 1)[1] not in ("pqueue", "raw")
            ]
            pairs.append((f"{backend}/{test}/pqueue", peers, test))
    drains = [r["key"] for r in rows if r["key"].startswith("postgresql/drain")]
    pairs.append(("postgresql/consumer_drain", drains, "drain"))
    pairs.append(("postgresql/claim_complete/pqueue", drains, "drain_library"))
    pairs.append(("postgresql/finish_and_claim/pqueue", drains, "drain_library_one_transaction"))
    return pairs


BEHIND_TITLES = {
    "drain_library": "drain a backlog (library loop, get_item + update_status)",
    "drain_library_one_transaction": "drain a backlog (library loop, finish_and_claim)",
}


def behind(rows: list[dict[str, Any]]) -> str:
    """Every test where a peer's median beats pqueue's, with the ratio and the reason."""
    from bench.targets import EXPLANATIONS

    by_key = {r["key"]: r for r in rows if r["runs"]}
    lines = []
    for ours_key, peer_keys, reason in _comparisons(rows):
        ours = by_key.get(ours_key)
        if ours is None:
            continue
        ours_median = statistics.median(ours["runs"])
        faster = []
        for peer_key in peer_keys:
            other = by_key.get(peer_key)
            if other is not None and statistics.median(other["runs"]) > ours_median:
                faster.append(f"{other['system']} {statistics.median(other['runs']) / ours_median:.1f}×")
        if faster:
            title = BEHIND_TITLES.get(reason, ours["test"])
            lines.append(
                f"- **{title}** ({ours['system']}, {ours_key.split('/')[0]}): faster are "
                + "; ".join(faster)
                + f". {EXPLANATIONS.get(reason, '')}"
            )
    if not lines:
        return "## Where pqueue is behind a peer\n\nNowhere in this run."
    return "## Where pqueue is behind a peer, and why\n\n" + "\n".join(lines)
