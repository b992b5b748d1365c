"""SIGTERM / SIGINT handling and the self-pipe that wakes the supervising loop at once."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from types import FrameType


class Waker:
    """A pipe the loop waits on; a write from a signal handler or a thread ends its wait."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def fileno(self) -> int:
        """The end the loop waits on."""
        return self._read

    def wake(self) -> None:
        """Wake the loop (safe from a signal handler: one non-blocking write)."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"!")

    def drain(self) -> None:
        """Forget earlier wake-ups."""
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read, 4096):
                pass

    def close(self) -> None:
        """Release the pipe."""
        os.close(self._read)
        os.close(self._write)


class Shutdown:
    """The first signal asks for a graceful stop; a second one for an immediate stop."""

    def __init__(self, waker: Waker) -> None:
        self.waker = waker
        self.requested = False
        self.immediate = False
        self.requested_at: float | None = None
        self.signal_name: str | None = None

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Record a stop request (called from the signal handler: flags and a pipe write only)."""
        if self.requested:
            self.immediate = True
        else:
            self.requested = True
            self.requested_at = time.monotonic()
            self.signal_name = signal.Signals(signum).name
        self.waker.wake()

    def install(self) -> None:
        """Route SIGTERM and SIGINT here (main thread only)."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.request(signum)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
