"""The person's terminal: stdout, which may be a pipe to `tee` that the same Ctrl-C has closed."""

from __future__ import annotations

import contextlib
import os
import sys


class Terminal:
    """Writes lines for the person; once nobody reads them, writes nothing and carries on."""

    def __init__(self) -> None:
        self.gone = False

    def say(self, line: str = "") -> None:
        """One line, flushed at once (supervisord's lines arrive as they happen)."""
        if self.gone:
            return
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except OSError:  # EPIPE: `tee` died with the Ctrl-C; stopping must go on regardless
            self.gone = True
            self._silence()

    @staticmethod
    def _silence() -> None:
        """Point stdout and stderr at /dev/null, so no later write (not even the interpreter's
        last flush) fails or raises SIGPIPE."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                os.dup2(devnull, stream.fileno())
        os.close(devnull)
