"""`bench/compare BASE`: the same rows measured on two commits, turn by turn, and which moved beyond their spread.

Two full `bench/run`s taken minutes apart differ by more than either run's own spread when the
machine's neighbours change, so a before-and-after question gets its own run: each side is a
checkout of its commit (the working tree for the newer side unless --head names one), both run
today's harness (copied beside them, so an older commit is measured the same way), and the sides
take turns in the order base, head, head, base, … so drifting load hits both alike. A row has
moved only when the two sides' ranges of runs do not overlap: with 5 runs a side, a row that did
not change at all still reads as moved 1 time in 126 by chance, so among some 40 rows one false
"better" or "worse" in three comparisons is to be expected; run again before believing one alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import parse_parts
from bench.procs import REPO
from bench.report import number, spread

log = logging.getLogger("bench")
LOWER_IS_BETTER = ("ms", "MiB")
DEFAULT_PARTS = ("library", "programs")


@dataclass
class Side:
    """One commit's code: where it is checked out and what each row measured there, run by run."""

    name: str  # what the report calls it: the commit, or "working tree"
    code: Path
    runs: dict[str, list[float]] = field(default_factory=dict)
    rows: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> section, test, system, unit


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/compare", description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the older commit (any git revision)")
    parser.add_argument("--head", help="the newer commit (default: the working tree as it is)")
    parser.add_argument("--turns", type=int, default=5, help="runs of each side (default 5)")
    parser.add_argument("--n", type=int, default=1000, help="jobs per throughput run (default 1000)")
    parser.add_argument(
        "--only",
        type=parse_parts,
        default=DEFAULT_PARTS,
        help=f"bench parts to run (default {','.join(DEFAULT_PARTS)})",
    )
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    args = parser.parse_args(argv)
    if args.turns < 2:
        parser.error("--turns must be at least 2 (one run has no spread)")
    return args


def resolve(revision: str) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "--verify", f"{revision}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench/compare: {revision!r} is not a commit of this repository")
    return done.stdout.strip()


def checkout(side: Side) -> None:
    """The side's commit in a detached worktree at side.code (removed again by main)."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(side.code), side.name], cwd=REPO, check=True, capture_output=True
    )


def copy_harness(where: Path) -> Path:
    """Today's bench package beside the sides' code, first on their path, so both are measured alike."""
    shutil.copytree(REPO / "bench", where / "bench", ignore=shutil.ignore_patterns(".venv-peers", "plots", "*.json"))
    return where


def run_side(side: Side, harness: Path, args: argparse.Namespace, out: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "bench",
        "--runs",
        "1",
        "--no-peers",
        "--n",
        str(args.n),
        "--only",
        ",".join(args.only),
    ]
    if args.sqlite_only:
        command.append("--sqlite-only")
    env = {**os.environ, "PYTHONPATH": f"{harness}{os.pathsep}{side.code}"}
    done = subprocess.run([*command, "--out", str(out)], cwd=harness, env=env, capture_output=True, text=True)
    if not (out / "results.json").exists():
        raise SystemExit(f"bench/compare: the run on {side.name} failed:\n{done.stderr[-2000:]}")
    for row in json.loads((out / "results.json").read_text())["rows"]:
        if row["runs"] and not row["error"]:
            side.runs.setdefault(row["key"], []).extend(row["runs"])
            side.rows[row["key"]] = {key: row[key] for key in ("section", "test", "system", "unit")}


def verdict(unit: str, base: list[float], head: list[float]) -> str:
    """Moved only when the ranges of runs do not overlap; better or worse by the unit's direction."""
    if min(head) > max(base):
        return "worse" if unit in LOWER_IS_BETTER else "better"
    if max(head) < min(base):
        return "better" if unit in LOWER_IS_BETTER else "worse"
    return "within spread"


def report(base: Side, head: Side, args: argparse.Namespace, loads: tuple[float, float]) -> str:
    lines = [
        f"# {base.name} against {head.name}",
        "",
        f"`bench/compare {' '.join(sys.argv[1:])}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores; load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end. "
        f"{args.turns} runs of each side, taken in turns; median (min–max of the runs); "
        "a row moved only when the ranges do not overlap.",
        "",
    ]
    section = None
    for key, about in head.rows.items():
        if about["section"] != section:
            section = about["section"]
            lines += [
                "",
                f"## {section}",
                "",
                f"| test | system | unit | {base.name} | {head.name} | change | verdict |",
                "|---|---|---|---|---|---|---|",
            ]
        new = head.runs[key]
        if key not in base.runs:  # a row the older commit cannot measure (a feature it lacks)
            cells = [about["test"], about["system"], about["unit"], "—", _figure(new, about["unit"]), "—", "new row"]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        old = base.runs[key]
        change = (statistics.median(new) / statistics.median(old) - 1) * 100 if statistics.median(old) else 0.0
        cells = [
            about["test"],
            about["system"],
            about["unit"],
            _figure(old, about["unit"]),
            _figure(new, about["unit"]),
            f"{change:+.1f}%",
        ]
        lines.append("| " + " | ".join([*cells, verdict(about["unit"], old, new)]) + " |")
    return "\n".join(lines) + "\n"


def _figure(runs: list[float], unit: str) -> str:
    return f"{number(statistics.median(runs), unit)} ({spread(runs, unit)})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the checkouts are removed on the way out
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pqcompare-") as tmp:
        work = Path(tmp)
        base_commit, head_commit = resolve(args.base), resolve(args.head) if args.head else None
        base, head = Side(base_commit, work / "base"), Side("working tree", REPO)
        started_load = os.getloadavg()[0]
        try:
            checkout(base)
            if head_commit is not None:
                head = Side(head_commit, work / "head")
                checkout(head)
            harness = copy_harness(work / "harness")
            for turn in range(args.turns):
                order = (base, head) if turn % 2 == 0 else (head, base)
                for side in order:
                    log.info("turn %d of %d: %s", turn + 1, args.turns, side.name)
                    run_side(side, harness, args, work / f"run-{turn}-{side.name.replace(' ', '-')}")
        finally:
            for side in (base, head):
                if side.code != REPO and side.code.exists():
                    subprocess.run(["git", "worktree", "remove", "--force", str(side.code)], cwd=REPO, check=False)
        text = report(base, head, args, (started_load, os.getloadavg()[0]))
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
