"""A private RabbitMQ node for tests that need broker settings of their own.

RabbitMQ 3.10 (this machine's) sets consumer_timeout only for a whole node, and checks it once
per channel tick (60 s by default); the `x-consumer-timeout` queue and consumer arguments came
in 3.12. So a test that needs a short consumer timeout starts a node of its own, on free ports
of 127.0.0.1, with its data, logs and Erlang cookie in a temporary directory, the way the fault
suite makes a private PostgreSQL cluster, and never touches the machine's broker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pika

from tests.relay.rabbit import RABBIT_HOST, rabbit_url
from tests.support import free_port, wait_until

# The server script itself: /usr/sbin/rabbitmq-server is a wrapper that, run as root, switches
# to the rabbitmq user, who cannot write the test's directory.
SERVER_SCRIPTS = ("/usr/lib/rabbitmq/bin/rabbitmq-server",)


def server_script() -> str | None:
    """The rabbitmq-server script this machine has, or None."""
    for candidate in SERVER_SCRIPTS:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("rabbitmq-server")


class PrivateRabbit:
    """One RabbitMQ node of a test's own; `url` reaches it as guest once `start()` returned."""

    def __init__(self, directory: Path, *, consumer_timeout_ms: int, tick_ms: int = 250) -> None:
        self.directory = directory
        self.consumer_timeout_ms = consumer_timeout_ms
        self.tick_ms = tick_ms
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return rabbit_url(self.port)

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def start(self, script: str, timeout: float = 90.0) -> None:
        """Boot the node and wait until it takes AMQP connections."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for sub in ("mnesia", "log"):
            (self.directory / sub).mkdir(exist_ok=True)
        (self.directory / "rabbitmq.conf").write_text(f"listeners.tcp.default = {RABBIT_HOST}:{self.port}\n")
        # channel_tick_interval is how often a channel looks for deliveries held past the timeout.
        (self.directory / "advanced.config").write_text(
            f"[{{rabbit, [{{consumer_timeout, {self.consumer_timeout_ms}}},"
            f" {{channel_tick_interval, {self.tick_ms}}}]}}].\n"
        )
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [script], env=self._environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self._ready, timeout=timeout, interval=0.25, what=f"a private RabbitMQ on port {self.port}")

    def _environment(self) -> dict[str, str]:
        d = self.directory
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(d),  # the node's Erlang cookie goes here, not into the machine's
            RABBITMQ_NODENAME=f"pqtest{uuid.uuid4().hex[:10]}@localhost",
            RABBITMQ_DIST_PORT=str(free_port()),
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            ERL_EPMD_ADDRESS=RABBIT_HOST,
            ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the private RabbitMQ exited with {self.process.returncode}: see {self.log_path}")
        try:  # the AMQP listener opens last, once the node has booted
            socket.create_connection((RABBIT_HOST, self.port), timeout=1).close()
        except OSError:
            return False
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        connection.close()
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node (SIGTERM is an orderly shutdown for Erlang), then anything left of it."""
        if self.process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        # The Erlang VM outlives the shell script that started it by a moment.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
