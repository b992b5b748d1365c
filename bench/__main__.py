"""`bench/run` / `python -m bench`: measure pqueue beside the raw drivers and its peers; write RESULTS.md."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import time
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from bench import machine, report, sections, system_runs
from bench.config import FULL_N, PARTS, QUICK_N, Config, parse_parts
from bench.databases import Databases
from bench.measure import Row, log
from bench.peer_runs import peers_python
from bench.procs import REPO

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a sanity check in under 3 minutes")
    parser.add_argument("--n", type=int, help=f"jobs per throughput run (default {FULL_N}, quick {QUICK_N})")
    parser.add_argument("--runs", type=int, help="runs of every measurement, interleaved (default 3; quick 1)")
    parser.add_argument("--no-peers", action="store_true", help="skip the peer queues (no extra installs)")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument(
        "--only",
        type=parse_parts,
        default=PARTS,
        metavar="PART,...",
        help=f"measure only these parts, of {','.join(PARTS)} (default all; soak: the programs' long rows)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER),
        help="server (and maintenance database) the harness creates its databases on",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench", help="where RESULTS.md, results.json and plots go")
    parser.add_argument(
        "--rewrite", action="store_true", help="measure nothing: write RESULTS.md and plots again from OUT/results.json"
    )
    args = parser.parse_args(argv)
    if args.n is not None and args.n < 10:
        parser.error("--n must be at least 10")
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: started programs are stopped and databases dropped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("alembic", "pqueue", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.rewrite:
        return rewrite(args.out, with_plots=not args.no_peers)
    shown = " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    with tempfile.TemporaryDirectory(prefix="pqbench-") as tmp:
        config = Config(
            quick=args.quick,
            n=args.n or (QUICK_N if args.quick else FULL_N),
            runs=args.runs or (1 if args.quick else 3),
            backends=("sqlite",) if args.sqlite_only else ("sqlite", "postgresql"),
            peers=not args.no_peers,
            postgres_url=args.postgres_url,
            workdir=Path(tmp),
            results_md=args.out / "RESULTS.md",
            command=f"bench/run {shown}".strip(),
            parts=args.only,
        )
        return run(config, args.out)


def run(config: Config, out: Path) -> int:
    started = time.monotonic()
    server = config.postgres_url if "postgresql" in config.backends else None
    about = machine.describe(config.workdir, 50 if config.quick else 300, server)
    log.info("load average at start: %s", about["load_start"])
    peers = peers_python() if config.peers else None
    version = package_version("pqueue")
    databases = Databases(config.postgres_url, config.workdir)
    rows: list[Row] = []
    plans: dict[str, str] = {}
    try:
        parts = config.parts
        if "library" in parts:
            rows += sections.library_tables(config, databases, version, peers)
        if "sizes" in parts:
            size_rows, plans = sections.table_size_rows(config, databases, version)
            rows += size_rows
        if "processes" in parts:
            rows += sections.process_rows(config, databases, version)
        if "programs" in parts or "soak" in parts:
            rows += system_runs.run_rounds(config, databases, version)
    finally:
        databases.close()
    about["load_end"] = os.getloadavg()
    about["seconds"] = time.monotonic() - started
    results: dict[str, Any] = {
        "config": {
            "command": config.command,
            "quick": config.quick,
            "n": config.n,
            "runs": config.runs,
            "backends": list(config.backends),
            "peers": config.peers,
            "table_sizes": list(config.table_sizes),
            "wait_sizes": list(config.wait_sizes),
            "parts": list(config.parts),
        },
        "machine": about,
        "rows": [row.as_dict() for row in rows],
        "plans": plans,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plots = report.plot(peers, out) if peers is not None else []
    config.results_md.write_text(report.markdown(results, plots))
    failed = [row for row in rows if row.error]
    for row in failed:
        log.error("not measured: %s / %s: %s", row.test, row.system, row.error)
    log.info("wrote %s in %.0fs", config.results_md, about["seconds"])
    return 1 if failed else 0


def rewrite(out: Path, with_plots: bool) -> int:
    """RESULTS.md (and the plots) again from a run's results.json, after a change to the report's words."""
    source = out / "results.json"
    if not source.exists():
        log.error("%s does not exist: run the benchmark first", source)
        return 2
    results = json.loads(source.read_text())
    plots = report.plot(peers_python(), out) if with_plots else sorted((out / "plots").glob("*.png"))
    (out / "RESULTS.md").write_text(report.markdown(results, plots))
    log.info("wrote %s from %s", out / "RESULTS.md", source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
