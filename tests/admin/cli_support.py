"""Helpers for the `pq` tests: reading results, and jobs put into every state through the library."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import Result

from pqueue import Job, PersistentQ

Pq = Callable[..., Result]
# For tests where the backend does not matter: run them on SQLite only, to keep the suite quick.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def as_json(result: Result) -> Any:
    """The command's stdout parsed as JSON (it must be nothing but JSON)."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_error_line(result: Result) -> str:
    """The single line a failed command writes on stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@dataclass
class Jobs:
    """Puts jobs into a chosen state through the library, the way producer and consumer would."""

    store: PersistentQ

    def waiting(self, payload: Any = None, **options: Any) -> int:
        return self.store.put_item({"n": 1} if payload is None else payload, **options)

    def running(self, payload: Any = None, *, lease_seconds: float | None = None, **options: Any) -> Job:
        """Put and claim a job (make waiting jobs of the same queue after this one)."""
        job_id = self.waiting(payload, **options)
        job = self.store.get_item("worker-1", queue=options.get("queue"), lease_seconds=lease_seconds)
        assert job is not None and job.id == job_id, "claimed another job than the one just put"
        return job

    def held(self, payload: Any = None, **options: Any) -> tuple[Job, int]:
        """A running job and a waiting one its consumer holds to start right after it
        (PQ_CLAIM_AHEAD): (the running job, the held job's id)."""
        running = self.running(**options)
        job_id = self.waiting(payload, **options)
        held = self.store.hold_next(
            "worker-1", behind_job=running.id, behind_lease=running.lease_id, queue=options.get("queue")
        )
        assert held is not None and held.id == job_id, "held another job than the one just put"
        return running, job_id

    def processed(self, payload: Any = None, result: Any = None, **options: Any) -> int:
        job = self.running(payload, **options)
        self.store.update_status(job.id, "processed", lease_id=job.lease_id, result=result or {"ok": True})
        return job.id

    def crashed(self, payload: Any = None, error: str = "ValueError: boom", **options: Any) -> int:
        job = self.running(payload, **options)
        self.store.update_status(job.id, "crashed", lease_id=job.lease_id, error=error)
        return job.id

    def manual(self, payload: Any = None, error: str = "ValueError: boom", **options: Any) -> int:
        """A job that crashed on its last attempt: manual_intervention with its error."""
        return self.crashed(payload, error=error, max_attempts=1, **options)

    def cancelled(self, payload: Any = None, **options: Any) -> int:
        job_id = self.waiting(payload, **options)
        self.store.cancel(job_id, actor="test")
        return job_id
