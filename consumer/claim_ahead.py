"""Claiming ahead (PQ_CLAIM_AHEAD): the seat's next job waits, held, in a ready job process and
starts the moment the running job's process is gone, without a word from this process.

While job N runs (lease L) and a spare job process S is ready, `hold` claims N+1 behind L
(`hold_next`: N+1 stays waiting, its attempt uncounted, and no claim takes it while L runs),
hands N+1's payload to S held, has N's lease keeper own S's kill deadline (L's end), and tells
the helper to arm S's gate (`StartAfter`): S starts by itself the moment the kernel says N's
process has ended, before that deadline, and says `Began` first. At N's end `hand_over` records
N's outcome and N+1's start in one transaction (`finish_and_start`); N+1 then runs on in S
under its own lease (`HandedOver`, run by the consumer's loop like any job).

The held job is one value, `Held`, with one way in (`hold`) and two ways out: `hand_over`, and
`drop`. Once armed, S may begin at any moment N ends, so a drop kills S first, waits until it is
gone, and only then reads whether it said `Began` (its word is final once it is gone):
- it never began: the database needs no word; the hold lapses by itself once L is no longer a
  running job's lease, and N+1 waits again with its attempt unspent (claimed next, never held
  again: a lapsed hold may also be one whose consumer died after N+1 began, docs/architecture.md,
  the attempt rule);
- it began (N ended just before the drop): the run was the seat's, so it is never lost in
  silence. `hand_over` records its start with N's outcome, then gives it back (`HandedOver.cut`:
  released, attempt not spent, the reason in its event); when that cannot be written (N's
  lease lost or not renewed, the database away, N+1 cancelled meanwhile) the run is logged as
  unrecorded (`held_run_unrecorded`): it ran within N's kill deadline, and N+1 waits again.

Why the licence holds (docs/architecture.md, "The seat's hand-off"): S runs only while a row
counts its seat, N's (under L) or N+1's (once its start is committed).
- Until N+1's start is committed, S's kill deadline is L's end, pushed by N's lease keeper after
  every renewal: a consumer stopped, cut off or killed after N's exit has S killed before a
  rescuer can free N's seat.
- N's seat is never freed while S may still run: S is dropped (killed and gone) before N's
  outcome is written alone and before N's process is killed when N's end is not recorded (a
  lost lease, a failed renewal, a release); a stop request drops S at once; and when the held
  job can no longer start, `finish_and_start` writes nothing (HoldGone), so S is dropped first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from consumer.channel import Channel
from consumer.lease import LeaseKeeper
from consumer.logs import event
from consumer.messages import Payload
from consumer.recording import RECORDED, Recorder
from consumer.running import Outcome
from consumer.spares import JobProcess, Spares
from consumer.stopping import Shutdown
from pqueue import Job, PQError, WorkQueue

log = logging.getLogger("consumer")

# How long, at N's end, to wait for S's word that it began (it says so as soon as N's process has
# ended; a stopped S says nothing, and is then dropped).
STARTED_WAIT = 2.0


@dataclass
class Held:
    """The seat's next job, held behind the running job's lease, its payload waiting in `process`."""

    job: Job
    process: JobProcess
    behind: Job  # the running job whose lease it is held behind
    cut: str | None = None  # why it was killed after it had begun (its process is gone)


@dataclass
class HandedOver:
    """The held job, started in the database with the last outcome and running in its process
    (the helper opened its gate): the consumer's loop supervises it next, sending no payload.

    `notes` are the last outcome's log line and delivery wake-up and this job's claim line, told
    once this job is under supervision."""

    job: Job
    process: JobProcess
    claimed_at: float  # monotonic, when its start was sent: its lease counts from then
    notes: list[Callable[[], None]] = field(default_factory=list)
    cut: str | None = None  # it began and was killed at the hand-off, and why: to be given back

    def tell(self) -> None:
        """Tell the notes (once)."""
        notes, self.notes = self.notes, []
        for note in notes:
            note()

    def release(self, spares: Spares, recorder: Recorder) -> None:
        """Give the job back unfinished, its attempt not spent (a stop came before the loop ran
        it, or it was cut at the hand-off): its process is killed and gone first, so the seat is
        never freed under it."""
        self.tell()
        spares.kill(self.process)
        spares.reap(self.process)
        if self.cut is not None:
            recorder.release(self.job, f"killed at the hand-off just after it began ({self.cut}); attempt not spent")
        else:
            recorder.release(self.job, "stopped before its run was supervised; attempt not spent")


class ClaimAhead:
    """Holds one job ahead for this consumer's seat, and hands the seat over at the running job's end."""

    def __init__(
        self,
        store: WorkQueue,
        recorder: Recorder,
        spares: Spares,
        shutdown: Shutdown,
        *,
        worker_id: str,
        queue: str,
        lease_seconds: float,
        may_hold: Callable[[], bool] = lambda: True,
        after_hold: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.spares = spares
        self.shutdown = shutdown
        self.worker_id = worker_id
        self.queue = queue
        self.lease_seconds = lease_seconds
        self.may_hold = may_hold  # the consumer's word: not stopping, the database answering
        self.after_hold = after_hold  # the consumer's housekeeping that is due (a rescue), never before a hold
        self.held: Held | None = None
        self._tried_behind: tuple[int, int] | None = None  # the job and lease a hold was last tried behind

    # -- the way in --------------------------------------------------------------------------------

    def rehearse(self) -> None:
        """Prepare the hold and the hand-over's statements before the first job (changing
        nothing): the first hold is made while the first job runs, and their first build took
        longer than a short job (56 to 150 ms alone on a loaded machine, 271 ms once in a consumer,
        against about 10 ms after)."""
        try:
            self.store.rehearse_hand_off(self.queue)
        except PQError as exc:  # the first hold pays it then
            event(log, "rehearsal_failed", level=logging.WARNING, error=str(exc))

    def wanted(self, running: Job) -> bool:
        """Whether a hold is still to be tried behind this running job."""
        tried = self._tried_behind == (running.id, running.lease_id)  # once per run
        return self.held is None and not tried and not self.shutdown.requested

    def handles(self, running: Job) -> list[Channel]:
        """What a supervising loop also waits on while a hold is wanted: the spares not yet ready."""
        return self.spares.unready_channels() if self.wanted(running) else []

    def hold(self, running: Job, process: JobProcess, lease: LeaseKeeper) -> None:
        """Hold the next job behind the running one, once a spare is ready (tried once per run).

        The payload goes to the spare held; N's lease keeper then owns the spare's kill deadline
        (a Deadline goes to the helper at once); then the helper is told to start it after N."""
        if not self.wanted(running) or not self.spares.ready(0) or not self.may_hold():
            return
        self._tried_behind = (running.id, running.lease_id)
        try:
            self._hold(running, process, lease)
        finally:
            self.after_hold()

    def _hold(self, running: Job, process: JobProcess, lease: LeaseKeeper) -> None:
        try:
            job = self.store.hold_next(
                self.worker_id, behind_job=running.id, behind_lease=running.lease_id, queue=self.queue
            )
        except PQError as exc:  # the running job's end then claims as without a hold
            event(log, "hold_failed", running.id, level=logging.WARNING, error=str(exc))
            return
        if job is None:
            return
        spare = self.spares.take()
        spare.held = True
        self.held = Held(job, spare, running)
        try:
            spare.channel.send(Payload(job.id, job.payload, held=True))
        except OSError:  # it died meanwhile: the hold lapses with N's lease, N's end claims anew
            self.drop("its job process died before it had the payload")
            return
        lease.cover(partial(self.spares.set_deadline, spare))
        self.spares.start_after(spare, process)
        self.spares.expect_back_to_back(True)
        self.spares.fork_ahead()
        event(log, "held", job.id, behind=running.id, pid=spare.pid)

    # -- the ways out ------------------------------------------------------------------------------

    def drop(self, why: str) -> None:
        """Kill the held job's process and wait until it is gone. Unless it had begun, the hold
        lapses in the database by itself once the running job's lease ends, and the job waits
        again, its attempt unspent; a held job that had begun stays held, cut, for `hand_over`
        to record."""
        held = self.held
        if held is None or held.cut is not None:
            return
        if self.spares.end_held(held.process) is None:
            self.held = None
            event(log, "hold_dropped", held.job.id, reason=why)
            return
        held.cut = why
        event(log, "held_run_cut", held.job.id, level=logging.WARNING, reason=why, pid=held.process.pid)

    def before_end(self, outcome: Outcome | None) -> None:
        """Called before the running job's process is killed: the held job starts the moment that
        process has ended, so drop it now unless the outcome hands the seat over."""
        if self.held is None:
            return
        if self.shutdown.requested:
            self.drop("a stop was requested")
        elif outcome is None or outcome.ending not in RECORDED:
            self.drop(f"the running job ended {outcome.ending.value if outcome else 'in an error'}")

    def hand_over(self, done: Job, outcome: Outcome, seconds: float) -> HandedOver | None:
        """At the running job's end: record its outcome and start the held job in one transaction.

        None when there was nothing to hand over or it could not be done; the held job's process
        is then gone, and the outcome is still to be written (alone, or with a claim)."""
        held = self.held
        if held is None:
            return None
        if self.shutdown.requested:
            self.drop("a stop was requested")
        elif held.cut is None and not self.spares.wait_started(
            held.process, min(STARTED_WAIT, outcome.lease_valid_until - time.monotonic())
        ):
            self.drop("it did not begin in time")
        if self.held is None:  # dropped before it began
            return None
        # It began. Until its start is committed it runs by N's kill deadline: its start is sent
        # before it or not at all (so the database's view never trails the start by more).
        claimed_at = time.monotonic()
        written = None
        if claimed_at < outcome.lease_valid_until:
            written = self.recorder.record_and_start(done, outcome, held=held.job, lease_seconds=self.lease_seconds)
        if written is None:
            why = held.cut or "its start could not be recorded"
            if held.cut is None:
                self.spares.end_held(held.process)
            self.held = None
            event(
                log,
                "held_run_unrecorded",
                held.job.id,
                level=logging.ERROR,
                reason=why,
                note="it ran within the running job's kill deadline and waits again, attempt not spent",
            )
            return None
        self.held = None
        recorded, started = written
        notes: list[Callable[[], None]] = [
            partial(self.recorder.finished, recorded, seconds),
            partial(
                event,
                log,
                "started_held",
                started.id,
                attempt=f"{started.attempts}/{started.max_attempts}",
                lease=started.lease_id,
                pid=held.process.pid,
            ),
        ]
        return HandedOver(started, held.process, claimed_at, notes, cut=held.cut)
