"""A PostgreSQL primary and its streaming standby, private to one test (never the machine's own
server): built with initdb and `pg_basebackup -R` on free ports, its replication synchronous or
asynchronous, the standby held behind, the primary killed and the standby promoted."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import psycopg

from tests.pg_cluster import PrivateCluster
from tests.support import wait_until

STANDBY_NAME = "standby1"


class ReplicatedPair:
    """A running primary and a standby streaming from it."""

    def __init__(self, *, synchronous: bool) -> None:
        self.synchronous = synchronous
        self._stopped: list[int] = []
        self.primary = PrivateCluster()
        try:
            self.primary.start()
            self.standby = PrivateCluster(standby_of=self.primary, name=STANDBY_NAME)
        except BaseException:
            self.primary.destroy()
            raise
        self.standby.start()
        if synchronous:
            self.sql(self.primary, f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            self.sql(self.primary, "SELECT pg_reload_conf()")
        wanted = "sync" if synchronous else "async"
        wait_until(
            lambda: (
                self.sql(self.primary, "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'")
                == [(wanted,)]
            ),
            timeout=60,
            interval=0.1,
            what=f"the standby to stream ({wanted})",
        )

    @staticmethod
    def sql(cluster: PrivateCluster, statement: str) -> list[tuple[Any, ...]]:
        """Run one statement on a cluster (autocommit); its rows, if it returns any."""
        with psycopg.connect(host="127.0.0.1", port=cluster.port, user="postgres", autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def url(self, *clusters: PrivateCluster, query: str = "") -> str:
        """libpq's multi-host URL for these clusters, in this order."""
        hosts = ",".join(f"127.0.0.1:{c.port}" for c in clusters)
        return f"postgresql+psycopg://postgres@{hosts}/postgres{query}"

    def hold_standby_behind(self) -> None:
        """Stop the primary's walsender (SIGSTOP): from now on the standby receives nothing."""
        [(pid,)] = self.sql(self.primary, "SELECT pid FROM pg_stat_replication")
        os.kill(pid, signal.SIGSTOP)
        self._stopped.append(pid)

    def kill_primary(self) -> None:
        """SIGKILL the primary's postmaster and every process of it, as a crash or a power cut would."""
        postmaster = int((self.primary.data / "postmaster.pid").read_text().split()[0])
        for pid in [*_children(postmaster), postmaster]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{postmaster}").exists(), timeout=30, what="the primary to die")

    def promote(self) -> None:
        """Make the standby the primary (pg_ctl promote, waiting until it takes writes)."""
        self.standby.promote()

    def restore_standby_as_a_backup(self) -> None:
        """Start the (stopped) standby's data directory as a backup being restored: archive
        recovery (recovery.signal) to the end of the WAL it holds, then a new timeline. Returns once
        recovery has ended and the server takes writes (pg_ctl start returns while it still replays)."""
        (self.standby.data / "standby.signal").unlink()
        (self.standby.data / "recovery.signal").touch()
        with (self.standby.data / "postgresql.auto.conf").open("a") as conf:
            conf.write("restore_command = 'false'\n")  # no archive: recovery ends with the WAL in pg_wal
        self.standby.start()
        wait_until(
            lambda: self.sql(self.standby, "SELECT pg_is_in_recovery()") == [(False,)],
            timeout=60,
            interval=0.1,
            what="the restored server to end its recovery",
        )

    def destroy(self) -> None:
        for pid in self._stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.primary.destroy()
        self.standby.destroy()


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                    found.append(int(entry.name))
    return found
