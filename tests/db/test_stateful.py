"""Random sequences of queue operations checked against a simple model (hypothesis stateful)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from pqueue import InvalidTransition, Job, LeaseLost, PersistentQ, Status, StopRequested, lease_margin

SEATS = 2
# Leases and backoff are long and time moves in big steps, so the few real seconds an example
# takes never change what is due: hypothesis must see the same behaviour when it replays.
LEASE = 1000.0
BACKOFF = 100.0
MAX_ATTEMPTS = 2


@dataclass
class ModelJob:
    status: Status
    attempts: int = 0
    lease_id: int = 0
    run_after: datetime | None = None
    lease_expires: datetime | None = None
    stop: Status | None = None


def wipe(store: PersistentQ) -> None:
    """Empty every table between examples (one database per test keeps examples fast)."""
    with store.engine.begin() as conn:
        for table in ("pq_events", "pq_deliveries", "pq_jobs", "pq_queues", "pq_workers"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    store.clock_offset = timedelta(0)


class QueueMachine(RuleBasedStateMachine):
    store: PersistentQ

    def __init__(self) -> None:
        super().__init__()
        wipe(self.store)
        self.jobs: dict[int, ModelJob] = {}
        self.held: list[tuple[int, int]] = []  # (job id, lease id) that workers believe they hold

    # -- helpers --------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.store.now()

    def claimable(self) -> list[int]:
        now = self.now()
        return sorted(
            job_id
            for job_id, job in self.jobs.items()
            if job.status in (Status.UNPROCESSED, Status.CRASHED) and (job.run_after is None or job.run_after <= now)
        )

    def running(self) -> int:
        return sum(1 for job in self.jobs.values() if job.status == Status.UNDER_PROCESS)

    def sync_from(self, job_id: int) -> None:
        real = self.store.get_job(job_id)
        model = self.jobs[job_id]
        model.run_after, model.lease_expires = real.run_after, real.lease_expires_at

    # -- rules ----------------------------------------------------------------------------

    @rule(payload=st.integers())
    def put(self, payload: int) -> None:
        job_id = self.store.put_item(payload)
        self.jobs[job_id] = ModelJob(Status.UNPROCESSED)

    @rule()
    def claim(self) -> None:
        candidates = self.claimable()
        can_run = bool(candidates) and self.running() < SEATS
        self.check_claim(self.store.get_item("w"), candidates, can_run)

    def check_claim(self, job: Job | None, candidates: list[int], can_run: bool) -> None:
        if not can_run:
            assert job is None
            return
        assert job is not None and job.id == candidates[0]
        model = self.jobs[job.id]
        assert job.lease_id > model.lease_id, "each claim gets a larger lease"
        model.status, model.attempts, model.lease_id, model.stop = (
            Status.UNDER_PROCESS,
            model.attempts + 1,
            job.lease_id,
            None,
        )
        assert job.attempts == model.attempts
        self.sync_from(job.id)
        self.held.append((job.id, job.lease_id))

    @precondition(lambda self: self.held)
    @rule(
        index=st.integers(0, 100),
        outcome=st.sampled_from(["processed", "crashed", "release", "heartbeat", "processed+next", "crashed+next"]),
    )
    def worker_acts(self, index: int, outcome: str) -> None:
        job_id, lease_id = self.held[index % len(self.held)]
        model = self.jobs[job_id]
        valid = model.status == Status.UNDER_PROCESS and model.lease_id == lease_id
        chained = outcome.endswith("+next")  # finish_and_claim: the outcome, then the next claim
        outcome = outcome.removesuffix("+next")
        claimed: Job | None = None
        try:
            if outcome == "heartbeat":
                self.store.heartbeat(job_id, lease_id)
            elif outcome == "release":
                self.store.release(job_id, lease_id)
            elif chained:
                _, claimed = self.store.finish_and_claim(
                    job_id, outcome, lease_id=lease_id, worker_id="w", result=1, error="e"
                )
            else:
                self.store.update_status(job_id, outcome, lease_id=lease_id, result=1, error="e")
        except LeaseLost:
            assert not valid
            self.held.remove((job_id, lease_id))
            return
        except StopRequested:
            assert valid and model.stop is not None and outcome == "heartbeat"
            return
        assert valid
        if outcome == "heartbeat":
            self.sync_from(job_id)
            return
        self.held.remove((job_id, lease_id))
        if outcome == "release":
            model.status, model.attempts = Status.UNPROCESSED, model.attempts - 1
        elif outcome == "processed":
            model.status = Status.PROCESSED
        else:
            model.status = Status.CRASHED if model.attempts < MAX_ATTEMPTS else Status.MANUAL_INTERVENTION
        model.stop = None
        self.sync_from(job_id)
        if chained:
            candidates = self.claimable()
            self.check_claim(claimed, candidates, bool(candidates) and self.running() < SEATS)

    @precondition(lambda self: self.jobs)
    @rule(index=st.integers(0, 100), action=st.sampled_from(["requeue", "cancel", "fail"]))
    def operator_acts(self, index: int, action: str) -> None:
        job_id = sorted(self.jobs)[index % len(self.jobs)]
        model = self.jobs[job_id]
        allowed = {
            "requeue": (Status.CRASHED, Status.MANUAL_INTERVENTION, Status.CANCELLED),
            "cancel": (Status.UNPROCESSED, Status.CRASHED, Status.UNDER_PROCESS),
            "fail": tuple(s for s in Status if s != Status.PROCESSED),
        }[action]
        try:
            if action == "requeue":
                self.store.requeue(job_id)
            elif action == "cancel":
                self.store.cancel(job_id)
            else:
                self.store.fail(job_id, "operator")
        except InvalidTransition:
            assert model.status not in allowed
            return
        assert model.status in allowed
        target = {"requeue": Status.UNPROCESSED, "cancel": Status.CANCELLED, "fail": Status.MANUAL_INTERVENTION}[action]
        if model.status == Status.UNDER_PROCESS:
            model.stop = target  # the worker stops it at its next heartbeat
        else:
            model.status = target
            if action == "requeue":
                model.attempts = 0
        self.sync_from(job_id)

    @rule(seconds=st.sampled_from([30.0, 150.0, 400.0, 1500.0]))
    def advance_time(self, seconds: float) -> None:
        self.store.clock_offset += timedelta(seconds=seconds)

    @rule()
    def rescue(self) -> None:
        cutoff = self.now() - timedelta(seconds=lease_margin(LEASE))
        expected = {
            job_id
            for job_id, job in self.jobs.items()
            if job.status == Status.UNDER_PROCESS and job.lease_expires is not None and job.lease_expires < cutoff
        }
        moved = dict(self.store.rescue_expired())
        # Time passes between our reading of the clock and the rescue's: it may take a few more.
        assert expected <= set(moved)
        for job_id, status in moved.items():
            model = self.jobs[job_id]
            wanted = model.stop or (Status.CRASHED if model.attempts < MAX_ATTEMPTS else Status.MANUAL_INTERVENTION)
            assert status == wanted
            model.status, model.stop = status, None
            self.sync_from(job_id)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def statuses_match_model_and_nothing_is_lost(self) -> None:
        page = self.store.get_all_items(limit=1000)
        assert {job.id: job.status for job in page.items} == {i: m.status for i, m in self.jobs.items()}

    @invariant()
    def seats_never_exceeded(self) -> None:
        assert self.running() <= SEATS
        assert len(self.store.stats().running) == self.running()

    @invariant()
    def counts_add_up(self) -> None:
        stats = self.store.stats()
        assert sum(sum(by_status.values()) for by_status in stats.counts.values()) == len(self.jobs)

    @invariant()
    def event_log_replays_to_state(self) -> None:
        for job_id, model in self.jobs.items():
            timeline = self.store.events(job_id)
            state = None
            for event in timeline:
                assert event.from_status == state, f"job {job_id}: event from {event.from_status}, was {state}"
                state = event.to_status
            assert state == model.status


@pytest.mark.timeout(600)
def test_random_operations_match_model(make_queue: Callable[..., PersistentQ]) -> None:
    QueueMachine.store = make_queue(
        max_running=SEATS, lease_seconds=LEASE, max_attempts=MAX_ATTEMPTS, retry_backoff_seconds=BACKOFF
    )
    budget = settings(
        max_examples=40,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    run_state_machine_as_test(QueueMachine, settings=budget)
