"""Consumers on two "hosts" (network namespaces, each behind a veth pair) share one PostgreSQL;
one host's network drops every packet for a while, then comes back.

Each namespace reaches the database over a real network path: its own /30 on a veth pair, to
a forwarder bound on the host's end of it (the server listens on 127.0.0.1 only). The
partition is a qdisc that drops every packet on both ends of the veth pair, so the consumer's
TCP connections stay open and hear nothing: TCP keepalives, tcp_user_timeout and the call
deadline are what end its calls. The other host goes on working throughout.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pqueue import PersistentQ, Status
from tests.faults.blackhole import NetworkProxy
from tests.faults.ledger import Run, overlaps, peak_concurrency, read_runs, runs_of
from tests.faults.settings import LEASE_SECONDS
from tests.programs import Process, StartProgram, pid_alive
from tests.support import wait_status, wait_until

pytestmark = [
    pytest.mark.process,
    pytest.mark.postgres,
    pytest.mark.timeout(240),
    pytest.mark.parametrize("backend", ["postgresql"]),
]

SEATS = 2
RECOVERY_BOUND = 30.0  # the bound: the partitioned host claims again within 30 s of the heal
BACKLOG = 60  # short jobs, so the other host is still busy when the partitioned one comes back


def ip(*args: str, netns: str | None = None) -> None:
    """Run `ip …` (in the namespace, with netns=…); fail with its error output."""
    command = ["ip", "-n", netns, *args] if netns else ["ip", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {done.stderr.strip()}")


def tc(*args: str, netns: str | None = None) -> None:
    """Run `tc …` (in the namespace, with netns=…); fail with its error output."""
    command = ["ip", "netns", "exec", netns, "tc", *args] if netns else ["tc", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {done.stderr.strip()}")


@dataclass
class Host:
    """One network namespace joined to this machine by a veth pair on a /30 of its own."""

    netns: str
    host_device: str  # the pair's end on this machine, with host_address
    device: str  # the pair's end in the namespace, with address
    host_address: str
    address: str

    def create(self) -> None:
        ip("link", "add", self.host_device, "type", "veth", "peer", "name", self.device)
        ip("link", "set", self.device, "netns", self.netns)
        ip("addr", "add", f"{self.host_address}/30", "dev", self.host_device)
        ip("link", "set", self.host_device, "up")
        ip("addr", "add", f"{self.address}/30", "dev", self.device, netns=self.netns)
        ip("link", "set", self.device, "up", netns=self.netns)
        ip("link", "set", "lo", "up", netns=self.netns)

    def partition(self) -> None:
        """Drop every packet both ways (a queue of length 0 on each end): no error, no reset."""
        tc("qdisc", "add", "dev", self.device, "root", "pfifo", "limit", "0", netns=self.netns)
        tc("qdisc", "add", "dev", self.host_device, "root", "pfifo", "limit", "0")

    def heal(self) -> None:
        tc("qdisc", "del", "dev", self.device, "root", netns=self.netns)
        tc("qdisc", "del", "dev", self.host_device, "root")


@pytest.fixture
def make_host() -> Iterator[Callable[[], Host]]:
    """New namespaces (skipped where this machine refuses them); all deleted afterwards, which
    also removes their veth pairs."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2's ip is not installed")
    token = secrets.token_hex(3)
    subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}"
    made: list[str] = []

    def make() -> Host:
        index = len(made)
        netns = f"pq{token}{index}"
        refused = subprocess.run(["ip", "netns", "add", netns], capture_output=True, text=True, timeout=30)
        if refused.returncode != 0:
            pytest.skip(f"network namespaces are refused here: {refused.stderr.strip()}")
        made.append(netns)
        base = 4 * index
        host = Host(netns, f"pqh{token}{index}", f"pqn{token}{index}", f"{subnet}.{base + 1}", f"{subnet}.{base + 2}")
        host.create()
        return host

    yield make
    for netns in made:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)


def wait_runs(ledger: Path, tag: str, count: int, timeout: float = 60.0) -> list[Run]:
    def found() -> list[Run]:
        runs = runs_of(read_runs(ledger), tag)
        return runs if len(runs) >= count else []

    return wait_until(found, timeout=timeout, what=f"{count} run(s) of {tag}")


