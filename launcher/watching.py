"""Reading what happens to the programs: the cause of a program's failed start, taken from its
own log onto the terminal, and whether the intake and the dashboard answer yet."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from pqueue import Settings

# supervisord's word that a program ended when nobody asked it to, or gave up restarting it.
TROUBLE = re.compile(r"\b(?:exited: (?P<exited>\S+) \(.*not expected\)|gave up: (?P<gave_up>\S+) entered FATAL)")
# How supervisord says a program was ended by a signal rather than by exiting.
KILLED = re.compile(r"\(terminated by (?P<signal>SIG[A-Z0-9]+)")
FATAL_WORDS = re.compile(r" (?:ERROR|CRITICAL) |^pq-[a-z-]+: |Error: |error: ")
TAIL_BYTES = 16384


class Troubles:
    """Each program's fatal line, said once (a crash loop repeats it ten times in its log).

    Only what a log gained since this start counts: the logs outlive every start, and a line an
    earlier start wrote is no cause of this one's trouble."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.said: dict[str, str] = {}
        self.since = {log.name: log.stat().st_size for log in logs.glob("*.log")} if logs.is_dir() else {}

    def on_line(self, line: str) -> list[str]:
        """What to add on the terminal after this supervisord line."""
        found = TROUBLE.search(line)
        if not found:
            return []
        program = found.group("exited") or found.group("gave_up")
        if found.group("gave_up"):
            return [f"  {program} gave up after repeated failed starts: see var/log/{program}.log"]
        killed = KILLED.search(line)
        if killed:
            # A signal from outside (kill -9, the OOM killer): the program's log cannot say why.
            return [f"  {program} was killed by {killed.group('signal')}; Supervisor starts it again"]
        cause = fatal_line(self.logs / f"{program}.log", self.since.get(f"{program}.log", 0))
        if cause is None or self.said.get(program) == cause:
            return []
        self.said[program] = cause
        return [f"  {program}: {cause}"]


def fatal_line(log: Path, since: int = 0) -> str | None:
    """The last line the program's log gained after byte `since` that says why it failed, else
    the last line it gained; None when it gained none."""
    try:
        with open(log, "rb") as handle:
            handle.seek(0, 2)
            end = handle.tell()
            handle.seek(max(since if since <= end else 0, end - TAIL_BYTES))
            lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    if not lines:
        return None
    fatal = [line for line in lines if FATAL_WORDS.search(line)]
    return (fatal or lines)[-1][:400]


class Readiness:
    """Whether the intake and the dashboard answer, checked at most every `every` seconds."""

    def __init__(self, settings: Settings, every: float = 0.5) -> None:
        tls = bool(settings.tls_certfile and settings.tls_keyfile)
        self.intake = f"{'https' if tls else 'http'}://{_reachable(settings.producer_host)}:{settings.producer_port}"
        self.dashboard = f"http://{_reachable(settings.dashboard_host)}:{settings.dashboard_port}"
        self.every = every
        self._next = 0.0
        self.ready: set[str] = set()

    def check(self) -> bool:
        """True once both have answered."""
        now = time.monotonic()
        if now < self._next:
            return len(self.ready) == 2
        self._next = now + self.every
        for name, url in (("intake", f"{self.intake}/healthz"), ("dashboard", f"{self.dashboard}/_stcore/health")):
            if name not in self.ready and _answers(url):
                self.ready.add(name)
        return len(self.ready) == 2


def _reachable(host: str) -> str:
    """An address to reach a program listening on `host` from this machine."""
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0, verify=False).status_code == 200  # noqa: S501 - our own, on localhost
    except httpx.HTTPError:
        return False
