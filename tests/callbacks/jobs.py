"""A finished job with a callback, as the callback tests start from."""

from __future__ import annotations

from typing import Any

from pqueue import Job, PersistentQ


def finish(store: PersistentQ, callback_url: str, result: Any = None, payload: Any = None) -> Job:
    """Submit a job with a callback and record it processed, as a consumer would."""
    job_id = store.put_item(payload if payload is not None else {"n": 1}, callback_url=callback_url)
    claimed = store.get_item("worker-1")
    assert claimed is not None and claimed.id == job_id
    return store.update_status(job_id, "processed", lease_id=claimed.lease_id, result=result)
