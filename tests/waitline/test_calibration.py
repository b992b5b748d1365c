"""Calibration: the prediction recorded when each job was submitted, against when it started.

One seat, run times from a fixed distribution (drawn with a fixed seed, the clock moved by the
store's offset): at least 80 % of jobs start before their predicted p90, every job before its
`latest`, and `calibration()` (what /metrics and `pq stats` show) says so."""

from __future__ import annotations

import random
from datetime import timedelta

from pqueue import PersistentQ

ROUNDS, JOBS_PER_ROUND = 6, 8


def run_one(q: PersistentQ, seconds: float) -> None:
    job = q.get_item("w")
    assert job is not None
    q.clock_offset += timedelta(seconds=seconds)
    q.update_status(job.id, "processed", lease_id=job.lease_id)


def test_jobs_start_before_their_p90_mostly_and_before_latest_always(q: PersistentQ) -> None:
    rng = random.Random(25)

    def draw() -> float:
        return rng.lognormvariate(3.0, 0.6)  # median 20 s, a long tail

    for _ in range(40):  # the history the predictions draw from
        q.put_item({"seed": True})
        run_one(q, draw())
    q.register_worker("consumer-1", kind="consumer", queue=q.settings.queue, host="here", pid=1)
    predicted: dict[int, tuple[object, object]] = {}
    for _ in range(ROUNDS):
        ids = [q.put_item({"n": n}) for n in range(JOBS_PER_ROUND)]
        assert q.record_predictions(limit=100) == JOBS_PER_ROUND
        assert q.record_predictions(limit=100) == 0  # recorded once
        for job_id in ids:
            wait = q.wait(job_id)
            assert wait is not None and wait.eta_start is not None
            predicted[job_id] = (wait.eta_start.p90, wait.eta_start.latest)
        for _ in ids:
            q.register_worker("consumer-1", kind="consumer", queue=q.settings.queue, host="here", pid=1)
            run_one(q, draw())
    started = {job_id: q.get_job(job_id).started_at for job_id in predicted}
    before_p90 = [job_id for job_id, (p90, _) in predicted.items() if started[job_id] <= p90]  # type: ignore[operator]
    assert all(started[job_id] <= latest for job_id, (_, latest) in predicted.items())  # type: ignore[operator]
    assert len(before_p90) >= 0.8 * len(predicted)
    calibration = {c.queue: c for c in q.calibration()}[q.settings.queue]
    assert calibration.started == ROUNDS * JOBS_PER_ROUND
    assert calibration.before_p90 >= 0.8 and calibration.before_latest == 1.0
