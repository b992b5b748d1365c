"""The run ledger: an algorithm that writes down when it really runs, and the checks read from it.

PQ_ALGORITHM=tests.faults.ledger:run. The payload names the ledger file, a tag and how long to
work: {"ledger": "/tmp/x/ledger.jsonl", "tag": "job-7", "seconds": 20}; with "rerun_seconds", a
run after the job's first works that long instead (a long first run a fault interrupts, then a
quick retry); with "kill_consumer": true, a run SIGKILLs the consumer whose job it is right
after its start line (a poison job, as one that makes the OOM killer take its consumer); with
"leave": "child" or "thread", the run starts a writer it never stops, a process forked into its
group or a non-daemon thread, which appends "tick" lines tagged "<tag>:left" every half a
millisecond (for 10 s at most), and the run returns only once the writer has written a line after
its own end line (so it was running when the run returned); with "ballast_mb", the run fills that
much memory first, so its process's exit (the kernel's teardown of it) takes tens of
milliseconds. The run appends a
"start" line, a "tick" line every millisecond while it works and an "end" line, each with its
pid and the machine's monotonic clock (CLOCK_MONOTONIC, which every process of the machine
shares). A run that is killed writes no end: its last tick is when it last ran, so how long two
runs overlapped is known to the millisecond, whatever killed them and however.

Lines are appended with one write(2) each on an O_APPEND file, so runs in several processes
never interleave within a line.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICK_SECONDS = 0.001


def run(payload: dict[str, Any]) -> dict[str, Any]:
    """Work for payload["seconds"], writing the ledger as it goes."""
    fd = os.open(payload["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    tag = payload["tag"]
    seconds = float(payload.get("seconds", 0))
    if "rerun_seconds" in payload and runs_of(read_runs(Path(payload["ledger"])), tag):
        seconds = float(payload["rerun_seconds"])
    ballast = bytearray(b"x") * (int(payload.get("ballast_mb", 0)) << 20)  # every page written
    try:
        _write(fd, "start", tag)
        if payload.get("kill_consumer"):
            os.kill(_consumer_pid(), signal.SIGKILL)
        if "leave" in payload:
            _leave_a_writer(payload["ledger"], f"{tag}:left", payload["leave"])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(TICK_SECONDS)
            _write(fd, "tick", tag)
        _write(fd, "end", tag)
        if "leave" in payload:
            _wait_for_a_line_after(payload["ledger"], os.fstat(fd).st_size, f"{tag}:left")
    finally:
        os.close(fd)
        del ballast
    return {"tag": tag, "pid": os.getpid()}


LEFT_WRITER_SECONDS = 10.0
LEFT_WRITER_PAUSE = 0.0005


def _leave_a_writer(ledger: str, tag: str, how: str) -> None:
    """Start a writer that outlives the run: a child process in the job's group, or a non-daemon
    thread; it writes tick lines with no pause until it is killed (or LEFT_WRITER_SECONDS pass)."""

    def write_on() -> None:
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND)
        until = time.monotonic() + LEFT_WRITER_SECONDS
        while time.monotonic() < until:
            _write(fd, "tick", tag)
            time.sleep(LEFT_WRITER_PAUSE)

    if how == "thread":
        import threading  # here: the helper that imports this module forks every job process

        threading.Thread(target=write_on, daemon=False).start()
        return
    assert how == "child", how
    if os.fork() == 0:
        try:
            write_on()
        finally:
            os._exit(0)


def _wait_for_a_line_after(ledger: str, offset: int, tag: str) -> None:
    """Wait (5 s at most) until a line tagged `tag` was appended past `offset` of the ledger."""
    until = time.monotonic() + 5.0
    with open(ledger, "rb") as ledger_file:
        while time.monotonic() < until:
            ledger_file.seek(offset)
            if f'"tag": "{tag}"'.encode() in ledger_file.read():
                return
            time.sleep(LEFT_WRITER_PAUSE)


def _consumer_pid() -> int:
    """The consumer: the parent of this job process's parent, the helper."""
    stat = Path(f"/proc/{os.getppid()}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state; the name may hold spaces


def _write(fd: int, event: str, tag: str) -> None:
    line = json.dumps({"e": event, "tag": tag, "pid": os.getpid(), "t": time.monotonic()})
    os.write(fd, (line + "\n").encode())


@dataclass(frozen=True)
class Run:
    """One run of the algorithm in one process, from its ledger lines."""

    tag: str
    pid: int
    start: float
    last: float  # its end, or its last tick when it was killed
    ended: bool

    @property
    def seconds(self) -> float:
        return self.last - self.start


def read_runs(path: Path) -> list[Run]:
    """Every run the ledger saw, in order of start."""
    if not path.exists():
        return []
    by_run: dict[tuple[str, int], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a full disk: nothing to learn from it
            continue
        key = (entry["tag"], entry["pid"])
        found = by_run.setdefault(key, {"start": entry["t"], "last": entry["t"], "ended": False})
        found["last"] = max(found["last"], entry["t"])
        found["ended"] = found["ended"] or entry["e"] == "end"
    runs = [Run(tag, pid, v["start"], v["last"], v["ended"]) for (tag, pid), v in by_run.items()]
    return sorted(runs, key=lambda r: r.start)


def peak_concurrency(runs: Iterable[Run]) -> int:
    """The most runs that were ever running at the same moment."""
    moments = sorted([(r.start, 1) for r in runs] + [(r.last, -1) for r in runs], key=lambda m: (m[0], m[1]))
    peak = running = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    return peak


def overlaps(runs: list[Run]) -> list[tuple[Run, Run, float]]:
    """Every pair of runs that ran at the same time, with how long (seconds) they overlapped."""
    found = []
    for i, first in enumerate(runs):
        for second in runs[i + 1 :]:
            if second.start >= first.last:
                continue  # runs are sorted by start: later ones may still overlap an earlier long one
            found.append((first, second, min(first.last, second.last) - second.start))
    return found


def runs_of(runs: Iterable[Run], tag: str) -> list[Run]:
    """The runs of one job."""
    return [r for r in runs if r.tag == tag]


def report(path: Path) -> str:
    """The ledger in words: each run, and how many ran at once at most."""
    runs = read_runs(path)
    origin = min((r.start for r in runs), default=0.0)
    lines = [
        f"{r.tag}: pid {r.pid} ran {r.start - origin:7.3f}s → {r.last - origin:7.3f}s "
        f"({'finished' if r.ended else 'killed'})"
        for r in runs
    ]
    lines += [
        f"overlap {a.tag}/{a.pid} with {b.tag}/{b.pid}: {seconds * 1000:.1f} ms" for a, b, seconds in overlaps(runs)
    ]
    lines.append(f"most runs at once: {peak_concurrency(runs)}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(report(Path(sys.argv[1])))
