"""The submitter's view of a waiting job: where it is in line, when it will start and finish, and
every reason it is not running now.

A forward simulation of the claim's own rule: `pick` is start-time fair queuing on seat-seconds
exactly as pqueue/sql/fair.py states it (a property test, tests/waitline/test_order.py, checks
that the order predicted is the order in which real claims then take the jobs). Run times come
from the queue's recent successful runs (`RunTimes`): the point simulation uses their means,
p50/p90 come from drawing them again and again along the predicted order (bootstrap), and
`latest` comes from the job timeout and attempt limits alone, with no statistics.

Everything here is pure Python over a `Snapshot` that one read transaction filled
(pqueue/sql/waitline.py), so two intake replicas reading the same database answer the same.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pqueue import backoff
from pqueue.states import Status

# The simulation's cost is bounded: at most this many partner looks (steps × partners with jobs).
LOOK_BUDGET = 50_000
MAX_STEPS = 2_000
# p50/p90 by drawing run times along the predicted order for at most this many starts; past them,
# a sum of means plus a normal spread.
DRAWN_STARTS = 200
DRAWS = 100
# A partner's own model needs this many runs, else the queue's is used (and confidence is low).
OWN_MODEL_MIN = 5
RUNS_PER_MODEL = 300
Z90 = 1.2816  # the standard normal's 90th percentile
# From a seat freeing (or a job coming due) to the next claim: a waiting consumer is woken by the
# commit, typically within this (added to every drawn start) ...
HANDOFF_SECONDS = 0.5
# ... and at the latest within this: an idle consumer looks again every second (consumer IDLE_WAIT),
# plus a claim on a loaded database (added to `latest` for every start up to the job's own).
HANDOFF_BOUND_SECONDS = 5.0
# Real claims never coincide: each comes after the last one's commit. The simulation's starts are
# this far apart, so a run started just now has held its seat a little by the next pick, and of
# two equally long runs started at one moment the first ends first, as they do for real.
TICK = 1e-6


# -- what one read transaction filled ----------------------------------------------------------


@dataclass(frozen=True)
class WaitingJob:
    """A waiting job as the claim sees it; due_in: seconds until its run_after (≤ 0: due)."""

    id: int
    partner: str
    priority: int
    status: Status
    attempts: int
    max_attempts: int
    due_in: float
    run_after: datetime | None = None
    kind: str | None = None  # the payload's "kind", when it names one: its own run-time model


@dataclass(frozen=True)
class RunningRun:
    """A running job: its partner, how long it has held the seat, whether its lease is live."""

    id: int
    partner: str
    elapsed: float
    healthy: bool
    kind: str | None = None


@dataclass(frozen=True)
class PartnerShare:
    """A partner's weight, its cap on running jobs and its tag in the queue (0 before any run)."""

    name: str
    weight: float
    max_running: int | None
    tag: float


@dataclass(frozen=True)
class Snapshot:
    """One queue as the claim would see it at `now` (the database's clock)."""

    now: datetime
    queue: str
    seats: int
    paused: bool
    paused_at: datetime | None
    paused_by: str | None
    vtime: float
    job_timeout: float
    retry_backoff: float
    max_attempts: int
    partners: dict[str, PartnerShare]
    running: list[RunningRun]
    lines: dict[str, list[WaitingJob]]  # each partner's first waiting jobs, in claim order
    beyond: dict[str, int]  # each partner's waiting jobs past its line
    servers: int  # live consumers or relays of the queue
    run_times: dict[str, list[float]]  # each partner's recent successful runs' seconds, newest first
    kind_run_times: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # by (partner, kind)
    used_share: dict[str, float] = field(default_factory=dict)  # share of the last day's seat time
    # Jobs a consumer holds (pqueue/sql/holds.py), by the running job each waits behind: it starts
    # in that job's seat the moment that job ends, with no pick (its fair share was charged when
    # it was held), and no claim takes it meanwhile; so it is in no partner's line.
    held: dict[int, WaitingJob] = field(default_factory=dict)

    def at(self, seconds: float) -> datetime:
        return self.now + timedelta(seconds=seconds)


# -- run times ---------------------------------------------------------------------------------


