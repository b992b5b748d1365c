"""The values the store hands out: jobs, events, workers, deliveries, stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pqueue.states import AgentStatus, DeliveryStatus, Status

JSON = Any  # any JSON-serialisable value


@dataclass(frozen=True)
class Job:
    """One request and everything known about its processing."""

    id: int
    queue: str
    payload: JSON
    status: Status
    priority: int
    attempts: int
    max_attempts: int
    lease_id: int
    worker_id: str | None
    result: JSON
    error: str | None
    callback_url: str | None
    idempotency_key: str | None
    created_at: datetime
    run_after: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    stop_request: Status | None = None
    stop_reason: str | None = None
    delivery: Delivery | None = field(default=None)
    lease_seconds: float | None = None  # the latest claim's lease length: its queue's stored lease, else the claimer's
    partner: str = "default"  # whose job it is: the partner whose key submitted it
    # Why an operator failed or cancelled it (`pq fail --reason`, `pq cancel --reason`); `error`
    # keeps the last error of its runs.
    operator_reason: str | None = None
    # A job a relay sent to agents, while under_process: queued (on the broker) or processing (an
    # agent reported it); None for any other job.
    agent_status: AgentStatus | None = None

    @property
    def operator_verdict(self) -> str | None:
        """What an operator did to it, as the title over their reason: `failed by an operator`,
        `cancelled by an operator`; None when no operator decided its end."""
        if not self.operator_reason:
            return None
        return "cancelled by an operator" if self.status == Status.CANCELLED else "failed by an operator"

    @property
    def status_words(self) -> str:
        """The status as people read it: `under_process (queued)` while it waits on the broker."""
        return self.status.value if self.agent_status is None else f"{self.status.value} ({self.agent_status.value})"


@dataclass(frozen=True)
class NewJob:
    """A job to submit; put_items takes a list of these."""

    payload: JSON
    queue: str | None = None
    priority: int = 0
    callback_url: str | None = None
    idempotency_key: str | None = None
    run_after_seconds: float = 0.0
    max_attempts: int | None = None
    partner: str | None = None  # None: `default`


@dataclass(frozen=True)
class PutResult:
    """The id a put produced, and whether it is new or an earlier job with the same key."""

    id: int
    created: bool


@dataclass(frozen=True)
class Event:
    """One transition of one job, as written in the event log."""

    id: int
    job_id: int
    from_status: Status | None
    to_status: Status
    at: datetime
    actor: str
    message: str | None


@dataclass(frozen=True)
class Page:
    """A page of jobs and the cursor for the next one (None on the last page)."""

    items: list[Job]
    next_cursor: str | None


@dataclass(frozen=True)
class RunningJob:
    """A job under_process, with how long it has run and when its lease ends."""

    id: int
    queue: str
    worker_id: str | None
    started_at: datetime | None
    elapsed_seconds: float
    lease_expires_at: datetime | None
    lease_remaining_seconds: float
    attempts: int


@dataclass(frozen=True)
class Hold:
    """A waiting job a consumer claimed ahead for its seat (PQ_CLAIM_AHEAD): it starts in that
    seat the moment `behind_job` ends, and no other claim takes it meanwhile. It stays waiting
    (unprocessed or crashed, its attempt uncounted) until then, so a status alone does not tell
    an operator it is already spoken for."""

    job_id: int
    worker_id: str  # the consumer that holds it
    behind_job: int  # the running job it starts right after
    held_at: datetime


@dataclass(frozen=True)
class Calibration:
    """How a queue's predictions fared: of the jobs whose start was predicted when they were
    submitted, how many have started, and the share of those that started by their p90 (goal
    about 0.9) and by their latest (goal 1.0)."""

    queue: str
    predicted: int
    started: int
    before_p90: float  # a share of `started` (0 when none started)
    before_latest: float


@dataclass(frozen=True)
class QueueInfo:
    """A queue's seats, whether consumers may claim from it, and its policy.

    Each value is the stored one, else the PQ_ default of the program that read it.
    """

    name: str
    seats: int
    paused: bool
    max_attempts: int
    job_timeout: float  # seconds before a running algorithm is killed
    lease_seconds: float
    retry_backoff_seconds: float
    timeout_retries: int = 0  # times a job that ran into the job timeout is run again
    # Waiting jobs the change that answered moved to manual_intervention (a lowered max_attempts).
    ended: tuple[int, ...] = ()


@dataclass(frozen=True)
class Overruled:
    """A PQ_ setting a program was given that its queue's stored policy overrules: the stored
    value holds on every host."""

    queue: str
    name: str  # the policy value, as QueueInfo and pq_queues name it: "job_timeout"
    setting: str  # the Settings field whose PQ_ variable was given: "job_timeout" (PQ_JOB_TIMEOUT)
    given: float
    stored: float


@dataclass(frozen=True)
class Stats:
    """The numbers an operator looks at first."""

    counts: dict[str, dict[str, int]]  # queue -> status -> count
    oldest_waiting_seconds: float | None
    running: list[RunningJob]
    deliveries: dict[str, int]  # delivery status -> count
    queues: list[QueueInfo]
    replication: Replication
    # queue -> manual_intervention jobs an operator failed (`pq fail`): decided, not waiting for a person.
    operator_failed: dict[str, int] = field(default_factory=dict)
    # queue -> waiting jobs a consumer holds to start next (a standing hold, `Hold`); they are
    # counted among the waiting jobs too.
    held: dict[str, int] = field(default_factory=dict)

    def total(self, status: Status) -> int:
        """Jobs in this status across every queue."""
        return sum(by_status.get(status.value, 0) for by_status in self.counts.values())

    def failed_by_operator(self) -> int:
        """manual_intervention jobs an operator failed, across every queue."""
        return sum(self.operator_failed.values())

    def waiting_for_person(self) -> int:
        """manual_intervention jobs no one has decided on yet (out of attempts, refused, timed out)."""
        return self.total(Status.MANUAL_INTERVENTION) - self.failed_by_operator()


@dataclass(frozen=True)
class Replication:
    """What an acknowledged job survives, as the database reports it now: the replication
    guarantee `pq stats`, /metrics and every program's start line show."""

    mode: str  # "none" (no standby), "asynchronous" or "synchronous"
    synchronous_commit: str  # the level pqueue's sessions commit with (SQLite: its synchronous pragma)
    standbys: int  # streaming standbys connected to this primary (0 on SQLite)
    synchronous_standbys: int | None  # those a commit waits for (None: not visible to this role)
    standby_names: str  # synchronous_standby_names ("" when none is named)

    def describe(self) -> str:
        """One line: the mode, and what a failover (or a crash) loses in it."""
        if self.synchronous_commit.lower() in ("normal", "off"):
            return (
                f"{self.mode}, synchronous_commit={self.synchronous_commit} (PQ_SYNCHRONOUS_COMMIT=0): "
                "a crash or failover may lose the last acknowledged jobs"
            )
        if self.mode == "synchronous":
            waits = f"{self.synchronous_standbys}" if self.synchronous_standbys is not None else "?"
            held = ", commits wait until one is connected" if self.synchronous_standbys == 0 else ""
            return (
                f"synchronous replication ({waits} of {self.standbys} standbys synchronous, "
                f"synchronous_standby_names={self.standby_names!r}{held}): "
                "a failover to a synchronous standby loses no acknowledged job"
            )
        if self.mode == "asynchronous":
            return (
                f"asynchronous replication ({self.standbys} standbys, none synchronous): a failover loses "
                "the acknowledged jobs the standby had not received yet"
            )
        return f"no standby (synchronous_commit={self.synchronous_commit}): the database's own disk is the only copy"


