"""The `wait` object of a waiting or running job (pqueue/waitline.py), as the intake answers it.

Another partner is never named in it: other partners' jobs appear only as counts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from pqueue import Estimate, Position, Reason, Wait

# No `rate_limited`: a partner's rate limits its submissions (POST /jobs answers 429 and stores
# nothing), never the start of a job already stored, so it can never be why a stored job waits.
ReasonCode = Literal[
    "queue_paused",
    "no_consumer",
    "scheduled",
    "backoff",
    "partner_cap",
    "seat_busy",
    "behind_own_jobs",
    "fair_share",
]


class PositionOut(BaseModel):
    """How many jobs are predicted to start before this one."""

    own: int = Field(description="the caller's own jobs")
    others: int = Field(description="other partners' jobs (a count only)")
    total: int
    exact: bool = Field(description="false: past the simulation's budget, extrapolated from its rate")

    @classmethod
    def of(cls, position: Position) -> PositionOut:
        return cls(own=position.own, others=position.others, total=position.total, exact=position.exact)


class EstimateOut(BaseModel):
    """A predicted moment: p50 and p90 from observed run times, and `latest`, a bound from the job
    timeout and attempt limits that holds while the seats keep serving."""

    p50: datetime | None
    p90: datetime | None
    latest: datetime | None
    why: str | None = Field(None, description="why p50/p90 (or latest) are absent", exclude_if=lambda v: v is None)

    @classmethod
    def of(cls, estimate: Estimate) -> EstimateOut:
        return cls(p50=estimate.p50, p90=estimate.p90, latest=estimate.latest, why=estimate.why)


def _absent(value: object) -> bool:
    return value is None


class ReasonOut(BaseModel):
    """One reason the job is not running now (docs/producer.md lists every code)."""

    code: ReasonCode
    message: str
    until: datetime | None = Field(None, description="when it ends, where that is known")
    attempt: int | None = Field(None, exclude_if=_absent, description="backoff: the attempt it waits to make")
    max_attempts: int | None = Field(None, exclude_if=_absent, description="backoff: the attempts it may make")
    since: datetime | None = Field(None, exclude_if=_absent, description="queue_paused: since when")
    by: str | None = Field(None, exclude_if=_absent, description="queue_paused: who paused it")
    jobs: int | None = Field(None, exclude_if=_absent, description="behind_own_jobs, fair_share: jobs going first")
    weight_share: float | None = Field(None, exclude_if=_absent, description="fair_share: your weight's share")
    used_share: float | None = Field(None, exclude_if=_absent, description="fair_share: your share of the last day")
    running: int | None = Field(None, exclude_if=_absent, description="partner_cap: your jobs running")
    cap: int | None = Field(None, exclude_if=_absent, description="partner_cap: your cap")
    seats: int | None = Field(None, exclude_if=_absent, description="seat_busy: the queue's seats")

    @classmethod
    def of(cls, reason: Reason) -> ReasonOut:
        return cls.model_validate(
            {"code": reason.code, "message": reason.message, "until": reason.until, **reason.details}
        )


class WaitOut(BaseModel):
    """Where the job is in line, when it will start and finish, and why it is not running now."""

    position: PositionOut | None = Field(description="absent for a running job")
    eta_start: EstimateOut | None = Field(description="absent for a running job")
    eta_finish: EstimateOut
    confidence: Literal["low", "medium", "high"]
    reasons: list[ReasonOut] = Field(description="every reason it is not running now, the binding one first")
    computed_at: datetime

    @classmethod
    def of(cls, wait: Wait) -> WaitOut:
        return cls(
            position=PositionOut.of(wait.position) if wait.position else None,
            eta_start=EstimateOut.of(wait.eta_start) if wait.eta_start else None,
            eta_finish=EstimateOut.of(wait.eta_finish),
            confidence=wait.confidence,  # type: ignore[arg-type]
            reasons=[ReasonOut.of(reason) for reason in wait.reasons],
            computed_at=wait.computed_at,
        )