class RunTimes:
    """Observed run times of one partner in one queue (or the whole queue's): their mean, draws,
    and the remaining time of a run that has already lasted `elapsed` seconds. The mean and the
    variance are computed once: the simulation asks for them at every step."""

    def __init__(self, samples: Iterable[float], *, own: bool) -> None:
        self.samples = sorted(max(0.0, s) for s in samples)
        self.own = own  # the partner's own runs, not the queue's
        count = len(self.samples)
        self.mean = sum(self.samples) / count if count else 1.0
        self.variance = sum((s - self.mean) ** 2 for s in self.samples) / (count - 1) if count >= 2 else 0.0

    @property
    def known(self) -> bool:
        return bool(self.samples)

    def draw(self, rng: random.Random) -> float:
        return rng.choice(self.samples) if self.samples else 1.0

    def longer_than(self, elapsed: float) -> list[float]:
        """The remaining seconds of the observed runs that lasted longer than `elapsed`: the
        distribution of what is left, not mean minus elapsed (run times are heavy-tailed)."""
        return [s - elapsed for s in self.samples[bisect.bisect_right(self.samples, elapsed) :]]

    def remaining_mean(self, elapsed: float, timeout: float) -> float:
        left = self.longer_than(elapsed)
        if left:
            return sum(left) / len(left)
        return max(0.0, timeout - elapsed) / 2  # it already ran longer than every observed run

    def draw_remaining(self, rng: random.Random, elapsed: float, timeout: float) -> float:
        left = self.longer_than(elapsed)
        return rng.choice(left) if left else rng.uniform(0.0, max(0.0, timeout - elapsed))


def models(snapshot: Snapshot) -> dict[str, RunTimes]:
    """Each partner's model: its own last runs when it has enough, else the queue's; and each
    (partner, kind) with enough runs of that kind (`model_for` picks the most specific)."""
    everyone = [s for times in snapshot.run_times.values() for s in times]
    queue_wide = RunTimes(everyone, own=False)
    chosen: dict[str, RunTimes] = {}
    for name in snapshot.partners:
        own = snapshot.run_times.get(name, [])[:RUNS_PER_MODEL]
        chosen[name] = RunTimes(own, own=True) if len(own) >= OWN_MODEL_MIN else queue_wide
    for (name, kind), runs in snapshot.kind_run_times.items():
        if len(runs) >= OWN_MODEL_MIN:
            chosen[_kind_key(name, kind)] = RunTimes(runs[:RUNS_PER_MODEL], own=True)
    return chosen


def model_for(times: dict[str, RunTimes], partner: str, kind: str | None) -> RunTimes:
    """The run-time model of a job: its partner's runs of its kind, else its partner's, else none."""
    if kind is not None and _kind_key(partner, kind) in times:
        return times[_kind_key(partner, kind)]
    return times.get(partner) or RunTimes([], own=False)


def _kind_key(partner: str, kind: str) -> str:
    return f"{partner}\x1f{kind}"


# -- the simulation ----------------------------------------------------------------------------


@dataclass
class _Run:
    partner: str
    start: float
    end: float
    job_id: int | None


@dataclass
class _Partner:
    share: PartnerShare
    tag: float
    line: list[WaitingJob]
    extra: int  # jobs past the line, taken as due now in claim order after it
    tail: WaitingJob | None = None  # the job asked about, when it is past its partner's line
    running: list[_Run] = field(default_factory=list)

    def head(self, at: float) -> WaitingJob | None:
        """The first job of the line that is due at `at` (the claim's head: run_after <= now);
        past the line, `extra` jobs taken as due now, then `tail`."""
        for job in self.line:
            if job.due_in <= at:
                return job
        if self.extra > 0:
            last = self.line[-1].id if self.line else 0
            return WaitingJob(-(last + 1), self.share.name, 0, Status.UNPROCESSED, 0, 0, 0.0)
        if self.tail is not None and self.tail.due_in <= at:
            return self.tail
        return None

    def take(self, job: WaitingJob) -> None:
        if job.id < 0:
            self.extra -= 1
        elif job is self.tail:
            self.tail = None
        else:
            self.line.remove(job)

    def waiting(self) -> bool:
        return bool(self.line or self.extra or self.tail)

    def dues(self) -> list[float]:
        """When the jobs of the line (and the tail) that are not due now come due."""
        return [job.due_in for job in [*self.line, *([self.tail] if self.tail else [])] if job.due_in > 0]