@dataclass(frozen=True)
class Worker:
    """A registered consumer or relay and what it is doing."""

    id: str
    kind: str
    host: str
    pid: int
    queue: str
    started_at: datetime
    last_seen: datetime
    seen_seconds_ago: float
    current_job_id: int | None


@dataclass(frozen=True)
class Delivery:
    """The callback of one final outcome: where it goes, what it says, and how it went."""

    id: int
    job_id: int
    lease_id: int
    url: str
    body: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None

    @property
    def idempotency_key(self) -> str:
        """What the partner uses to drop repeats: a re-run after requeue is a new delivery."""
        return f"{self.job_id}-{self.lease_id}"


@dataclass(frozen=True)
class ThroughputPoint:
    """Jobs that reached a status in one time bucket."""

    bucket_start: datetime
    status: Status
    count: int


@dataclass(frozen=True)
class Partner:
    """A caller sharing the licence: its weight, limits, and how much of the seats it uses."""

    name: str
    weight: float
    max_running: int | None  # its jobs running at once in each queue (None: only the seats limit it)
    rate_per_minute: int | None  # submissions per minute (None: no limit)
    disabled_at: datetime | None
    created_at: datetime
    has_callback_secret: bool = False
    waiting: int = 0
    running: int = 0
    seat_seconds_hour: float = 0.0
    seat_seconds_day: float = 0.0
    share_day: float = 0.0  # its part of all partners' seat time in the last day, 0 to 1


@dataclass(frozen=True)
class ApiKey:
    """A partner's key as listings show it: never the key itself, which only its creator sees."""

    id: str
    partner: str
    scopes: tuple[str, ...]
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    prefix: str  # `pq_<id>_…`


@dataclass(frozen=True)
class NewKey:
    """A key just made: `key` is shown once and never stored."""

    key: str
    info: ApiKey


@dataclass(frozen=True)
class Caller:
    """Who a request's key belongs to, and what it may do."""

    partner: str
    scopes: tuple[str, ...]
    key_id: str | None  # None: PQ_API_TOKEN, or an open intake

    def may(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class PartnerEvent:
    """One change to a partner or its keys, as the partner's log keeps it."""

    id: int
    partner: str
    at: datetime
    actor: str
    message: str
