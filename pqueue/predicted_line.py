"""One queue's predicted line, computed once from a snapshot and shared by every wait asked of the
queue until the next snapshot (pqueue/wait_book.py keeps it).

Simulating a queue's line costs tens of milliseconds with thousands of jobs waiting; answering a
job from a line already simulated is a dictionary look-up. The line is the same simulation the
single-job forecast (pqueue/waitline.py `forecast`) runs, without stopping at the job asked about,
and its draws cover every start up to DRAWN_STARTS, so a job in it gets the answer it would get
alone. A job the line cannot place (submitted after the snapshot into a short line, scheduled,
or changed since) is answered by `extended`: the snapshot with the job in it, simulated for it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace

from pqueue import waitline
from pqueue.waitline import RunningRun, RunTimes, Simulation, Snapshot, Wait, WaitingJob


@dataclass
class Line:
    """A queue's snapshot, its simulation, the draws of its first starts, and look-ups into them."""

    snapshot: Snapshot
    times: dict[str, RunTimes]
    simulation: Simulation
    index_of: dict[int, int]  # job id -> its index among the starts
    starts_of: dict[str, list[int]]  # partner -> the indices of its starts, in order
    samples: dict[int, list[float]]  # index -> its drawn starts, sorted (the first DRAWN_STARTS)
    variance_before: list[float]  # index -> the summed run-time variance of the starts before it
    entries: dict[int, WaitingJob]  # the waiting jobs read, by id
    running_ids: frozenset[int]
    own_ahead: dict[int, int] = field(default_factory=dict)  # counted for jobs past their line

    def running(self, job_id: int) -> RunningRun | None:
        return next((run for run in self.snapshot.running if run.id == job_id), None)

    def knows(self, job: WaitingJob) -> bool:
        """Whether the job is as the snapshot read it (not running then, not changed since)."""
        if job.id in self.running_ids:
            return False
        entry = self.entries.get(job.id)
        return entry is None or entry == job

    def wait(self, job: WaitingJob, own_ahead: int | None, due_now: bool = False) -> Wait | None:
        """The job's wait from the line, or None when the line cannot place it (see the module).
        `own_ahead`: how many of its partner's jobs wait before it, for a job past its partner's
        line in the snapshot (None: not counted); `due_now`: it is due by the database's clock
        now (a job submitted after the snapshot comes due after the snapshot's moment)."""
        placed = self.placed(job, own_ahead, due_now)
        if placed is None:
            return None
        return waitline.wait_of(self.snapshot, self.times, self.simulation, job, placed, self._percentiles(placed))

    def placed(self, job: WaitingJob, own_ahead: int | None, due_now: bool = False) -> waitline.Placed | None:
        snapshot = self.snapshot
        if job.id in self.entries:
            if not self.knows(job):
                return None
            index = self.index_of.get(job.id)
            if index is None:  # past the simulation's budget
                return waitline.place(self.simulation, job, snapshot, None)
            own = bisect.bisect_left(self.starts_of[job.partner], index)
            return waitline.Placed(job.id, index, own, index - own, self.simulation.starts[index].at, True)
        line = snapshot.lines.get(job.partner, [])
        past_line = job.partner in snapshot.beyond and (not line or _before(line[-1], job))
        if job.id in self.running_ids or not past_line or not (due_now or job.due_in <= 0) or own_ahead is None:
            return None
        # Past a full line the simulation takes the partner's further jobs as due now, in claim
        # order: this job is the partner's start number `own_ahead`, when the budget reached it.
        own_ahead = max(own_ahead, len(line))
        mine = self.starts_of.get(job.partner, [])
        if own_ahead < len(mine):
            index = mine[own_ahead]
            return waitline.Placed(job.id, index, own_ahead, index - own_ahead, self.simulation.starts[index].at, True)
        return waitline.place(self.simulation, job, snapshot, own_ahead)

    def _percentiles(self, placed: waitline.Placed) -> tuple[float, float] | None:
        """As waitline's _start_percentiles gives them for the one job, from the draws kept."""
        if not any(model.known for model in self.times.values()):
            return None
        if placed.index is not None and placed.index in self.samples:
            values = self.samples[placed.index]
            return waitline.quantile(values, 0.5), waitline.quantile(values, 0.9)
        ahead = placed.index if placed.index is not None else len(self.simulation.starts)
        spread = waitline.Z90 * self.variance_before[ahead] ** 0.5 / max(1, self.snapshot.seats)
        handoffs = waitline.HANDOFF_SECONDS * (placed.own + placed.others + 1)
        return placed.start + handoffs, placed.start + handoffs + spread

    def running_wait(self, run: RunningRun, attempts: int, max_attempts: int) -> Wait:
        return waitline.forecast_running(self.snapshot, run, attempts, max_attempts, self.times)


def line_of(snapshot: Snapshot) -> Line:
    """Simulate the snapshot's line to the simulation's budget and draw its first starts."""
    times = waitline.models(snapshot)
    simulation = waitline.simulate(snapshot, times)
    starts = simulation.starts
    starts_of: dict[str, list[int]] = {}
    variance_before = [0.0]
    for index, start in enumerate(starts):
        starts_of.setdefault(start.partner, []).append(index)
        variance_before.append(variance_before[-1] + waitline.model_for(times, start.partner, start.kind).variance)
    samples: dict[int, list[float]] = {}
    if any(model.known for model in times.values()):
        drawn = set(range(min(len(starts), waitline.DRAWN_STARTS + 1)))
        found = waitline.drawn_starts(snapshot, times, starts, drawn)
        samples = {index: sorted(values) for index, values in found.items()}
    return Line(
        snapshot=snapshot,
        times=times,
        simulation=simulation,
        index_of={start.job_id: index for index, start in enumerate(starts) if start.job_id >= 0},
        starts_of=starts_of,
        samples=samples,
        variance_before=variance_before,
        entries={
            job.id: job for job in [*(j for line in snapshot.lines.values() for j in line), *snapshot.held.values()]
        },
        running_ids=frozenset(run.id for run in snapshot.running),
    )


def extended(snapshot: Snapshot, jobs: list[WaitingJob]) -> Snapshot:
    """The snapshot with these jobs in their partners' lines as they are now (a job changed since
    replaces its entry; a new one goes in claim order), except past a full line, whose further
    jobs the simulation already takes as more of the same."""
    lines = {name: list(line) for name, line in snapshot.lines.items()}
    for job in jobs:
        line = [entry for entry in lines.get(job.partner, []) if entry.id != job.id]
        full = job.partner in snapshot.beyond
        if full and line and _before(line[-1], job):
            lines[job.partner] = line
            continue
        line.append(job)
        line.sort(key=lambda entry: (entry.priority, entry.id))
        lines[job.partner] = line
    return replace(snapshot, lines=lines)


def _before(entry: WaitingJob, job: WaitingJob) -> bool:
    """Whether `entry` comes before `job` in its partner's claim order (priority, then id)."""
    return (entry.priority, entry.id) < (job.priority, job.id)
