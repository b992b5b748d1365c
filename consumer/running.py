"""Supervising one job: hand the payload to a ready job process, then watch it until it ends.

While it runs, one loop waits on everything that can end it: the process's answer, its death,
a lost lease or an operator's stop (from the lease thread), the timeout, the lease deadline,
and a shutdown signal. The outcome is returned; recording it is the consumer's business.

The kill deadline is enforced twice: by this loop, and by the helper, which the lease keeper
(its one owner, consumer/lease.py) tells the deadline before the payload goes out and after
every renewal, so a consumer that is stopped, hung or starved of the CPU cannot let its
algorithm run on past its lease.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from consumer.lease import LeaseKeeper
from consumer.logs import event
from consumer.messages import Answer, Payload
from consumer.processes import HasFileno, describe_exit, readable, wait_readable
from consumer.spares import JobProcess, Spares
from consumer.stopping import Shutdown, Waker
from pqueue import Job, LeaseLost, Settings, Status, StopRequested

if TYPE_CHECKING:
    from consumer.claim_ahead import ClaimAhead

log = logging.getLogger("consumer")

# After SIGTERM at the timeout, how long the algorithm may clean up before SIGKILL.
TERM_GRACE = 2.0
# After a job process closed its socket, how long to wait for the helper to say how it ended.
EXIT_REPORT_TIMEOUT = 2.0


class Ending(StrEnum):
    """How a run ended, which decides what the consumer records."""

    SUCCEEDED = "succeeded"  # record processed with the result
    FAILED = "failed"  # record crashed with the error
    TIMED_OUT = "timed_out"  # ran into the job timeout, killed: record crashed, timed out (no retry)
    REFUSED = "refused"  # the algorithm said the input can never succeed: manual_intervention, no retry
    STOPPED = "stopped"  # an operator's cancel or fail: record the requested status
    RELEASED = "released"  # shutdown grace ran out, or a second signal: give the job back, attempt not spent
    LEASE_LOST = "lease_lost"  # someone else owns the job now: record nothing
    RENEWAL_FAILED = "renewal_failed"  # the lease could not be renewed in time: algorithm killed


@dataclass(frozen=True)
class Outcome:
    """What happened to one run."""

    ending: Ending
    result: Any = None
    error: str | None = None
    target: Status | None = None
    lease_valid_until: float = math.inf  # monotonic; recording must be done before it


@dataclass(frozen=True)
class RunContext:
    """What every run of one consumer shares."""

    settings: Settings
    shutdown: Shutdown
    waker: Waker
    spares: Spares


@dataclass
class JobRun:
    """One job in one job process, supervised until it ends.

    `timeout` is the queue's job timeout (else PQ_JOB_TIMEOUT); `on_started` is told once the
    job process has the payload. `handed_over`: the job was held in its process, which the helper
    started after the job before it (`started` is when); no payload goes out. `ahead` (with
    PQ_CLAIM_AHEAD) holds the next job while this one runs."""

    job: Job
    process: JobProcess
    lease: LeaseKeeper
    context: RunContext
    timeout: float
    on_started: Callable[[], None] = lambda: None
    handed_over: bool = False
    ahead: ClaimAhead | None = None
    started: float = field(default_factory=time.monotonic)
    grace_until: float | None = None
    answered: bool = False  # the job process sent its result or error

    @property
    def spares(self) -> Spares:
        return self.context.spares

    def supervise(self) -> Outcome:
        """Run the job to its end and return the outcome; the job process group is killed after.

        The payload goes first: the next spare's fork, on_started, the log line and the lease
        thread (when its first renewal is due; the lease counts from the claim) all come after it.
        """
        outcome: Outcome | None = None
        try:
            if self.handed_over:
                assert self.process.began is not None, "a handed-over job said it began"
                self.started = self.process.began
            elif time.monotonic() >= self.lease.valid_until:  # the claim's lease went by before the start
                return self._not_started()
            self.lease.arm(self._tell_deadline, hard_stop=self.started + self.timeout + TERM_GRACE)
            sent = self.handed_over or self._send_payload()
            if sent:
                self.spares.fork_ahead()
                self.on_started()
                attempt = f"{self.job.attempts}/{self.job.max_attempts}"
                event(log, "running", self.job.id, pid=self.process.pid, attempt=attempt)
            outcome = self._watch() if sent else self._died()
        finally:
            self.lease.stop()
            if self.ahead is not None:  # before the kill: the helper starts a held job once this one is reaped
                self.ahead.before_end(outcome)
            self.spares.kill(self.process)  # it answered, or it is stuck: its group dies now
            if not self.answered:
                self.spares.reap(self.process)  # else reaped before the next job is handed out
        return Outcome(outcome.ending, outcome.result, outcome.error, outcome.target, self.lease.valid_until)

    def _not_started(self) -> Outcome:
        """Give the job back unrun: its lease ran out between the claim and the handoff (this
        process was stopped or starved meanwhile), so starting it could overlap a successor."""
        event(log, "lease_spent_before_start", self.job.id, level=logging.WARNING, pid=self.process.pid)
        reason = "its lease ran out before the algorithm could start"
        return Outcome(Ending.RELEASED, error=reason, lease_valid_until=self.lease.valid_until)

    def _tell_deadline(self, when: float) -> bool:
        return self.spares.set_deadline(self.process, when)

    def _send_payload(self) -> bool:
        """False when the job process died between saying it was ready and now."""
        try:
            self.process.channel.send(Payload(self.job.id, self.job.payload))
        except OSError:
            return False
        return True

    def _watch(self) -> Outcome:
        timeout_at = self.started + self.timeout
        touched = False  # said we are alive (when due): after the hold, whose time it could take
        while True:
            self.context.waker.drain()  # before looking at the flags, so a wake-up after the look is kept
            ending = self._check(timeout_at)
            if ending is not None:
                if not touched:
                    self.lease.touch()
                return ending
            renew_at = self.lease.start_when_due(time.monotonic())
            deadlines = [timeout_at, self.lease.valid_until, self.grace_until or math.inf, renew_at]
            watched: list[HasFileno] = [self.process.channel, self.context.waker, *self.spares.handles()]
            if self.ahead is not None:
                self.ahead.hold(self.job, self.process, self.lease)
                watched += self.ahead.handles(self.job)
            if not touched:
                self.lease.touch()
                touched = True
            remaining = max(0.0, min(deadlines) - time.monotonic())
            wait_readable(watched, remaining)
            self.spares.pump()

    def _check(self, timeout_at: float) -> Outcome | None:
        """Whatever ended the run, in order of precedence; None while it goes on."""
        answer = self._answer()
        if answer is not None:
            return answer
        problem = self.lease.problem
        if isinstance(problem, StopRequested):
            event(log, "stop_requested", self.job.id, target=problem.target, reason=problem.reason)
            return Outcome(Ending.STOPPED, error=problem.reason, target=Status(problem.target))
        if isinstance(problem, LeaseLost):
            event(log, "lease_lost", self.job.id, level=logging.WARNING, status=problem.status)
            return Outcome(Ending.LEASE_LOST)
        now = time.monotonic()
        if now >= self.lease.valid_until:
            return self._renewal_failed(now)
        if self.context.shutdown.immediate:
            event(log, "stopping_now", self.job.id, level=logging.WARNING, note="job killed and given back")
            return Outcome(Ending.RELEASED, error="stopped at once by a second stop signal; attempt not spent")
        if self.context.shutdown.requested and self.grace_until is None:
            if self.ahead is not None:
                self.ahead.drop("a stop was requested")  # first: the held job must not start
            self.grace_until = now + self.context.settings.shutdown_grace
            event(
                log,
                "shutdown_requested",
                self.job.id,
                signal=self.context.shutdown.signal_name,
                grace=self.context.settings.shutdown_grace,
            )
        if self.grace_until is not None and now >= self.grace_until:
            event(log, "grace_over", self.job.id, level=logging.WARNING, grace=self.context.settings.shutdown_grace)
            return Outcome(Ending.RELEASED)
        if now >= timeout_at:
            return self._timed_out()
        return None

    def _answer(self) -> Outcome | None:
        """The job process's result or error, or its death; None while it runs."""
        try:
            if readable(self.process.channel):
                answer: Answer = self.process.channel.recv()
                self.answered = True
                if answer.kind == "ok":
                    return Outcome(Ending.SUCCEEDED, result=json.loads(answer.text))
                return Outcome(Ending.REFUSED if answer.kind == "permanent" else Ending.FAILED, error=answer.text)
        except (EOFError, OSError):
            return self._died()
        if self.process.exited or not self.spares.helper_alive:
            return self._died()
        return None

    def _died(self) -> Outcome:
        """The job process ended without an answer: say how (exit code or signal)."""
        self.lease.start_now()  # the wait below may outlast the first renewal
        deadline = time.monotonic() + EXIT_REPORT_TIMEOUT
        while not self.process.exited and self.spares.helper_alive and time.monotonic() < deadline:
            wait_readable(self.spares.handles(), deadline - time.monotonic())
            self.spares.pump()
        if self.process.overdue is not None:
            return self._killed_at_deadline(self.process.overdue)
        if self.process.wait_status is not None:
            how = describe_exit(self.process.wait_status)
        elif not self.spares.helper_alive:
            how = "was lost (the helper process that forked it died)"
        else:
            how = "closed its connection without an answer"
        return Outcome(Ending.FAILED, error=f"AlgorithmProcessDied: the algorithm process {how} without a result")

    def _timed_out(self) -> Outcome:
        """SIGTERM the group, SIGKILL it after a short grace; the attempt fails."""
        timeout = self.timeout
        event(
            log,
            "timeout",
            self.job.id,
            level=logging.WARNING,
            seconds=timeout,
            pid=self.process.pid,
            note=f"`pq queue set {self.job.queue} --timeout SECONDS` changes the queue's job timeout",
        )
        self.lease.start_now()  # the wait below may outlast the first renewal
        self.spares.kill(self.process, politely=True)
        deadline = time.monotonic() + TERM_GRACE
        while not self.process.exited and time.monotonic() < min(deadline, self.lease.valid_until):
            wait_readable(self.spares.handles(), max(0.0, min(deadline, self.lease.valid_until) - time.monotonic()))
            self.spares.pump()
        return self._timeout_outcome()

    def _timeout_outcome(self) -> Outcome:
        # The error goes to the partner too (callback, GET /jobs/{id}): what happened, in their words.
        return Outcome(
            Ending.TIMED_OUT,
            error=f"JobTimeout: the job ran longer than its time limit of {self.timeout:g}s and was stopped",
        )

    def _killed_at_deadline(self, late: float) -> Outcome:
        """The helper killed the job at its deadline (this process was stopped, hung or slow)."""
        event(log, "killed_at_deadline", self.job.id, level=logging.ERROR, pid=self.process.pid, late=round(late, 3))
        now = time.monotonic()
        if now >= self.lease.valid_until:
            return self._renewal_failed(now)
        return self._timeout_outcome()

    def _renewal_failed(self, now: float) -> Outcome:
        since = now - self.lease.renewed_at
        event(
            log,
            "lease_expiring",
            self.job.id,
            level=logging.ERROR,
            unrenewed_for=round(since, 3),
            action="algorithm killed; claiming stops until the database answers",
        )
        return Outcome(
            Ending.RENEWAL_FAILED,
            error=f"LeaseNotRenewed: the lease could not be renewed for {since:.1f}s; the algorithm was stopped",
        )
