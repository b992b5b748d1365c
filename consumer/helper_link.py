"""The consumer's end of the warm helper (consumer/helper.py): start it, send it messages, read
what it says, and replace it when it dies or stops answering.

Two threads send on the link (the loop asks for forks, the lease keeper sends kill deadlines), so
sending takes a lock; only the loop reads.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from consumer.channel import Channel
from consumer.loading import AlgorithmUnavailable
from consumer.logs import event
from consumer.messages import Broken, Forked, FromHelper, Start, ToHelper
from consumer.processes import readable, wait_readable
from pqueue import Settings

log = logging.getLogger("consumer")

# How long the consumer waits for the helper to import the algorithm (pandas takes seconds).
HELPER_START_TIMEOUT = 300.0
# How long a helper that was asked to exit gets before it is killed.
HELPER_EXIT_PATIENCE = 2.0

# Told each message the helper sends; a Forked message comes with the job process's socket.
OnMessage = Callable[[FromHelper, Channel | None], None]


class HelperLink:
    """One helper process at a time, and the channel to it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.on_message: OnMessage = lambda _message, _socket: None
        # The consumer never writes to the lifeline: its end closing (exit, SIGKILL) is the message.
        self._lifeline_reader, self._lifeline_writer = os.pipe()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._sending = threading.Lock()

    def start(self) -> None:
        """Start the helper; it imports the algorithm in the background (see wait_ready)."""
        ours, theirs = socket.socketpair()
        command = [
            sys.executable,
            "-P",  # the consumer package from where it is installed, never shadowed by the working directory
            "-m",
            "consumer.helper",
            f"--commands={theirs.fileno()}",
            f"--lifeline={self._lifeline_reader}",
            f"--consumer-pid={os.getpid()}",
        ]
        # From the main thread: the parent-death signal follows the thread that started the helper.
        # start_new_session: the helper's own session, made before it runs any code.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(), self._lifeline_reader),
            start_new_session=True,
            close_fds=True,
        )
        theirs.close()
        self._channel = Channel(ours)
        self._channel.send(Start(self.settings.algorithm, self.settings.model_dump_json()))

    def wait_ready(self, timeout: float = HELPER_START_TIMEOUT) -> None:
        """Block until the helper has imported the algorithm; AlgorithmUnavailable if it cannot."""
        assert self._channel is not None and self._process is not None
        started = time.monotonic()
        if not wait_readable([self._channel], timeout):
            raise AlgorithmUnavailable(f"the algorithm process did not start within {timeout:.0f}s")
        try:
            message = self._channel.recv()
        except (EOFError, OSError):
            code = self._process.wait(5)
            raise AlgorithmUnavailable(f"the algorithm process died while starting (exit code {code})") from None
        if isinstance(message, Broken):
            raise AlgorithmUnavailable(message.why)
        event(
            log,
            "algorithm_ready",
            algorithm=self.settings.algorithm,
            pid=self._process.pid,
            seconds=round(time.monotonic() - started, 3),
        )

    @property
    def alive(self) -> bool:
        """False once the helper has died."""
        return self._process is not None and self._process.poll() is None

    def handles(self) -> list[Channel]:
        """What a loop waits on for the helper's messages (and its end, as end of file)."""
        return [] if self._channel is None else [self._channel]

    def send(self, message: ToHelper) -> bool:
        """Send one message (from any thread); False when the helper is gone."""
        channel = self._channel
        if channel is None:
            return False
        with self._sending:
            try:
                channel.send(message)
            except OSError:  # also a channel closed by a restart
                return False
        return True

    def pump(self) -> None:
        """Hand every message the helper has sent to on_message; a helper found gone is reaped,
        so `alive` says so."""
        channel = self._channel
        if channel is None:
            return
        try:
            while readable(channel):
                message: FromHelper = channel.recv()
                passed = Channel.from_fd(channel.recv_fd()) if isinstance(message, Forked) else None
                self.on_message(message, passed)
        except (EOFError, OSError):
            self._end(patience=0.0)

    def restart(self) -> None:
        """Replace the helper (dead, or not answering); its job processes die with it."""
        exitcode = self._end(patience=0.0)
        event(log, "algorithm_process_restart", level=logging.WARNING, exitcode=exitcode)
        self.start()
        self.wait_ready()

    def close(self) -> None:
        """Stop the helper: it exits when its channel closes, killing every job process group it forked."""
        self._end(patience=HELPER_EXIT_PATIENCE)
        os.close(self._lifeline_writer)
        os.close(self._lifeline_reader)

    def _end(self, patience: float) -> int | None:
        """Close the channel and reap the helper, killing it if still there after `patience`
        seconds; its exit code."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is None:
            return None
        try:
            return self._process.wait(patience)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait()
