"""A private PostgreSQL cluster in a temporary directory, so tests can stop and restart it
without disturbing the machine's shared server."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support import IN_CI, free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        if IN_CI:
            pytest.fail(f"PostgreSQL's {name} is not installed")
        pytest.skip(f"PostgreSQL's {name} is not installed")
    return found[-1]


class PrivateCluster:
    """initdb + pg_ctl as the postgres user (initdb refuses to run as root)."""

    def __init__(self, standby_of: PrivateCluster | None = None, name: str = "standby") -> None:
        """A new cluster; with standby_of, a streaming standby of that (running) one instead,
        named `name` (its application_name, which synchronous_standby_names can list)."""
        self.root = Path(tempfile.mkdtemp(prefix="pq-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        if standby_of is None:
            self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
            return
        primary = f"host=127.0.0.1 port={standby_of.port} user=postgres application_name={name}"
        # -R writes standby.signal and primary_conninfo: started, it streams from the primary.
        self._run(_bin("pg_basebackup"), "-D", str(self.data), "-R", "-X", "stream", "-d", primary)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True, timeout=120)

    def promote(self) -> None:
        """End a standby's recovery: it takes writes on a new timeline."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-w", "promote")

    def _ctl(self, action: str, mode: str = "fast") -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-m",
            mode,
            "-w",
            action,
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        """Shut down: "fast" ends sessions cleanly, "immediate" as a crash would (recovery at start)."""
        self._ctl("stop", mode)

    def restart(self) -> None:
        self._ctl("restart")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
