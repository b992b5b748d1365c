"""What the intake accepts and answers, as pydantic models (they are also the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pqueue import AgentStatus, Delivery, DeliveryStatus, Job, QueueInfo, Status, Wait, partner_error
from producer.wait_schemas import WaitOut

MAX_PRIORITY = 2**31 - 1
MAX_JOB_ID = 2**63 - 1
MAX_BATCH = 1000
MAX_PAGE = 1000
# No control characters: they make queue names and keys unreadable in logs and tables, and
# PostgreSQL cannot store NUL at all.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

QueueName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)]
CallbackUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=PRINTABLE)]
Cursor = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")]
PARTNER_NAME = r"^[a-z0-9-]{1,64}$"
PartnerName = Annotated[str, StringConstraints(pattern=PARTNER_NAME)]

SUBMIT_EXAMPLE: dict[str, Any] = {
    "payload": {"readings": [{"vendor": "acme", "value": 12.5}, {"vendor": "acme", "value": 13.1}]},
    "callback_url": "https://partner.example/pq-results",
    "idempotency_key": "order-4711",
}


class JobIn(BaseModel):
    """One request to run the algorithm on `payload`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SUBMIT_EXAMPLE]})

    payload: Any = Field(description="any JSON value; handed to the algorithm as it is")
    callback_url: CallbackUrl | None = Field(
        None, description="http(s) URL the outcome is POSTed to (signed); must be allowed by PQ_CALLBACK_ALLOW"
    )
    idempotency_key: IdempotencyKey | None = Field(
        None, description="the same key again returns the first job instead of storing a new one"
    )
    priority: int = Field(
        0, ge=-MAX_PRIORITY, le=MAX_PRIORITY, strict=True, description="lower runs first; then oldest first"
    )
    queue: QueueName | None = Field(None, description="queue to put the job in (default PQ_QUEUE)")


class Submitted(BaseModel):
    """The answer to a submission: the job's id, once it is stored."""

    id: int
    status: Status
    queue: str
    idempotency_key: str | None = None


class BatchSubmitted(BaseModel):
    """One answer per submitted job, in the order they were sent."""

    jobs: list[Submitted]


class DeliveryOut(BaseModel):
    """How the callback of the job's outcome is going."""

    status: DeliveryStatus
    url: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            status=delivery.status,
            url=delivery.url,
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            next_attempt_at=delivery.next_attempt_at,
            last_attempt_at=delivery.last_attempt_at,
            delivered_at=delivery.delivered_at,
        )


class JobSummary(BaseModel):
    """A job in a list: where it is, without its payload or result."""

    id: int
    queue: str
    status: Status
    priority: int
    attempts: int
    max_attempts: int
    idempotency_key: str | None
    created_at: datetime
    run_after: datetime
    started_at: datetime | None
    finished_at: datetime | None
    agent_status: AgentStatus | None = Field(
        None,
        description="a job sent to agents through the relay, while under_process: queued (on the broker, no "
        "agent has taken it) or processing (an agent reported it)",
    )
    partner: str | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="the partner the job belongs to; only in answers to an admin key (others see only their own)",
    )
    wait: WaitOut | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="while it waits or runs: its position, start and finish estimates and why it waits",
    )

    @classmethod
    def of(cls, job: Job, *, show_partner: bool = False, wait: Wait | None = None) -> JobSummary:
        return cls(**_summary_fields(job, show_partner), wait=WaitOut.of(wait) if wait else None)


class JobOut(JobSummary):
    """One job with its payload, its outcome once there is one, and its callback delivery."""

    payload: Any
    result: Any = Field(None, description="the algorithm's answer, once the job is processed")
    error: str | None = Field(
        None, description="why it did not succeed, once crashed, failed or cancelled (its last line, no traceback)"
    )
    operator_reason: str | None = Field(
        None, description="why an operator failed the job (`pq fail --reason`); `error` keeps its last error"
    )
    callback_url: str | None
    stop_requested: Status | None = Field(None, description="an operator asked the running job to stop")
    delivery: DeliveryOut | None = Field(None, description="the outcome's callback, once there is one")

    @classmethod
    def of(cls, job: Job, *, show_partner: bool = False, wait: Wait | None = None) -> JobOut:
        processed = job.status == Status.PROCESSED
        return cls(
            **_summary_fields(job, show_partner),
            wait=WaitOut.of(wait) if wait else None,
            payload=job.payload,
            result=job.result if processed else None,
            error=None if processed else partner_error(job.error),
            operator_reason=job.operator_reason,
            callback_url=job.callback_url,
            stop_requested=job.stop_request,
            delivery=DeliveryOut.of(job.delivery) if job.delivery else None,
        )


def _summary_fields(job: Job, show_partner: bool) -> dict[str, Any]:
    return {
        **({"partner": job.partner} if show_partner else {}),
        "id": job.id,
        "queue": job.queue,
        "status": job.status,
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "idempotency_key": job.idempotency_key,
        "created_at": job.created_at,
        "run_after": job.run_after,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "agent_status": job.agent_status,
    }


class JobPage(BaseModel):
    """A page of jobs, newest first; pass next_cursor as `cursor` for the next page."""

    jobs: list[JobSummary]
    next_cursor: str | None


class NextJobs(BaseModel):
    """The caller's waiting jobs in the order they are predicted to start, each with its wait."""

    jobs: list[JobSummary]


class QueueOut(BaseModel):
    """A queue's seats and whether consumers may claim from it."""

    name: str
    seats: int
    paused: bool

    @classmethod
    def of(cls, info: QueueInfo) -> QueueOut:
        return cls(name=info.name, seats=info.seats, paused=info.paused)


class Health(BaseModel):
    """The intake is up and its database answers."""

    status: str = "ok"


class FieldError(BaseModel):
    """One rejected field; `index` is the item's position in a batch."""

    field: str
    message: str
    index: int | None = None


class ErrorOut(BaseModel):
    """Every error answer: one line a partner can act on, and the fields at fault."""

    detail: str
    errors: list[FieldError] | None = None
