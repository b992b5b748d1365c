"""A command run in a pseudo-terminal of its own, as a person runs it: Ctrl-C is the byte 0x03
typed into the terminal, which the kernel turns into SIGINT for the terminal's foreground
process group (make, pq-run and tee alike), exactly as in a shell."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import signal
import subprocess
import termios
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from tests.support import wait_until


def _take_the_terminal() -> None:
    """In the child: the pty on fd 0 becomes the controlling terminal of its new session."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """One command in one pty; everything it prints is kept for the test to read."""

    def __init__(self, command: list[str], env: Mapping[str, str], cwd: Path) -> None:
        self.command = command
        master, slave = pty.openpty()
        self.master = master
        self.process = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_take_the_terminal,
        )
        os.close(slave)
        self._output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every process holding the terminal has gone
                return
            if not chunk:
                return
            with self._lock:
                self._output.extend(chunk)

    @property
    def text(self) -> str:
        with self._lock:
            return self._output.decode(errors="replace").replace("\r\n", "\n")

    def expect(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        """Wait until the screen shows `pattern` (a regex); the match."""

        def shown() -> re.Match[str] | None:
            found = re.search(pattern, self.text, re.MULTILINE)
            if found is None and self.process.poll() is not None:
                self._reader.join(2)
                found = re.search(pattern, self.text, re.MULTILINE)
                if found is None:
                    raise AssertionError(
                        f"{self.command} ended ({self.process.returncode}) without {pattern!r}:\n{self.text}"
                    )
            return found

        try:
            return wait_until(shown, timeout=timeout, interval=0.1, what=repr(pattern))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- the terminal so far:\n{self.text}") from None

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def wait(self, timeout: float) -> int:
        """The command's exit status, once it has ended."""
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        """Kill whatever still runs in the terminal's session."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        deadline = time.monotonic() + 5
        while self._reader.is_alive() and time.monotonic() < deadline:
            self._reader.join(0.1)
        with contextlib.suppress(OSError):
            os.close(self.master)
