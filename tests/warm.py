"""Programs started warm: forked from a process that imported them once, then run as a program.

A console script started with exec imports pqueue, SQLAlchemy, pydantic and its own program
again before it does anything: 0.45 s of CPU for pq-consumer and 0.75 s for pq-producer on the
development machine, about a fifth of the whole suite's CPU (hundreds of starts). Here one
server per test worker (`python -m tests.warm`) imports every program once; a start forks it,
and the fork becomes the program: its own session and process group, the test's environment
(os.environ replaced), argv, working directory, standard streams on the log, default signal
handlers, and then the console script's own `main()`, exactly as the exec'd script calls it. The server
is its parent: it reaps it and tells the test its exit status, so the test waits for it,
signals it and reads how it ended as with a Popen.

What a warm start does not show, exec does: the console script's own start (imports, the
interpreter's flags). tests/newcomer, tests/seeds, tests/docs and every supervisord test start the
programs with exec, and PQ_TEST_WARM=0 starts every program so.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENABLED = os.environ.get("PQ_TEST_WARM", "1") != "0"

# The console scripts a warm start can run (pyproject's [project.scripts]); others start with exec.
ENTRY_POINTS = {
    "pq": "admin.cli:main",
    "pq-producer": "producer.__main__:main",
    "pq-demo-feeder": "producer.demo:main",
    "pq-consumer": "consumer.__main__:main",
    "pq-relay": "relay.__main__:main",
    "pq-run": "launcher.__main__:main",
}
MESSAGE_LIMIT = 1 << 20


class WarmProcess:
    """A warmly started program, as the tests use a Popen: pid, poll, wait, signals, returncode."""

    def __init__(self, server: _Server, pid: int, args: list[str]) -> None:
        self.server = server
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            pidfd: int | None = os.pidfd_open(self.pid)
        except ProcessLookupError:  # reaped already
            pidfd = None
        try:
            while self.poll() is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
                if pidfd is None:
                    time.sleep(0.01)
                else:  # readable once it has ended
                    select.select([pidfd], [], [], left)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Server:
    """The test worker's end of its warm server (started at the first warm start)."""

    def __init__(self) -> None:
        self.ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.warm", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.lock = threading.Lock()

    def _ask(self, request: tuple[Any, ...], fds: list[int] | None = None) -> str:
        with self.lock:
            socket.send_fds(self.ours, [pickle.dumps(request)], fds or [])
            answer = self.ours.recv(MESSAGE_LIMIT).decode(errors="replace")
        if not answer:
            raise RuntimeError(f"the warm server is gone (exit {self.process.poll()})")
        return answer

    def start(self, script: str, argv: list[str], env: Mapping[str, str], cwd: Path, log: int) -> int:
        answer = self._ask(("start", ENTRY_POINTS[script], argv, dict(env), str(cwd)), [log])
        if not answer.lstrip("-").isdigit():
            raise RuntimeError(f"the warm server could not start {script}: {answer}")
        return int(answer)

    def exit_code(self, pid: int) -> int | None:
        """The program's exit code as Popen gives it (-N: killed by signal N); None while it runs."""
        answer = self._ask(("status", pid))
        return None if answer == "running" else int(answer)


_server: _Server | None = None


def warm_start(script: str, argv: list[str], env: Mapping[str, str], cwd: Path, log: int) -> WarmProcess:
    """Start the console script `script` (argv[0] its path) warm, its output on the file `log`."""
    global _server
    if _server is None or _server.process.poll() is not None:
        _server = _Server()
    return WarmProcess(_server, _server.start(script, argv, env, cwd, log), argv)


# -- the server: `python -m tests.warm FD` ---------------------------------------------------------


def serve(sock: socket.socket) -> None:
    """Import every program once, then fork one on each request until the worker closes the socket."""
    for entry in ENTRY_POINTS.values():
        importlib.import_module(entry.split(":")[0])
    assert threading.active_count() == 1, "a warm server must fork from one thread"
    ended: dict[int, int] = {}
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(sock, MESSAGE_LIMIT, 1)
        except OSError:
            return
        if not message:
            return
        try:
            kind, *details = pickle.loads(message)
            answer = str(_fork(sock, fds[0], *details)) if kind == "start" else _status(details[0], ended)
        except Exception as exc:  # noqa: BLE001 - the worker reads what went wrong
            answer = f"{type(exc).__name__}: {exc}"
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(answer.encode())


def _status(pid: int, ended: dict[int, int]) -> str:
    """Reap every program that has ended (remembering how), then say how `pid` ended."""
    while True:
        try:
            done, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if not done:
            break
        ended[done] = os.waitstatus_to_exitcode(status)
    return str(ended[pid]) if pid in ended else "running"


def _fork(sock: socket.socket, log: int, entry: str, argv: list[str], env: dict[str, str], cwd: str) -> int:
    pid = os.fork()
    if pid == 0:
        _become(sock, log, entry, argv, env, cwd)
    return pid


def _become(sock: socket.socket, log: int, entry: str, argv: list[str], env: dict[str, str], cwd: str) -> None:
    """In the program's process: what an exec'd console script would have, then its main(); never return."""
    code: int = 1
    try:
        sock.close()
        os.setsid()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(devnull)
        os.close(log)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = list(argv)
        sys.path[0] = str(Path(argv[0]).parent)  # a console script's first path entry
        for extra in reversed([p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]):
            sys.path.insert(1, extra)
        _standard_streams(unbuffered=bool(env.get("PYTHONUNBUFFERED")))
        module, function = entry.split(":")
        code = _exit_code(getattr(importlib.import_module(module), function))
    except BaseException:  # noqa: BLE001 - whatever happens, never return into the server
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def _standard_streams(unbuffered: bool) -> None:
    """sys.stdin/stdout/stderr on fds 0-2, as the interpreter makes them (PYTHONUNBUFFERED too)."""
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
    out = io.FileIO(1, "w", closefd=False)
    sys.stdout = io.TextIOWrapper(
        out if unbuffered else io.BufferedWriter(out), encoding="utf-8", write_through=unbuffered
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
    )


def _exit_code(main: Any) -> int:
    """What `sys.exit(main())` would make the process's exit code; an uncaught Ctrl-C ends it by SIGINT."""
    try:
        result = main()
    except SystemExit as stop:
        result = stop.code
    except KeyboardInterrupt:
        traceback.print_exc()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 128 + signal.SIGINT
    if result is None:
        return 0
    if isinstance(result, int):
        return result & 0xFF
    print(result, file=sys.stderr)
    return 1


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
