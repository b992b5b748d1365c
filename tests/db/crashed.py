"""Jobs an operator finds: one that crashed, and running it again, for the fail and cancel tests."""

from __future__ import annotations

from datetime import timedelta

from pqueue import Job, PersistentQ

TRACEBACK = "Traceback (most recent call last):\n  File \"iqr.py\", line 3, in run\nKeyError: 'vendor'"


def crashed(q: PersistentQ, error: str = TRACEBACK, **options: object) -> int:
    """A job whose one run crashed with `error`; its id."""
    job_id = q.put_item({"vendor": None}, **options)  # type: ignore[arg-type]
    job = q.get_item("worker-1")
    assert job is not None and job.id == job_id
    q.update_status(job_id, "crashed", lease_id=job.lease_id, error=error)
    return job_id


def run_again(q: PersistentQ, job_id: int) -> Job:
    """Claim the crashed job again, its backoff waited out on the store's clock."""
    q.clock_offset += timedelta(seconds=60)
    run = q.get_item("worker-2")
    assert run is not None and run.id == job_id
    return run