def claims(log: Path) -> int:
    """How many jobs the consumer whose log this is has claimed (or, claiming ahead, started
    held: a held job's start is its claim)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return len(re.findall(r"event=(?:claimed|started_held) job=", text))


def test_one_host_partitioned__the_other_works_on_and_the_licence_holds(
    make_host: Callable[[], Host],
    make_queue: Callable[..., PersistentQ],
    start_program: StartProgram,
    db_env: dict[str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    cut_off, other = make_host(), make_host()
    proxies = {}
    for host in (cut_off, other):  # each namespace's way to the server, on its own address
        proxies[host.netns] = NetworkProxy.to_url(db_env["PQ_DATABASE_URL"], bind_host=host.host_address)
        request.addfinalizer(proxies[host.netns].close)
    q = make_queue(lease_seconds=LEASE_SECONDS)
    q.set_seats("default", SEATS)
    ledger = tmp_path / "ledger.jsonl"

    def consumer_on(host: Host) -> Process:
        url = proxies[host.netns].url_through(db_env["PQ_DATABASE_URL"])
        return start_program("pq-consumer", netns=host.netns, PQ_DATABASE_URL=url)

    long_id = q.put_item({"ledger": str(ledger), "tag": "long", "seconds": 60, "rerun_seconds": 1})
    partitioned = consumer_on(cut_off)
    partitioned_log = tmp_path / "pq-consumer-0.log"
    first = wait_runs(ledger, "long", 1)[0]
    backlog = [q.put_item({"ledger": str(ledger), "tag": f"job-{n}", "seconds": 0.5}) for n in range(BACKLOG)]
    consumer_on(other)
    wait_until(lambda: claims(tmp_path / "pq-consumer-1.log") >= 2, timeout=60, what="the other host to work")

    cut_off.partition()
    broke_at = time.monotonic()
    wait_until(lambda: not pid_alive(first.pid), timeout=LEASE_SECONDS + 10, what="the partitioned job to die")
    killed_after = time.monotonic() - broke_at
    wait_status(q, long_id, Status.PROCESSED, timeout=60)  # the other host rescued it and ran it
    wait_until(
        lambda: "event=database_unavailable" in partitioned_log.read_text(errors="replace"),
        timeout=30,
        what="the partitioned consumer to say the database is unavailable",
    )
    claimed_before = claims(partitioned_log)

    cut_off.heal()
    healed_at = time.monotonic()
    wait_until(
        lambda: claims(partitioned_log) > claimed_before,
        timeout=RECOVERY_BOUND + 30,
        interval=0.05,
        what="the partitioned host to claim again",
    )
    recovery = time.monotonic() - healed_at
    for job_id in backlog:
        wait_status(q, job_id, Status.PROCESSED, timeout=120)

    runs = read_runs(ledger)
    killed = runs_of(runs, "long")[0]
    log = partitioned_log.read_text(errors="replace")
    print(
        f"figures (netns): job last ran {killed.last - broke_at:.2f}s after the partition (lease "
        f"{LEASE_SECONDS}s), its process gone after {killed_after:.2f}s; partition lasted "
        f"{healed_at - broke_at:.1f}s; claimed again {recovery:.2f}s after the heal; "
        f"most runs at once {peak_concurrency(runs)} of {SEATS} seats; "
        f"deadline lines: {log.count('no answer from PostgreSQL within')}"
    )
    assert peak_concurrency(runs) <= SEATS, overlaps(runs)
    assert not [(a, b) for a, b, _ in overlaps(runs) if a.tag == b.tag], "a job ran twice at once"
    # Dead before the lease it last renewed (before the partition) ran out.
    assert not killed.ended and killed.last < broke_at + LEASE_SECONDS
    assert [r.ended for r in runs_of(runs, "long")[1:]] == [True]
    assert all(len(runs_of(runs, f"job-{n}")) == 1 for n in range(BACKLOG))  # each once, nothing lost
    assert recovery < RECOVERY_BOUND, f"the partitioned host claimed again {recovery:.1f}s after the heal"
    assert partitioned.poll() is None
