"""The producer SIGKILLed again and again while partners post: acknowledged means stored.

Four clients post jobs over HTTP without pause. Each round waits until the intake, just
restarted on the same port (as Supervisor would), has acknowledged a random number of new jobs,
then kills its whole process group with SIGKILL, at whatever point its requests are: read,
waiting for the group commit, committed but not yet answered. Every id a client got a 202 for
must be in the database with that client's payload; a request cut by the kill has no answer and
may or may not be stored (the partner retries with an idempotency key to learn which).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pqueue import PersistentQ
from tests.faults.intake import start_producer
from tests.faults.load import HttpLoad
from tests.faults.stored import all_jobs
from tests.programs import StartProgram
from tests.support import free_port

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]

KILLS = 5


def test_producer_kill_storm__every_acknowledged_job_is_stored(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    q = make_queue()  # the schema exists: each start of the intake only opens the database
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    producer = start_producer(start_program, port)
    restarts: list[float] = []
    with HttpLoad(url, payload=lambda n: {"n": n}, clients=4, pause=0.0, seconds=120) as load:
        for _ in range(KILLS):
            up_at = time.monotonic()
            # The kill lands at a different moment of the traffic each time.
            load.wait_acknowledged(random.randint(20, 200), since=up_at)
            os.killpg(producer.pid, signal.SIGKILL)
            producer.wait(10)
            killed_at = time.monotonic()
            producer = start_producer(start_program, port)
            restarts.append(time.monotonic() - killed_at)
        load.wait_acknowledged(20, since=time.monotonic())  # a last burst, to the last intake
    answers = load.answers

    acknowledged = load.acknowledged()
    stored = {job_id: job.payload["n"] for job_id, job in all_jobs(q).items()}
    lost = sorted(job_id for job_id, n in acknowledged.items() if stored.get(job_id) != n)
    unanswered = [a for a in answers if a.status is None]
    refused = [a for a in unanswered if str(a.error).startswith("ConnectError")]  # while it was down
    cut = [a for a in unanswered if not str(a.error).startswith("ConnectError")]  # sent, then it died
    unanswered_but_stored = len(stored) - len(acknowledged)
    print(
        f"figures: {KILLS} SIGKILLs, {len(answers)} requests, {len(acknowledged)} acknowledged, "
        f"lost {len(lost)}; {len(cut)} cut by a kill ({unanswered_but_stored} of them stored all the same), "
        f"{len(refused)} refused while it was down; "
        f"restart to healthy {min(restarts):.1f}-{max(restarts):.1f}s"
    )
    assert not lost, f"acknowledged but not stored: {lost[:20]}"
    assert {a.status for a in answers} <= {202, None}, sorted({a.status for a in answers}, key=str)
    assert len(set(stored.values())) == len(stored)  # no request was stored twice
    assert producer.poll() is None
