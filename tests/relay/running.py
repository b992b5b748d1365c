"""The relay tests' programs and checks: pq-relay and sample agents started the one way
(tests/programs.py), the jobs' counts, and the rule that no claim reaches two agents."""

from __future__ import annotations

import sys
from typing import Any

from pqueue import PersistentQ, Status
from tests.programs import Process, Programs
from tests.relay.records import read_records

# The relay's lease must outlast an agent's start on a loaded machine; tests that need rescue
# shorten it. A tiny PQ_LEASE_SECONDS keeps rescue's safety margin small.
FAST = {
    "PQ_RELAY_LEASE_SECONDS": "30",
    "PQ_LEASE_SECONDS": "1",
    "PQ_RETRY_BACKOFF_SECONDS": "0",
    "PQ_LOG_LEVEL": "INFO",
}


class RelayPrograms(Programs):
    """Starts pq-relay and sample agents; everything started is stopped at the end of the test."""

    def relay(self, env: dict[str, str], *args: str, log: str = "relay.log") -> Process:
        return self.start("pq-relay", *args, env=env, log=log)

    def agent(self, env: dict[str, str], name: str, *args: str) -> Process:
        record = self.logs / f"{name}.jsonl"
        command = [sys.executable, "-m", "relay.agent", "--name", name, "--record", str(record)]
        command += ["--queue", env["PQ_RELAY_QUEUE"], "--amqp-url", env["PQ_AMQP_URL"], *args]
        return self.start(command, env=env, log=f"{name}.log")

    def agent_ready(self, name: str) -> bool:
        return "consuming" in self.log(f"{name}.log")

    def log(self, name: str = "relay.log") -> str:
        return super().log(name)

    def records(self) -> list[dict[str, Any]]:
        """Every agent's start and finish lines, in time order."""
        return read_records(self.logs)


def counts(store: PersistentQ, queue: str) -> dict[str, int]:
    """Jobs of the queue by status."""
    return store.stats().counts.get(queue, {})


def all_final(store: PersistentQ, queue: str, total: int) -> bool:
    by_status = counts(store, queue)
    finished = sum(by_status.get(s.value, 0) for s in (Status.PROCESSED, Status.MANUAL_INTERVENTION))
    return finished == total


def assert_no_overlapping_runs(records: list[dict[str, Any]]) -> None:
    """Each claim (job id, lease id) reached an agent once, and no job started on an agent while
    an earlier copy of it was still being worked on."""
    seen: set[tuple[int, int]] = set()
    running: set[int] = set()
    for line in records:
        job_id, lease_id = line["job_id"], line["lease_id"]
        if line["event"] == "start":
            assert (job_id, lease_id) not in seen, f"job {job_id} lease {lease_id} reached an agent twice"
            assert job_id not in running, f"job {job_id} ran on two agents at once"
            seen.add((job_id, lease_id))
            running.add(job_id)
        else:
            running.discard(job_id)