def pick(partners: Iterable[_Partner], vtime: float, at: float) -> tuple[_Partner, WaitingJob] | None:
    """The claim's pick (pqueue/sql/fair.py): among partners with a due job and fewer than their
    cap running, the lowest max(F_p, V) + (seconds its running jobs have held a seat) / w_p; ties
    go to the earlier head job. Within a partner the head is its first due job in claim order."""
    best: tuple[float, int, _Partner, WaitingJob] | None = None
    for partner in partners:
        running = partner.running
        tag = partner.tag if partner.tag > vtime else vtime
        if running:
            cap = partner.share.max_running
            if cap is not None and len(running) >= cap:
                continue
            tag += sum(at - run.start for run in running) / partner.share.weight
        if best is not None and tag > best[0]:
            continue  # it cannot win: its head need not be looked at
        head = partner.head(at)
        if head is None:
            continue
        order = abs(head.id)
        if best is None or (tag, order) < (best[0], best[1]):
            best = (tag, order, partner, head)
    return None if best is None else (best[2], best[3])


@dataclass(frozen=True)
class Start:
    """One predicted start: the job (negative id: one past its partner's line), when, for how long."""

    job_id: int
    partner: str
    at: float
    seconds: float
    due_in: float
    kind: str | None = None
    behind: int | None = None  # a held job: the running job whose seat it takes when that ends


@dataclass(frozen=True)
class Simulation:
    """The predicted starts in order, and whether it stopped at its step budget."""

    starts: list[Start]
    cut: bool
    first_free: float | None  # when the first seat frees (None: one is free now)
    running_ends: dict[int, float]  # each running job's predicted end


