"""A running system on one fresh database: pq-consumer (running bench.algos:mark) and pq-producer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.databases import Target
from bench.library import open_store
from bench.procs import BIN, start, stop, wait_until
from pqueue import PersistentQ, Status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Deployment:
    """The consumer and the producer as they ship, started on the target's database."""

    def __init__(self, target: Target, workdir: Path, callback_backoff: float = 1.0) -> None:
        self.target = target
        self.workdir = workdir
        self.store: PersistentQ = open_store(target)
        self.port = free_port()
        # The intake runs as it does in production: every request carries PQ_API_TOKEN (or a key).
        self.token = "bench-token"
        env = target.env(
            PQ_API_TOKEN=self.token,
            PQ_ALGORITHM="bench.algos:mark",
            PQ_MAX_QUEUE_DEPTH="100000000",
            PQ_PRODUCER_PORT=str(self.port),
            PQ_CALLBACK_BACKOFF_SECONDS=str(callback_backoff),
            PQ_LOG_LEVEL=os.environ.get("BENCH_CONSUMER_LOG_LEVEL", "WARNING"),
            # BENCH_CLAIM_AHEAD=1 measures the consumer claiming ahead (PQ_CLAIM_AHEAD, off by default).
            PQ_CLAIM_AHEAD=os.environ.get("BENCH_CLAIM_AHEAD", "0"),
        )
        name = target.home.name
        self.consumer = start([str(BIN / "pq-consumer")], env, workdir / f"{name}-consumer.log")
        self.producer = start([str(BIN / "pq-producer")], env, workdir / f"{name}-producer.log")
        self.posted = 0

    def wait_ready(self) -> None:
        wait_until(lambda: self.store.workers(), timeout=180, interval=0.05, what="the consumer to register")
        wait_until(self._healthy, timeout=180, interval=0.05, what="the producer to answer /healthz")

    def _healthy(self) -> bool:
        if self.producer.poll() is not None:
            raise RuntimeError(f"pq-producer exited with {self.producer.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def load(
        self,
        requests: int,
        concurrency: int,
        callback: str | None = None,
        queue: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Run the load generator as a second process against the producer (with PQ_API_TOKEN
        unless another key is given)."""
        command = [
            sys.executable,
            "-m",
            "bench.loadgen",
            f"--port={self.port}",
            f"--requests={requests}",
            f"--concurrency={concurrency}",
            f"--first={self.posted}",
            f"--token={token or self.token}",
        ]
        if callback:
            command.append(f"--callback={callback}")
        if queue:
            command.append(f"--queue={queue}")
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed: {done.stderr.strip()[-500:]}")
        self.posted += requests
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        bad = {k: v for k, v in result["statuses"].items() if k != "202"}
        if bad:
            raise RuntimeError(f"the intake answered {bad} (expected only 202)")
        return result

    def wait_processed(self, count: int, timeout: float) -> None:
        wait_until(
            lambda: self.store.count_items(status=Status.PROCESSED) >= count,
            timeout=timeout,
            interval=0.02,
            what=f"{count} jobs processed",
        )

    def close(self) -> None:
        for process in (self.producer, self.consumer):
            stop(process)
        self.store.close()


def sleep_until(moment: float) -> None:
    """Idle until a time.monotonic() moment (the consumer is meant to be idle meanwhile)."""
    time.sleep(max(0.0, moment - time.monotonic()))
