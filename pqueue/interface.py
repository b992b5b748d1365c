"""The contract every pqueue program relies on, in four roles by caller.

* WorkQueue: what serves the queue, the intake putting jobs and the consumer or relay claiming,
  recording and delivering them (with the housekeeping each consumer runs).
* Operations: what an operator changes, from `pq` or the dashboard: a job's status, a queue's
  pause, seats and policy, a backup.
* Insights: what only reads: jobs, timelines, stats, workers, queues, the clock.
* Partners: the callers sharing the licence and their keys: what `pq partner` and `pq key`
  change, and the intake's question "whose key is this?".

PersistentQInterface is their union, the whole store (`PersistentQ` implements it). A program
annotates the role it calls, so mypy shows which of them it needs.

Guarantees every implementation keeps (SPEC "Guarantees"):

* Acknowledged means stored: a put returns only after its transaction committed.
* No double run: a job is under_process for one claim at a time. Each claim gets a new
  `lease_id` that only ever grows; heartbeat, update_status and release from an older lease are
  refused with LeaseLost (fencing).
* The licence holds: never more than a queue's seats under_process, decided by the database inside
  the claiming transaction, whatever number of processes or hosts claim.
* One clock: leases, backoff and ages use the database's clock plus `clock_offset` (tests move
  time with the offset, never by sleeping).
* Every transition is one conditional UPDATE plus its event row in the same transaction; an
  illegal one raises InvalidTransition and changes nothing.
* Outcome and delivery are one step: reaching a final state with a callback_url queues its
  delivery (the outbox) in the same transaction.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from pqueue.models import (
    JSON,
    ApiKey,
    Calibration,
    Caller,
    Delivery,
    Event,
    Hold,
    Job,
    NewJob,
    NewKey,
    Page,
    Partner,
    PartnerEvent,
    PutResult,
    QueueInfo,
    Replication,
    Stats,
    ThroughputPoint,
    Worker,
)
from pqueue.settings import Settings
from pqueue.silence import SilenceWatch
from pqueue.states import AgentStatus, Status
from pqueue.waitline import Wait


class WorkQueue(abc.ABC):
    """What the intake, consumers and relays call to serve the queue."""

    # -- submitting -------------------------------------------------------------------------

    @abc.abstractmethod
    def put_item(
        self,
        payload: JSON,
        *,
        queue: str | None = None,
        priority: int = 0,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        run_after_seconds: float = 0.0,
        max_attempts: int | None = None,
        actor: str = "producer",
        partner: str | None = None,
    ) -> int:
        """Store one job of `partner` (None: `default`) and return its id once committed.

        Lower priority runs first, then FIFO by id. With an idempotency_key already used in the
        queue, the first job's id comes back and nothing is stored; with another payload it is
        an IdempotencyConflict. `run_after_seconds` delays the first claim.
        """

    @abc.abstractmethod
    def put_items(self, jobs: Sequence[NewJob | JSON], *, actor: str = "producer") -> list[PutResult]:
        """Store many jobs in one transaction: all or nothing. One PutResult per job, in order.

        Each item is a NewJob or a bare payload (a job with the defaults)."""

    # -- working ----------------------------------------------------------------------------

    @abc.abstractmethod
    def get_item(
        self, worker_id: str | None = None, *, queue: str | None = None, lease_seconds: float | None = None
    ) -> Job | None:
        """Claim the next claimable job of the queue with a fresh lease, or return None.

        None when the queue is empty, paused, or all its seats are taken. The claim spends an
        attempt and gives the job a new, larger lease_id. Without a worker_id the claim is this
        process's (`host:pid`), registered as a worker of kind `library` and seen at each claim.
        """

    @abc.abstractmethod
    def heartbeat(
        self,
        job_id: int,
        lease_id: int,
        *,
        lease_seconds: float | None = None,
        agent_status: AgentStatus | None = None,
    ) -> datetime:
        """Extend the lease and return its new expiry (database clock).

        With agent_status, a relay also records what the agents' side said of this claim
        (`queued`: the broker confirmed its message; `processing`: an agent reported it), which
        readers show beside under_process.

        Raises LeaseLost when this lease is no longer the job's (rescued, re-claimed) and
        StopRequested when an operator cancelled or failed the running job: the worker must stop
        the algorithm and record the requested status with update_status.
        """

    @abc.abstractmethod
    def update_status(
        self,
        job_id: int,
        status: Status | str,
        *,
        lease_id: int | None = None,
        result: JSON = None,
        error: str | None = None,
        timed_out: bool = False,
    ) -> Job:
        """Record the outcome of the claim holding `lease_id`.

        Without lease_id, the lease this same handle got when it claimed the job (get_item or
        finish_and_claim); a handle that holds none for the job raises InvalidInput saying to
        pass lease_id. Either way a lease that is no longer the job's is refused (LeaseLost).

        `processed` stores the result; `crashed` stores the error and becomes
        `manual_intervention` when no attempts are left, else claimable after an exponential
        backoff with jitter; `cancelled` / `manual_intervention` answer a stop request.
        A `crashed` attempt that ran into the job timeout (`timed_out`) goes to
        `manual_intervention` without another run (a runaway input must not hold the seat for
        another timeout), unless the queue's timeout_retries allow more timeouts of this job.
        A final state with a callback_url queues its delivery in the same transaction.
        """

    @abc.abstractmethod
    def finish_and_claim(
        self,
        job_id: int,
        status: Status | str,
        *,
        lease_id: int,
        worker_id: str,
        result: JSON = None,
        error: str | None = None,
        timed_out: bool = False,
        queue: str | None = None,
        lease_seconds: float | None = None,
    ) -> tuple[Job, Job | None]:
        """update_status, then get_item, in one transaction: (the finished job, the next claim).

        A consumer with a backlog pays one commit per job instead of two, and the seat passes
        from one job to the next without a moment in which another consumer could take it.
        It raises what update_status raises, and then nothing was recorded and nothing claimed.
        """

    @abc.abstractmethod
    def rehearse_hand_off(self, queue: str | None = None) -> None:
        """Prepare hold_next and finish_and_start for the queue without changing anything (their
        statements run once in a transaction that is rolled back), so a consumer's first hold,
        made while its first job runs, does not pay their first build. Raises what a write
        raises when the database does not answer."""

    @abc.abstractmethod
    def hold_next(self, worker_id: str, *, behind_job: int, behind_lease: int, queue: str | None = None) -> Job | None:
        """Claim the queue's next job ahead, while the worker's job `behind_job` runs under
        `behind_lease`: the job stays waiting (its attempt not counted, no seat taken) and no
        claim takes it while that lease is a running job's. None when that lease is not the
        worker's running job in the queue, it already holds a job, the queue is paused or over its
        seats, or nothing is due.

        The held job starts with `finish_and_start`; a hold whose lease ends otherwise (the job
        recorded alone, rescued, released) lapses by itself, and the job is claimable again, its
        attempt unspent. A job whose hold lapsed is never held again (None when the pick is it):
        its held process may have begun unrecorded (its consumer killed before the start was
        written), so its next run is claimed, its attempt counted before it starts, and a job
        that kills its consumer runs at most once without spending an attempt.
        """

    @abc.abstractmethod
    def finish_and_start(
        self,
        job_id: int,
        status: Status | str,
        *,
        lease_id: int,
        worker_id: str,
        held_job: int,
        result: JSON = None,
        error: str | None = None,
        timed_out: bool = False,
        lease_seconds: float | None = None,
    ) -> tuple[Job, Job]:
        """update_status, then the start of the job held behind `lease_id`, in one transaction:
        (the finished job, the started one). It raises what update_status raises, and HoldGone
        when the held job can no longer start (an operator cancelled or failed it meanwhile);
        then nothing was recorded and nothing started, so the running job's seat is not freed
        while the process the held job waited in may still run: the consumer kills it first,
        then records the outcome alone.
        """

    @abc.abstractmethod
    def release(self, job_id: int, lease_id: int, *, reason: str = "consumer shutting down") -> Job:
        """Give the claim back without spending the attempt (the job is unprocessed again)."""

    @abc.abstractmethod
    def wait_for_work(self, timeout: float, *, queue: str | None = None, wake: int | None = None) -> bool:
        """Block until work may be claimable (a put, a freed seat, a delayed job coming due)
        or the timeout passes. True when woken early; a False is not proof of no work.
        `wake`, a readable file descriptor (a program's self-pipe, written by its SIGTERM
        handler), ends the wait at once with False when it becomes readable."""

    # -- the queue's policy -----------------------------------------------------------------

    @abc.abstractmethod
    def adopt_queue(self, queue: str | None = None, *, lease_seconds: float | None = None) -> QueueInfo:
        """The queue's policy as stored, storing this program's PQ_ defaults for any value not
        stored yet: the first consumer or relay to serve a queue sets its policy, and every
        later one, on any host, follows it instead of its own PQ_ settings. lease_seconds
        stands for PQ_LEASE_SECONDS where a program leases by another setting (the relay)."""

    @abc.abstractmethod
    def queue_settings(self, queue: str) -> QueueInfo | None:
        """The queue's seats, pause flag and policy, or None when nothing was ever set for it
        (so the relay can tell its first start from a restart)."""

    # -- housekeeping every consumer runs ---------------------------------------------------

    @abc.abstractmethod
    def record_predictions(self, *, limit: int = 20) -> int:
        """Record what the submitter's view predicts for the start of up to `limit` of the newest
        jobs submitted in the last minute that have no prediction yet (the intake calls it every
        few seconds, outside the submission path); returns how many were recorded."""

    @abc.abstractmethod
    def rescue_expired(self, *, actor: str = "rescue", watch: SilenceWatch | None = None) -> list[tuple[int, Status]]:
        """Move jobs whose lease expired (plus a safety margin) to crashed, or to
        manual_intervention when out of attempts (or to the requested status when an operator
        asked to stop them). Returns (job id, new status) for each.

        With a watch (a long-running rescuer's own), a lease is rescued only once the watch has
        also seen it unrenewed for the lease plus its margin on this process's monotonic clock,
        so a jump of the database's clock cannot make a running job look abandoned."""

    @abc.abstractmethod
    def purge(
        self,
        older_than_seconds: float,
        status: Sequence[Status | str] = (Status.PROCESSED,),
        *,
        dry_run: bool = False,
        batch_size: int = 1000,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete finished jobs whose finished_at is older than the cut-off, in batches.

        Never touches under_process jobs or jobs whose callback is still pending. Returns how
        many were (or, with dry_run, would be) deleted. `on_batch` hears how many each committed
        batch removed (a progress bar).
        """

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise DatabaseError unless the database answers and takes writes (DatabaseReadOnly
        from a standby)."""

    # -- workers ----------------------------------------------------------------------------

    @abc.abstractmethod
    def register_worker(self, worker_id: str, *, kind: str, queue: str, host: str, pid: int) -> None:
        """Record (or refresh) a consumer or relay in the registry."""

    @abc.abstractmethod
    def touch_worker(self, worker_id: str) -> None:
        """Say the worker is alive now (called while idle, too)."""

    @abc.abstractmethod
    def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker that stops cleanly."""

    # -- callback outbox --------------------------------------------------------------------

    @abc.abstractmethod
    def claim_deliveries(self, worker_id: str, *, limit: int = 10, lock_seconds: float = 60) -> list[Delivery]:
        """Take pending deliveries that are due, locked for lock_seconds so no other worker
        sends the same one at the same time."""

    @abc.abstractmethod
    def record_delivery(
        self,
        delivery_id: int,
        *,
        delivered: bool,
        status_code: int | None = None,
        error: str | None = None,
        retry_in_seconds: float | None = None,
        held_by: str | None = None,
    ) -> Delivery:
        """Record one attempt: delivered; or retry after retry_in_seconds; or (None) undeliverable.
        With held_by (the worker that claimed it), only while that worker still holds the
        delivery's lock, else DeliveryLockLost: a stale outcome never overwrites a newer one."""


class Operations(abc.ABC):
    """What an operator calls to change jobs and queues (`pq`, the dashboard's actions)."""

    # -- jobs -------------------------------------------------------------------------------

    @abc.abstractmethod
    def requeue(
        self, job_id: int, *, actor: str = "admin", expect: Status | None = None, message: str | None = None
    ) -> Job:
        """Back to unprocessed with fresh attempts (the event log keeps the history).

        `expect` restricts the move to that one status: an action confirmed on a screen is
        refused if the job has moved since.
        """

    @abc.abstractmethod
    def cancel(
        self, job_id: int, *, actor: str = "admin", expect: Status | None = None, reason: str | None = None
    ) -> Job:
        """Cancel a waiting job at once; for a running one, ask its worker to stop it (the job
        shows the request until the worker confirms or its lease expires)."""

    @abc.abstractmethod
    def fail(self, job_id: int, reason: str, *, actor: str = "admin", expect: Status | None = None) -> Job:
        """Move a job to manual_intervention with the operator's reason (a running one: as cancel)."""

    @abc.abstractmethod
    def redeliver(self, job_id: int, *, actor: str = "admin") -> Delivery:
        """Send the job's last callback again with fresh delivery attempts."""

    # -- queues -----------------------------------------------------------------------------

    @abc.abstractmethod
    def pause(self, queue: str | None = None, *, actor: str = "admin") -> QueueInfo:
        """Consumers stop claiming from the queue; running jobs finish."""

    @abc.abstractmethod
    def resume(self, queue: str | None = None, *, actor: str = "admin") -> QueueInfo:
        """Consumers claim from the queue again."""

    @abc.abstractmethod
    def relay_go(self, queue: str | None = None, *, actor: str = "admin") -> QueueInfo:
        """Resume the queue a relay waits on (--wait-for-go) and say which it is: the one named
        (QueueNotFound if no such queue is stored: a go never creates one), else the one queue
        that a registered relay serves and that is paused (AmbiguousQueue when several are,
        QueueNotFound when none is)."""

    @abc.abstractmethod
    def set_seats(self, queue: str, seats: int) -> QueueInfo:
        """How many jobs of the queue may be under_process at once (default PQ_MAX_RUNNING)."""

    @abc.abstractmethod
    def set_queue_policy(
        self,
        queue: str,
        *,
        seats: int | None = None,
        max_attempts: int | None = None,
        job_timeout: float | None = None,
        lease_seconds: float | None = None,
        retry_backoff_seconds: float | None = None,
        timeout_retries: int | None = None,
        actor: str = "admin",
    ) -> QueueInfo:
        """Store the queue's policy (each value given; None keeps what is stored), so every host
        reads the same one; it holds from the next claim. Unset values are the PQ_ defaults.

        A lowered max_attempts also ends, in the same transaction, every waiting job of the queue
        (without a limit of its own) whose attempts already reach it: manual_intervention, with
        an event saying why (their ids are in the answer's `ended`)."""

    # -- maintenance ------------------------------------------------------------------------

    @abc.abstractmethod
    def backup(self, path: str) -> None:
        """Write a consistent copy of the database to path while it is in use."""


class Insights(abc.ABC):
    """What reads the queue without changing it (`pq` listings, the dashboard, the intake's GETs)."""

    # -- jobs -------------------------------------------------------------------------------

    @abc.abstractmethod
    def get_job(self, job_id: int) -> Job:
        """One job with its delivery state; JobNotFound if there is none."""

    @abc.abstractmethod
    def get_all_items(
        self,
        *,
        status: Status | str | Sequence[Status | str] | None = None,
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        oldest_first: bool = False,
        since_seconds: float | None = None,
        search: str | None = None,
        partner: str | None = None,
    ) -> Page:
        """A page of jobs, newest first unless oldest_first; pass next_cursor to go on.

        `since_seconds` keeps jobs created that recently; `search` matches the payload text;
        `partner` keeps that partner's jobs.
        """

    @abc.abstractmethod
    def count_items(
        self,
        *,
        status: Status | str | Sequence[Status | str] | None = None,
        queue: str | None = None,
        since_seconds: float | None = None,
        search: str | None = None,
        partner: str | None = None,
    ) -> int:
        """How many jobs get_all_items would walk through with these filters."""

    @abc.abstractmethod
    def next_items(self, *, queue: str | None = None, limit: int = 10, partner: str | None = None) -> list[Job]:
        """The waiting jobs first in line, in the order they will be claimed (with `partner`: its
        own, in the order the claim takes them among its jobs)."""

    @abc.abstractmethod
    def wait(self, job_id: int) -> Wait | None:
        """The submitter's view of the job (pqueue/waitline.py): for a waiting one, its position,
        start and finish estimates and every reason it waits; for a running one, its finish
        estimate; None once it is finished. JobNotFound for an unknown id. Another partner is
        never named in it, so it can be shown to the job's own partner as it is."""

    @abc.abstractmethod
    def waits(self, *, partner: str | None = None, queue: str | None = None, limit: int = 10) -> list[tuple[Job, Wait]]:
        """The waiting jobs (of the partner) first in line with their waits, in predicted order."""

    @abc.abstractmethod
    def calibration(self) -> list[Calibration]:
        """Per queue, how the recorded predictions fared: the share of jobs that started by
        their predicted p90 and by their latest (over the latest 1,000 predictions)."""

    @abc.abstractmethod
    def holds(self, job_ids: Sequence[int]) -> dict[int, Hold]:
        """Which of these jobs a consumer holds to start next in its seat (PQ_CLAIM_AHEAD), by
        job id: such a job still reads as waiting, so `pq`, the dashboard and /metrics ask here.
        Only a standing hold counts (the job it waits behind still runs under the same lease);
        ids of jobs that are not held, or do not exist, are simply absent."""

    @abc.abstractmethod
    def events(self, job_id: int) -> list[Event]:
        """The job's timeline, oldest first."""

    @abc.abstractmethod
    def delivery(self, job_id: int) -> Delivery | None:
        """The job's latest delivery, if it has one."""

    # -- the whole queue --------------------------------------------------------------------

    @abc.abstractmethod
    def stats(self, *, partner: str | None = None) -> Stats:
        """Counts by queue and status, oldest waiting age, running jobs, delivery counts (with
        `partner`: of its jobs only; `queues` lists every queue either way)."""

    @abc.abstractmethod
    def throughput(self, *, window_seconds: float = 3600, bucket_seconds: int = 60) -> list[ThroughputPoint]:
        """Jobs reaching processed / crashed / manual_intervention per time bucket."""

    @abc.abstractmethod
    def waiting_changes(self, *, window_seconds: float = 3600, bucket_seconds: int = 60) -> list[tuple[datetime, int]]:
        """(bucket start, net change of the waiting count) per time bucket with a change, oldest
        first, from the event log: with the waiting count now, the waiting depth over the window."""

    @abc.abstractmethod
    def run_durations(self, *, window_seconds: float = 3600, limit: int = 5000) -> list[float]:
        """Seconds from start to finish of jobs processed within the window, newest first."""

    @abc.abstractmethod
    def queues(self) -> list[QueueInfo]:
        """Every queue that has jobs or settings."""

    @abc.abstractmethod
    def workers(self) -> list[Worker]:
        """Every registered worker with its last-seen age and current job."""

    # -- the database -----------------------------------------------------------------------

    @abc.abstractmethod
    def now(self) -> datetime:
        """The database's clock plus clock_offset, in UTC."""

    @abc.abstractmethod
    def replication(self) -> Replication:
        """The replication guarantee in force: what an acknowledged job survives (a failover)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data lives (absolute file path, or URL without password), for logs."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""


class Partners(abc.ABC):
    """What `pq partner`, `pq key`, the dashboard and the intake's key check call.

    A partner's name is 1 to 64 of a-z, 0-9 and '-'; `default` always exists (jobs without a
    partner's key are its). Every change writes the partner's event log in its transaction.
    """

    @abc.abstractmethod
    def add_partner(
        self,
        name: str,
        *,
        weight: float = 1.0,
        max_running: int | None = None,
        rate_per_minute: int | None = None,
        actor: str = "admin",
    ) -> Partner:
        """A new partner; InvalidInput for a bad name or limit, or a name already taken."""

    @abc.abstractmethod
    def set_partner(
        self,
        name: str,
        *,
        weight: float | None = None,
        max_running: int | None = None,
        rate_per_minute: int | None = None,
        no_max_running: bool = False,
        no_rate: bool = False,
        callback_secret: str | None = None,
        secret_grace_seconds: float = 86400.0,
        actor: str = "admin",
    ) -> Partner:
        """Change what is given (a new weight counts for runs charged from now on). A new callback
        secret signs at once; the previous one signs beside it for `secret_grace_seconds`."""

    @abc.abstractmethod
    def disable_partner(self, name: str, *, enable: bool = False, actor: str = "admin") -> Partner:
        """Its keys stop working (enable: they work again); its stored jobs still run."""

    @abc.abstractmethod
    def partners(self) -> list[Partner]:
        """Every partner with its jobs waiting and running and its seat time in the last hour and day."""

    @abc.abstractmethod
    def partner(self, name: str) -> Partner:
        """One partner, as partners() shows it; PartnerNotFound."""

    @abc.abstractmethod
    def partner_events(self, name: str) -> list[PartnerEvent]:
        """The partner's log: every change to it and its keys, oldest first."""

    @abc.abstractmethod
    def partner_settings(self, name: str) -> Partner:
        """The partner's stored settings without its usage (one primary-key read, cheap enough for
        the intake's per-request checks); PartnerNotFound."""

    @abc.abstractmethod
    def callback_secrets(self, name: str) -> list[str]:
        """The secrets signing its callbacks now, newest first; empty: PQ_CALLBACK_SECRET signs."""

    @abc.abstractmethod
    def create_key(
        self,
        partner: str,
        *,
        scopes: Sequence[str] = ("submit", "read", "cancel"),
        expires_in_seconds: float | None = None,
        name: str | None = None,
        actor: str = "admin",
    ) -> NewKey:
        """A new key of the partner; its text is in the result and nowhere else."""

    @abc.abstractmethod
    def keys(self, partner: str | None = None) -> list[ApiKey]:
        """Keys as listings show them (never the secret), of one partner or all."""

    @abc.abstractmethod
    def revoke_key(self, key_id: str, *, actor: str = "admin") -> ApiKey:
        """The key stops working at once; PartnerNotFound for an unknown id."""

    @abc.abstractmethod
    def rotate_key(self, key_id: str, *, grace_seconds: float = 86400.0, actor: str = "admin") -> NewKey:
        """A new key with the same partner, scopes and name; the old one works `grace_seconds` more."""

    @abc.abstractmethod
    def authenticate(self, key: str) -> Caller:
        """Whose key this is and what it may do; KeyRejected saying why it may not be used."""

    @abc.abstractmethod
    def keys_required(self) -> bool:
        """Whether any key was ever made (from then on the intake needs one on every request)."""


class PersistentQInterface(WorkQueue, Operations, Insights, Partners):
    """A durable, leased, seat-capped job queue: all four roles. It adds no method of its own."""

    settings: Settings
    clock_offset: timedelta
