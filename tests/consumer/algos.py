"""Test algorithms for the consumer's process tests (PQ_ALGORITHM=tests.consumer.algos:act).

The payload says what to do: {"do": "sleep", "seconds": 2, "log": "/tmp/x.jsonl"}. Actions that
take a "log" append one JSON line per event ({"event", "pid", "t", "tag"}) so a test can check
pids, and start/end times across processes, after the fact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import tests.faults.ledger  # imported by the helper: a held run starts without an import first


def act(payload: dict[str, Any]) -> Any:
    """Do what the payload's "do" says."""
    action = ACTIONS[payload["do"]]
    return action(payload)


def record(payload: dict[str, Any], event: str, **extra: Any) -> None:
    """Append one event line to the payload's log file (if it names one)."""
    if "log" not in payload:
        return
    line = json.dumps({"event": event, "pid": os.getpid(), "t": time.time(), "tag": payload.get("tag"), **extra})
    fd = os.open(payload["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The events written by record(), in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ok(payload: dict[str, Any]) -> dict[str, Any]:
    record(payload, "start")
    return {"echo": payload.get("value"), "pid": os.getpid()}


def sleep(payload: dict[str, Any]) -> dict[str, Any]:
    """Sleep, writing a tick every 50 ms: the last tick shows when the process stopped running.

    With "grandchild": true, a `sleep 600` child process is started first (its pid is recorded).
    """
    extra = {}
    if payload.get("grandchild"):
        extra["grandchild"] = subprocess.Popen(["sleep", "600"]).pid
    record(payload, "start", **extra)
    deadline = time.monotonic() + float(payload.get("seconds", 1))
    while time.monotonic() < deadline:
        record(payload, "tick")
        time.sleep(0.05)
    record(payload, "end")
    return {"slept": payload.get("seconds", 1), "pid": os.getpid()}


def sleep_once(payload: dict[str, Any]) -> dict[str, Any]:
    """Sleep long on the first run (marker file missing), return at once on the next."""
    marker = Path(payload["marker"])
    if marker.exists():
        record(payload, "start")
        return {"second_run": True, "pid": os.getpid()}
    marker.write_text(str(os.getpid()))
    return sleep(payload)


def fail(payload: dict[str, Any]) -> None:
    record(payload, "start")
    raise ValueError(payload.get("message", "boom"))


def refuse(payload: dict[str, Any]) -> None:
    """Refuse the input for good: pqueue.PermanentError, or any error marked with pqueue.permanent."""
    from pqueue import PermanentError, permanent

    record(payload, "start")
    if payload.get("marked"):
        raise permanent(KeyError(payload.get("message", "no such field")))
    raise PermanentError(payload.get("message", "never"))


def exit_now(payload: dict[str, Any]) -> None:
    record(payload, "start")
    os._exit(int(payload.get("code", 3)))


def segfault(payload: dict[str, Any]) -> None:
    record(payload, "start")
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(10)


def hang_with_grandchild(payload: dict[str, Any]) -> None:
    """Start a grandchild (sleep 600), record both pids, and hang (optionally deaf to SIGTERM)."""
    if payload.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen(["sleep", "600"])
    record(payload, "start", grandchild=grandchild.pid)
    while True:
        time.sleep(0.05)
        record(payload, "tick")


def group(payload: dict[str, Any]) -> dict[str, Any]:
    """The pids of every process in the job process's group, itself included."""
    record(payload, "start")
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) ": state ppid pgrp ...
            if int(fields[2]) == os.getpgrp():
                members.append(int(entry.name))
    return {"pid": os.getpid(), "members": sorted(members)}


def orphan(payload: dict[str, Any]) -> dict[str, Any]:
    """Start a child in the job's group (sleep 600), write its pid to payload["pid_file"], sleep
    payload["seconds"] and end without waiting for it."""
    child = subprocess.Popen(["sleep", "600"])
    Path(payload["pid_file"]).write_text(str(child.pid))
    record(payload, "start", child=child.pid)
    time.sleep(float(payload["seconds"]))
    return {"child": child.pid}


def check_gone(payload: dict[str, Any]) -> dict[str, Any]:
    """Record whether the process named in payload["pid_file"] still runs: not gone, not a
    zombie, and no SIGKILL pending (a killed process runs none of its own code again)."""
    pid = int(Path(payload["pid_file"]).read_text())
    alive = True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        alive = False
    else:
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pending = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
        if fields["State"].strip()[0] in "ZX" or pending & (1 << (signal.SIGKILL - 1)):
            alive = False
    record(payload, "start", child_alive=alive)
    return {"child_alive": alive}


def ledger(payload: dict[str, Any]) -> dict[str, Any]:
    """The run ledger's algorithm (tests/faults/ledger.py): a run of payload["seconds"] that may
    leave a writer behind ("leave": "child" or "thread")."""
    return tests.faults.ledger.run(payload)


def forge_done(payload: dict[str, Any]) -> dict[str, Any]:
    """Run as the ledger's algorithm does and, payload["forge_after"] seconds in, say DONE on this
    job process's start gate while the run goes on (naming payload["pid"] as the job before,
    which the helper must not believe)."""
    import socket
    import threading

    from consumer.job_process import DONE, GATE

    def forge() -> None:
        for name in os.listdir("/proc/self/fd"):
            try:
                found = socket.socket(fileno=os.dup(int(name)))
            except OSError:
                continue
            with found:
                if found.family == socket.AF_UNIX and found.type == socket.SOCK_SEQPACKET:
                    found.send(GATE.pack(DONE, float("inf"), int(payload.get("pid", 0))))

    threading.Timer(float(payload["forge_after"]), forge).start()
    return ledger(payload)


def not_json(payload: dict[str, Any]) -> object:
    record(payload, "start")
    return {"when": object()}


ACTIONS = {
    "ok": ok,
    "sleep": sleep,
    "sleep_once": sleep_once,
    "fail": fail,
    "refuse": refuse,
    "exit": exit_now,
    "segfault": segfault,
    "hang_with_grandchild": hang_with_grandchild,
    "not_json": not_json,
    "group": group,
    "orphan": orphan,
    "check_gone": check_gone,
    "ledger": ledger,
    "forge_done": forge_done,
}