def simulate(
    snapshot: Snapshot,
    times: dict[str, RunTimes],
    *,
    until: WaitingJob | None = None,
    between: int = 0,
) -> Simulation:
    """Run the claim forward from the snapshot with each run lasting its model's mean: at every
    moment a seat is free, `pick`; a claim floors the partner's tag at V and moves V on; an end
    charges the seconds held. Stops when `until` starts, the line is empty, or at the budget.
    `until` past its partner's line in the snapshot comes after `between` more of its jobs."""
    partners = {
        name: _Partner(share, share.tag, list(snapshot.lines.get(name, [])), snapshot.beyond.get(name, 0))
        for name, share in snapshot.partners.items()
    }
    target = partners.get(until.partner) if until is not None else None
    if until is not None and target is not None and all(job.id != until.id for job in target.line):
        target.extra, target.tail = between, until
    active = [p for p in partners.values() if p.waiting()]
    # When jobs not due now come due, ascending, and how many the clock (it only moves forward)
    # has passed: a job is taken only once due, so a taken one is among the passed.
    dues, passed = sorted(due for p in active for due in p.dues()), 0
    steps = min(MAX_STEPS, max(50, LOOK_BUDGET // max(1, len(active))))
    vtime, now, clock = snapshot.vtime, 0.0, 0.0  # clock: now, and TICK more after each start at it
    runs: list[_Run] = []
    for running in snapshot.running:
        model = model_for(times, running.partner, running.kind)
        end = model.remaining_mean(running.elapsed, snapshot.job_timeout)
        run = _Run(running.partner, -running.elapsed, end, running.id)
        runs.append(run)
        if running.partner in partners:
            partners[running.partner].running.append(run)
    running_ends = {run.job_id: run.end for run in runs if run.job_id is not None}
    first_free = None if len(runs) < snapshot.seats else min((run.end for run in runs), default=0.0)
    starts: list[Start] = []
    while len(starts) < steps:
        passed_on, refused = _end_runs(snapshot, times, partners, runs, now)
        active += [p for p in refused if p not in active]  # their held job is back in their line
        starts += passed_on
        if until is not None and any(start.job_id == until.id for start in passed_on):
            return Simulation(starts, False, first_free, running_ends)
        clock = max(clock, now)
        while len(runs) < snapshot.seats and len(starts) < steps:
            picked = pick(active, vtime, clock)
            if picked is None:
                break
            partner, job = picked
            partner.take(job)
            partner.tag = max(partner.tag, vtime)
            vtime = max(vtime, partner.tag)
            seconds = model_for(times, partner.share.name, job.kind).mean
            run = _Run(partner.share.name, clock, clock + seconds, job.id)
            runs.append(run)
            partner.running.append(run)
            starts.append(Start(job.id, partner.share.name, clock, seconds, max(0.0, job.due_in), job.kind))
            clock += TICK
            if until is not None and job.id == until.id:
                return Simulation(starts, False, first_free, running_ends)
        while passed < len(dues) and dues[passed] <= now:
            passed += 1
        moments = [run.end for run in runs] + dues[passed : passed + 1]
        if not moments:
            return Simulation(starts, False, first_free, running_ends)
        now = max(now, min(moments))
    return Simulation(starts, True, first_free, running_ends)


def _end_runs(
    snapshot: Snapshot, times: dict[str, RunTimes], partners: dict[str, _Partner], runs: list[_Run], now: float
) -> tuple[list[Start], list[_Partner]]:
    """End the runs due to end by `now`, each charging its seconds to its partner's tag; a run with
    a job held behind it passes its seat to that job at once, with no pick: the starts of those.
    Not past the held job's partner's cap (reached meanwhile by another seat's claim): then the
    start is refused, the hold lapses, and the job waits in its partner's line as if never held
    (the partners of those are returned beside the starts)."""
    passed_on, refused = [], []
    for run in [run for run in runs if run.end <= now]:
        runs.remove(run)
        owner = partners.get(run.partner)
        if owner is not None:
            owner.running.remove(run)
            owner.tag += (run.end - run.start) / owner.share.weight
        held = snapshot.held.get(run.job_id) if run.job_id is not None else None
        if held is None:
            continue
        mine = partners.get(held.partner)
        cap = mine.share.max_running if mine is not None else None
        if mine is not None and cap is not None and len(mine.running) >= cap:
            mine.line = sorted([*mine.line, held], key=lambda job: (job.priority, job.id))
            refused.append(mine)
            continue
        seconds = model_for(times, held.partner, held.kind).mean
        successor = _Run(held.partner, now, now + seconds, held.id)
        runs.append(successor)
        if mine is not None:
            mine.running.append(successor)
        passed_on.append(Start(held.id, held.partner, now, seconds, 0.0, held.kind, run.job_id))
    return passed_on, refused


# -- what the submitter is told ----------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """When something is predicted to happen: p50 and p90 from observed run times (absent with
    `why` when they cannot be known), and `latest`, a bound from timeouts and attempt limits."""

    p50: datetime | None
    p90: datetime | None
    latest: datetime | None
    why: str | None = None


@dataclass(frozen=True)
class Reason:
    """One reason a job is not running now; `until` when it is known when it ends."""

    code: str
    message: str
    until: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Position:
    """How many jobs are predicted to start before this one: the caller's own and other partners'."""

    own: int
    others: int
    exact: bool  # False: past the simulation's budget, extrapolated from its rate

    @property
    def total(self) -> int:
        return self.own + self.others


@dataclass(frozen=True)
class Wait:
    """The submitter's view of one job; a running job has only eta_finish."""

    position: Position | None
    eta_start: Estimate | None
    eta_finish: Estimate
    confidence: str
    reasons: list[Reason]
    computed_at: datetime


@dataclass(frozen=True)
class Placed:
    """Where the target landed in the simulation (or past it)."""

    job_id: int
    index: int | None  # its index among the starts; None when past the budget
    own: int
    others: int
    start: float  # point start, seconds from now
    exact: bool


def forecast(snapshot: Snapshot, job: WaitingJob, own_ahead: int | None = None) -> Wait:
    """The wait of one waiting job. `own_ahead`: how many of its partner's jobs wait before it in
    claim order, needed only when the job is past its partner's line in the snapshot (the
    simulation then stops where it starts)."""
    ahead = {job.id: own_ahead} if own_ahead is not None else {}
    return forecast_many(snapshot, [job], ahead, until=job)[job.id]


def forecast_many(
    snapshot: Snapshot, jobs: list[WaitingJob], own_ahead: dict[int, int], *, until: WaitingJob | None = None
) -> dict[int, Wait]:
    """The waits of several waiting jobs of one queue from one simulation and one set of draws,
    so each gets the answer it would get alone."""
    times = models(snapshot)
    between = 0
    if until is not None:
        between = max(0, own_ahead.get(until.id, 0) - len(snapshot.lines.get(until.partner, [])))
    stop = until if until is not None else _last_of(snapshot, jobs)
    simulation = simulate(snapshot, times, until=stop, between=between)
    placements = {job.id: place(simulation, job, snapshot, own_ahead.get(job.id)) for job in jobs}
    drawn = _start_percentiles(snapshot, times, simulation, list(placements.values()))
    return {job.id: wait_of(snapshot, times, simulation, job, placements[job.id], drawn.get(job.id)) for job in jobs}


def wait_of(
    snapshot: Snapshot,
    times: dict[str, RunTimes],
    simulation: Simulation,
    job: WaitingJob,
    placed: Placed,
    start_p: tuple[float, float] | None,
) -> Wait:
    """The wait of a job placed in a simulation, its start's p50 and p90 drawn (None: unknown)."""
    model = model_for(times, job.partner, job.kind)
    eta_start, eta_finish = _estimates(snapshot, job, model, placed, start_p)
    return Wait(
        position=Position(placed.own, placed.others, placed.exact),
        eta_start=eta_start,
        eta_finish=eta_finish,
        confidence=_confidence(model, placed.exact),
        reasons=_reasons(snapshot, job, simulation, placed),
        computed_at=snapshot.now,
    )


def _last_of(snapshot: Snapshot, jobs: list[WaitingJob]) -> WaitingJob | None:
    """The job asked about that comes last in its partner's line (the simulation may stop once
    it started: every other one asked about started before it), when all are of one partner."""
    partners = {job.partner for job in jobs}
    if len(partners) != 1:
        return None
    line = snapshot.lines.get(partners.pop(), [])
    positions = {entry.id: index for index, entry in enumerate(line)}
    if not all(job.id in positions for job in jobs) or any(job.due_in > 0 for job in line):
        return None
    return max(jobs, key=lambda job: positions[job.id])


def forecast_running(
    snapshot: Snapshot, run: RunningRun, attempts: int, max_attempts: int, times: dict[str, RunTimes] | None = None
) -> Wait:
    """A running job: when it is predicted to finish, from the runs that lasted longer than it has."""
    model = model_for(models(snapshot) if times is None else times, run.partner, run.kind)
    timeout = snapshot.job_timeout
    left_attempts = max(0, max_attempts - attempts)
    latest = max(0.0, timeout - run.elapsed) + left_attempts * _retry_bound(snapshot, run.partner, attempts)
    finish = Estimate(None, None, snapshot.at(latest), _no_history(snapshot))
    if model.known:
        rng = random.Random(run.id)
        draws = sorted(model.draw_remaining(rng, run.elapsed, timeout) for _ in range(DRAWS))
        finish = Estimate(snapshot.at(quantile(draws, 0.5)), snapshot.at(quantile(draws, 0.9)), finish.latest)
    return Wait(None, None, finish, _confidence(model, True), [], snapshot.now)


def place(simulation: Simulation, job: WaitingJob, snapshot: Snapshot, own_ahead: int | None) -> Placed:
    for index, placed_start in enumerate(simulation.starts):
        if placed_start.job_id == job.id:
            before = simulation.starts[:index]
            own = sum(1 for s in before if s.partner == job.partner)
            return Placed(job.id, index, own, index - own, placed_start.at, True)
    # Past the budget: extrapolate from the rate at which the partner's jobs started in it.
    starts = simulation.starts
    own_started = sum(1 for s in starts if s.partner == job.partner)
    horizon = starts[-1].at if starts else 0.0
    line = snapshot.lines.get(job.partner, [])
    in_line = sum(1 for entry in line if (entry.priority, entry.id) < (job.priority, job.id))
    own_total = max(own_started, own_ahead if own_ahead is not None else in_line)
    left = max(0, own_total - own_started)
    if own_started and horizon > 0:
        per_own = horizon / own_started
        others_rate = (len(starts) - own_started) / horizon
        start = horizon + left * per_own
        others = (len(starts) - own_started) + round(others_rate * (start - horizon))
    else:
        start, others = horizon, len(starts) - own_started
    return Placed(job.id, None, own_total, others, max(start, job.due_in), False)


def _start_percentiles(
    snapshot: Snapshot, times: dict[str, RunTimes], simulation: Simulation, placements: list[Placed]
) -> dict[int, tuple[float, float]]:
    """p50 and p90 of each placed job's start, seconds from now: drawn along the predicted order
    (bootstrap, one set of draws for all); past DRAWN_STARTS jobs, or past the simulation's
    budget, the point start plus a normal spread. Empty without any observed run time."""
    if not any(model.known for model in times.values()):
        return {}
    drawn = [p for p in placements if p.index is not None and p.index <= DRAWN_STARTS]
    samples = drawn_starts(snapshot, times, simulation.starts, {p.index for p in drawn if p.index is not None})
    percentiles: dict[int, tuple[float, float]] = {}
    for placed in placements:
        if placed.index is not None and placed.index in samples:
            values = sorted(samples[placed.index])
            percentiles[placed.job_id] = (quantile(values, 0.5), quantile(values, 0.9))
            continue
        ahead = simulation.starts[: placed.index] if placed.index is not None else simulation.starts
        variance = sum(model_for(times, s.partner, s.kind).variance for s in ahead)
        spread = Z90 * math.sqrt(variance) / max(1, snapshot.seats)
        handoffs = HANDOFF_SECONDS * (placed.own + placed.others + 1)
        percentiles[placed.job_id] = (placed.start + handoffs, placed.start + handoffs + spread)
    return percentiles


def drawn_starts(
    snapshot: Snapshot, times: dict[str, RunTimes], order: list[Start], indices: set[int]
) -> dict[int, list[float]]:
    """DRAWS draws of the starts at `indices` of the order: every run draws its length (a running
    one: what is left of the runs that lasted longer), the seats serve the order. Draw d uses its
    own seed, so a job's draws do not depend on how many jobs after it were asked about."""
    if not indices:
        return {}
    last = max(indices)
    samples: dict[int, list[float]] = {index: [] for index in indices}
    walked = order[: last + 1]
    # Each start's observed run times (None: none known, its point length is used), looked up once.
    observed = [model_for(times, entry.partner, entry.kind).samples or None for entry in walked]
    recorded = [index in samples for index in range(len(walked))]
    passing = {entry.behind for entry in order if entry.behind is not None}  # seats passed to a held job
    capped = {name: share.max_running for name, share in snapshot.partners.items() if share.max_running is not None}
    for draw in range(DRAWS):
        rng = random.Random(draw)
        seats: list[float] = []
        reserved: dict[int, float] = {}  # the seats of running jobs a held job waits behind
        ends_of: dict[str, list[float]] = {name: [] for name in capped}  # a capped partner's runs' ends
        for run in snapshot.running:
            end = model_for(times, run.partner, run.kind).draw_remaining(rng, run.elapsed, snapshot.job_timeout)
            if run.id in passing:
                reserved[run.id] = end
            else:
                seats.append(end)
            if run.partner in ends_of:
                ends_of[run.partner].append(end)
        seats += [0.0] * max(0, snapshot.seats - len(seats) - len(reserved))
        heapq.heapify(seats)
        for index, entry in enumerate(walked):
            if entry.behind is not None and entry.behind in reserved:
                start = reserved.pop(entry.behind)  # started in the same transaction as that end
            else:
                start = max(heapq.heappop(seats) if seats else min(reserved.values()), entry.due_in) + HANDOFF_SECONDS
            if entry.partner in ends_of:  # not before enough of its partner's runs ended to be below its cap
                going = sorted(end for end in ends_of[entry.partner] if end > start)
                if len(going) >= capped[entry.partner]:
                    start = going[len(going) - capped[entry.partner]] + HANDOFF_SECONDS
                ends_of[entry.partner] = going
            if recorded[index]:
                samples[index].append(start)
            runs = observed[index]
            end = start + (rng.choice(runs) if runs else entry.seconds)
            heapq.heappush(seats, end)
            if entry.partner in ends_of:
                ends_of[entry.partner].append(end)
    return samples


def _estimates(
    snapshot: Snapshot, job: WaitingJob, model: RunTimes, placed: Placed, start_p: tuple[float, float] | None
) -> tuple[Estimate, Estimate]:
    latest_start = _latest_start(snapshot, job, placed)
    attempts_left = max(1, job.max_attempts - job.attempts)
    latest_finish = (
        latest_start
        + snapshot.job_timeout
        + (attempts_left - 1) * _retry_bound(snapshot, job.partner, job.attempts + 1)
    )
    held = _held(snapshot)
    if held is not None:
        return Estimate(None, None, None, held), Estimate(None, None, None, held)
    latest_s, latest_f = snapshot.at(latest_start), snapshot.at(latest_finish)
    if start_p is None:
        why = _no_history(snapshot)
        return Estimate(None, None, latest_s, why), Estimate(None, None, latest_f, why)
    p50, p90 = start_p
    own = model.mean if model.known else 0.0
    spread = Z90 * math.sqrt(model.variance)
    start = Estimate(snapshot.at(p50), snapshot.at(max(p50, p90)), latest_s)
    finish = Estimate(snapshot.at(p50 + own), snapshot.at(max(p50, p90) + own + spread), latest_f)
    return start, finish


def _latest_start(snapshot: Snapshot, job: WaitingJob, placed: Placed) -> float:
    """A bound with no statistics, valid while the seats keep serving: every run ahead lasts at
    most the job timeout and runs at most its attempts; another partner q can pass this job by at
    most w_q · (S* − max(F_q, V)) seat-seconds plus one run, where S* is the tag this job's
    partner reaches once its earlier jobs ran to their limits (start-time fair queuing's bound)."""
    timeout = snapshot.job_timeout
    running = sum(max(0.0, timeout - run.elapsed) for run in snapshot.running)
    own_line = snapshot.lines.get(job.partner, [])
    ahead = [entry for entry in own_line if (entry.priority, entry.id) < (job.priority, job.id)]
    own_work = sum(timeout * max(1, entry.max_attempts - entry.attempts) for entry in ahead)
    own_work += max(0, placed.own - len(ahead)) * timeout * snapshot.max_attempts
    mine = snapshot.partners.get(job.partner)
    weight = mine.weight if mine else 1.0
    start_tag = max(mine.tag if mine else 0.0, snapshot.vtime) + own_work / weight
    others = sum(
        share.weight * max(0.0, start_tag - max(share.tag, snapshot.vtime)) + timeout
        for name, share in snapshot.partners.items()
        if name != job.partner
    )
    handoffs = HANDOFF_BOUND_SECONDS * (placed.own + placed.others + 1)
    return max(0.0, job.due_in) + running + own_work + others + handoffs


def _retry_bound(snapshot: Snapshot, partner: str, attempt: int) -> float:
    """What one more attempt can add: the longest backoff, other partners passing it by one run of
    its own weight each, and the run itself."""
    timeout = snapshot.job_timeout
    longest_backoff = min(
        backoff.MAX_SECONDS, backoff.exponential(snapshot.retry_backoff, attempt) * (1 + backoff.JITTER)
    )
    mine = snapshot.partners.get(partner)
    weight = mine.weight if mine else 1.0
    passing = sum(s.weight * timeout / weight + timeout for name, s in snapshot.partners.items() if name != partner)
    return longest_backoff + passing + timeout


def _held(snapshot: Snapshot) -> str | None:
    """Why no start time can be given at all (nothing serves the queue), else None."""
    if snapshot.paused:
        return f"queue {snapshot.queue} is paused: nothing starts until it resumes"
    if not _served(snapshot):
        return f"no consumer serves queue {snapshot.queue}: nothing starts until one does"
    return None


def _served(snapshot: Snapshot) -> bool:
    return snapshot.servers > 0 or any(run.healthy for run in snapshot.running)


def _no_history(snapshot: Snapshot) -> str:
    return f"no successful run in queue {snapshot.queue} yet: p50 and p90 need observed run times"


def _confidence(model: RunTimes, exact: bool) -> str:
    if not model.known or not model.own or not exact or len(model.samples) < 20:
        return "low"
    return "high" if len(model.samples) >= 100 else "medium"


def quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# -- reasons -----------------------------------------------------------------------------------


def _reasons(snapshot: Snapshot, job: WaitingJob, simulation: Simulation, placed: Placed) -> list[Reason]:
    """Every reason the job is not running now, the binding one first: what stops the whole queue,
    then its own time gate when that ends after its predicted start, then what holds it in line."""
    first: list[Reason] = []
    if snapshot.paused:
        since = f" since {snapshot.paused_at.isoformat()}" if snapshot.paused_at else ""
        by = f" by {snapshot.paused_by}" if snapshot.paused_by else ""
        first.append(
            Reason(
                "queue_paused",
                f"an operator paused queue {snapshot.queue}{since}{by}",
                details={"since": snapshot.paused_at, "by": snapshot.paused_by},
            )
        )
    if not _served(snapshot):
        first.append(Reason("no_consumer", f"no live consumer or relay serves queue {snapshot.queue}"))
    gate = _gate(snapshot, job)
    line = _line_reasons(snapshot, job, simulation, placed)
    if gate is not None and (placed.index == 0 or job.due_in >= placed.start - 1e-6 or not line):
        return [*first, gate, *line]
    return [*first, *line, *([gate] if gate else [])]


def _gate(snapshot: Snapshot, job: WaitingJob) -> Reason | None:
    if job.due_in <= 0:
        return None
    until = job.run_after or snapshot.at(job.due_in)
    if job.status == Status.CRASHED:
        attempt = job.attempts + 1
        message = f"a failed attempt waits out its backoff: attempt {attempt} of {job.max_attempts} comes next"
        return Reason("backoff", message, until, {"attempt": attempt, "max_attempts": job.max_attempts})
    return Reason("scheduled", f"its submitter asked for it to run no earlier than {until.isoformat()}", until)


def _line_reasons(snapshot: Snapshot, job: WaitingJob, simulation: Simulation, placed: Placed) -> list[Reason]:
    reasons: list[Reason] = []
    mine = snapshot.partners.get(job.partner)
    own_running = [run for run in snapshot.running if run.partner == job.partner]
    if mine and mine.max_running is not None and len(own_running) >= mine.max_running:
        ends = [simulation.running_ends[run.id] for run in own_running if run.id in simulation.running_ends]
        until = snapshot.at(min(ends)) if ends and _has_history(snapshot) else None
        reasons.append(
            Reason(
                "partner_cap",
                f"your jobs already run {len(own_running)} at once, your cap in this queue",
                until,
                {"running": len(own_running), "cap": mine.max_running},
            )
        )
    if len(snapshot.running) >= snapshot.seats:
        until = snapshot.at(simulation.first_free) if simulation.first_free is not None else None
        whose = "yours" if all(run.partner == job.partner for run in snapshot.running) else "yours or others'"
        reasons.append(
            Reason(
                "seat_busy",
                f"all {snapshot.seats} seat(s) of queue {snapshot.queue} run jobs ({whose})",
                until if _has_history(snapshot) else None,
                {"seats": snapshot.seats},
            )
        )
    own_reason = Reason("behind_own_jobs", f"{placed.own} of your jobs go first", details={"jobs": placed.own})
    fair_reason = Reason(
        "fair_share",
        f"{placed.others} jobs of others go first: they used less than their share of the seat so far",
        details={
            "jobs": placed.others,
            "weight_share": _weight_share(snapshot, job.partner),
            "used_share": round(snapshot.used_share.get(job.partner, 0.0), 3),
        },
    )
    queued = [r for r, n in ((own_reason, placed.own), (fair_reason, placed.others)) if n > 0]
    if len(queued) == 2 and placed.others > placed.own:
        queued.reverse()
    if queued and placed.index != 0:
        return [*queued, *reasons]
    return [*reasons, *queued]


def _has_history(snapshot: Snapshot) -> bool:
    return any(snapshot.run_times.values())


def _weight_share(snapshot: Snapshot, partner: str) -> float:
    """The partner's weight over the weights of the partners with jobs waiting or running here."""
    active = {name for name, line in snapshot.lines.items() if line} | {run.partner for run in snapshot.running}
    active |= {name for name, extra in snapshot.beyond.items() if extra}
    active.add(partner)
    total = sum(snapshot.partners[name].weight for name in active if name in snapshot.partners)
    mine = snapshot.partners.get(partner)
    return round(mine.weight / total, 3) if mine and total else 1.0
