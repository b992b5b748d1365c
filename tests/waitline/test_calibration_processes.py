"""Calibration on a real run: one seat served by a real `pq-consumer` process whose algorithm
sleeps for durations drawn from a fixed distribution (a fixed seed, a long tail). What was
predicted for each job a moment after it was submitted (record_predictions, as the intake's
recorder does) is held against when the consumer really started it: at least 80 % start by their
p90, every one by its `latest`, and calibration() (what /metrics and `pq stats` show) says so.
Both backends."""

from __future__ import annotations

import math
import random
from functools import partial
from pathlib import Path

import pytest

from pqueue import NewJob, PersistentQ
from tests.programs import Programs, stop_program
from tests.support import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]

HISTORY, ROUNDS, JOBS_PER_ROUND = 30, 5, 8


def processed(q: PersistentQ, count: int) -> bool:
    return q.count_items(status="processed") >= count


def test_real_consumer_starts_jobs_by_their_p90_mostly_and_by_latest_always(
    q: PersistentQ, db_env: dict[str, str], programs: Programs, tmp_path: Path
) -> None:
    rng = random.Random(25)

    def jobs(count: int) -> list[NewJob]:  # median 0.3 s, one in ten past 0.57 s
        return [NewJob({"seconds": min(2.0, rng.lognormvariate(math.log(0.3), 0.5))}) for _ in range(count)]

    env = {**db_env, "PQ_ALGORITHM": "tests.waitline.sleeper:run", "PQ_MAX_RUNNING": "1"}
    consumer = programs.start("pq-consumer", env=env, log="consumer.log")
    try:
        q.put_items(jobs(HISTORY))  # the history the predictions draw from
        wait_until(lambda: processed(q, HISTORY), timeout=120, what="the history to run")
        for round_ in range(1, ROUNDS + 1):
            q.put_items(jobs(JOBS_PER_ROUND))
            q.record_predictions(limit=100)  # those the consumer has not started yet
            wait_until(partial(processed, q, HISTORY + round_ * JOBS_PER_ROUND), timeout=120, what="a round")
    finally:
        stop_program(consumer)
    calibration = {c.queue: c for c in q.calibration()}[q.settings.queue]
    print(calibration)
    assert calibration.started >= ROUNDS * (JOBS_PER_ROUND - 2), "most jobs were predicted before they started"
    assert calibration.before_p90 >= 0.8, calibration
    assert calibration.before_latest == 1.0, calibration
