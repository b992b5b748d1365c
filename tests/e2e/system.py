"""The whole system under a real supervisord, in a temporary instance directory.

supervisord.conf is symlinked (not copied) into the directory, so %(here)s, var/ and the
database all live there, and test settings arrive as environment variables.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.programs import Process, start_program
from tests.support import BIN, REPO, free_port, wait_until

ALGORITHM = "tests.consumer.algos:act"


class System:
    """One supervisord with producer, consumer and dashboard, and ways to poke at them."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.port = free_port()
        self.dashboard_port = free_port()
        home.mkdir(parents=True, exist_ok=True)
        for sub in ("var/log", "var/run", "var/inbox"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        (home / "supervisord.conf").symlink_to(REPO / "supervisord.conf")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
        self.env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": str(REPO),  # the test algorithms live in tests/
                "PQ_PRODUCER_PORT": str(self.port),
                "PQ_DASHBOARD_PORT": str(self.dashboard_port),
                "PQ_ALGORITHM": ALGORITHM,
                "PQ_LEASE_SECONDS": "2",
                "PQ_RETRY_BACKOFF_SECONDS": "0.2",
                "PQ_SHUTDOWN_GRACE": "5",
                "PQ_CALLBACK_SECRET": "e2e-secret",
                "PQ_CALLBACK_BACKOFF_SECONDS": "0.2",
            }
        )
        self.env.update(env)
        self.process: Process | None = None

    def ctl(self, *args: str) -> str:
        """Run supervisorctl against this instance; its output."""
        done = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(self.home / "supervisord.conf"), *args],
            env=self.env,
            capture_output=True,
            timeout=60,
        )
        return done.stdout.decode()

    def start(self) -> System:
        subprocess.run([str(BIN / "pq"), "migrate"], env=self.env, cwd=self.home, check=True, capture_output=True)
        self.process = start_program(
            ["supervisord", "-c", str(self.home / "supervisord.conf")],
            self.env,
            self.home / "var" / "log" / "supervisord.stdout",
            cwd=self.home,
        )
        wait_until(self.healthy, timeout=90, interval=0.2, what="the producer to answer /healthz")
        wait_until(lambda: self.pid("consumer"), timeout=60, what="the consumer to run")
        return self

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def dashboard_answers(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.dashboard_port}/", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pid(self, program: str) -> int:
        """The running program's pid, or 0."""
        out = self.ctl("pid", program).strip()
        return int(out) if out.isdigit() else 0

    def submit(self, client: httpx.Client, payload: Any, **fields: Any) -> int:
        response = client.post(f"{self.url}/jobs", json={"payload": payload, **fields}, timeout=30)
        assert response.status_code == 202, response.text
        job_id: int = response.json()["id"]
        return job_id

    def job(self, job_id: int) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/jobs/{job_id}", timeout=30)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def logs(self, program: str) -> str:
        path = self.home / "var" / "log" / f"{program}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None
