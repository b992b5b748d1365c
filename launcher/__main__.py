"""`pq-run`: check, migrate, brief, then run supervisord in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import pqueue
from launcher import briefing
from launcher.preflight import AlreadyRunning, hold_the_home, port_problems
from launcher.stopping import Stopper
from launcher.supervision import Supervision
from launcher.terminal import Terminal
from launcher.watching import Readiness, Troubles
from pqueue import PersistentQ, PQError, Settings, forget_running, record_running

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SLOW_START = 90.0  # seconds after which a program that does not answer yet is named
TICK = 0.5


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pq-run",
        description="Start producer, consumer and dashboard under supervisord in the foreground "
        "(what `make run` does). Ctrl-C stops them all; a second Ctrl-C stops the running job at once.",
    )
    parser.add_argument("--config", default="supervisord.conf", help="supervisord's configuration")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """0 after a stop asked for, 1 when the system cannot start, 2 on bad settings."""
    args = parse_args(argv)
    terminal = Terminal()
    try:
        settings = pqueue.load_settings()
    except PQError as exc:
        terminal.say(f"pq-run: {exc}")
        return 2
    home = settings.resolved_home
    for sub in ("log", "run", "inbox"):
        (home / "var" / sub).mkdir(parents=True, exist_ok=True)
    try:
        lock = hold_the_home(home / "var" / "run")
    except AlreadyRunning as exc:
        terminal.say(f"pq-run: {exc}")
        return 1
    with lock:
        problems = port_problems(settings)
        for problem in problems:
            terminal.say(f"pq-run: {problem}")
        if problems:
            return 1
        try:
            store = pqueue.connect(settings=settings)  # creates or migrates the database first
        except PQError as exc:
            terminal.say(f"pq-run: {exc}")
            return 1
        try:
            return _run(settings, store, Path(args.config).resolve(), terminal)
        finally:
            store.close()
            forget_running(home)


def _run(settings: Settings, store: PersistentQ, config: Path, terminal: Terminal) -> int:
    home = settings.resolved_home
    terminal.say(f"database: {store.describe()}")
    for line in briefing.policy_lines(settings, store.queue_settings(settings.queue)):
        terminal.say(line)
    record_running(home, store.describe())
    supervision = Supervision(_config_in(home, config), home, {**os.environ, "PQ_HOME": str(home)})
    stopper = Stopper(terminal, supervision, store, settings)
    wake = _on_stop_signals(stopper)
    output = supervision.start(str(Path(sys.executable).parent / "supervisord"))
    _relay(output, wake, terminal, supervision, stopper, settings)
    code = supervision.process.wait() if supervision.process else 1
    left = supervision.leftovers()
    if left:
        terminal.say(f"killed {len(left)} program process(es) supervisord left behind: {[p.pid for p in left]}")
    terminal.say("pqueue stopped" if stopper.presses else f"supervisord exited ({code})")
    return 0 if stopper.presses else code or 1


def _config_in(home: Path, config: Path) -> Path:
    """supervisord's configuration as seen from PQ_HOME: its paths are relative to the file's own
    directory (%(here)s), so for another PQ_HOME a link to it is placed there (a file of the
    operator's own there is used as it is)."""
    if config.parent == home:
        return config
    link = home / "supervisord.conf"
    if not link.exists() and not link.is_symlink():
        link.symlink_to(config)
    elif link.is_symlink() and link.resolve() != config:
        link.unlink()
        link.symlink_to(config)
    return link


def _on_stop_signals(stopper: Stopper) -> int:
    """Route Ctrl-C, SIGTERM and SIGHUP to the stopper; the fd the loop wakes on."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)

    def handler(signum: int, _frame: FrameType | None) -> None:
        stopper.pending += 1
        with contextlib.suppress(BlockingIOError):
            os.write(write_end, b"!")

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    return read_end


def _relay(
    output: int, wake: int, terminal: Terminal, supervision: Supervision, stopper: Stopper, settings: Settings
) -> None:
    """Until supervisord's output ends: relay it, answer stop signals, and say when all answers."""
    lines = Lines(output, terminal, Troubles(settings.resolved_home / "var" / "log"))
    announcer = Announcer(terminal, Readiness(settings), briefing.where(settings, supervision.config))
    selector = selectors.DefaultSelector()
    selector.register(output, selectors.EVENT_READ, "output")
    selector.register(wake, selectors.EVENT_READ, "wake")
    while True:
        for key, _ in selector.select(TICK):
            if key.data == "output" and not lines.relay():
                return
            if key.data == "wake":
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake, 64):
                        pass
                stopper.answer_signals()
        supervision.programs()  # remembered, so none is left behind
        if not stopper.presses:
            announcer.tick()


class Lines:
    """supervisord's output, line by line onto the terminal, each program's trouble explained."""

    def __init__(self, output: int, terminal: Terminal, troubles: Troubles) -> None:
        self.output = output
        self.terminal = terminal
        self.troubles = troubles
        self.pending = b""

    def relay(self) -> bool:
        """Relay what has arrived; False once the output has ended."""
        chunk = os.read(self.output, 65536)
        if not chunk:
            if self.pending:
                self.terminal.say(self.pending.decode(errors="replace"))
            return False
        *complete, self.pending = (self.pending + chunk).split(b"\n")
        for raw in complete:
            line = raw.decode(errors="replace").rstrip()
            self.terminal.say(line)
            for extra in self.troubles.on_line(line):
                self.terminal.say(extra)
        return True


class Announcer:
    """The banner, once the intake and the dashboard answer (not before: an address printed
    while the program behind it crash-loops misleads); or, after a while, who does not answer."""

    def __init__(self, terminal: Terminal, readiness: Readiness, banner: list[str]) -> None:
        self.terminal = terminal
        self.readiness = readiness
        self.banner = banner
        self.started = time.monotonic()
        self.done = False

    def tick(self) -> None:
        if self.done:
            return
        if self.readiness.check():
            for line in self.banner:
                self.terminal.say(line)
            self.done = True
        elif time.monotonic() - self.started > SLOW_START:
            waiting = sorted({"intake", "dashboard"} - self.readiness.ready)
            self.terminal.say(f"still waiting for {' and '.join(waiting)} to answer (see var/log/)")
            self.done = True


if __name__ == "__main__":
    sys.exit(main())
