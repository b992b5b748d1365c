"""The jobs resource as /docs describes it: submitting one job or a batch, reading jobs back, and
cancelling one.

A partner sees and cancels its own jobs only: another partner's job is answered exactly as an
unknown id (404, the same body), and listings keep to the caller's partner. An admin key sees
every partner's jobs, and its answers name each job's `partner`.

`POST /jobs`, nearly all of the traffic, is declared here but runs in `producer/submit_path.py`,
which reads its whole way from arrival to answer. The other routes are plain `def`: the store's
calls block, so FastAPI runs them in its threadpool and the event loop keeps serving other
requests.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response, Security

from pqueue import (
    CLAIMABLE,
    Caller,
    IdempotencyConflict,
    InvalidInput,
    Job,
    JobNotFound,
    NewJob,
    PutResult,
    Status,
    Wait,
)
from producer import submit_path
from producer.callers import ADMIN, Forbidden, may
from producer.deps import Canceller, Intake, IntakeDep, Reader, Submitter, identity_of, partner_key
from producer.errors import RequestRejected, field_error
from producer.routes import errors
from producer.schemas import (
    MAX_BATCH,
    MAX_JOB_ID,
    MAX_PAGE,
    BatchSubmitted,
    Cursor,
    FieldError,
    IdempotencyKey,
    JobIn,
    JobOut,
    JobPage,
    JobSummary,
    PartnerName,
    QueueName,
    Submitted,
)

router = APIRouter(tags=["jobs"])

WAITING_OR_RUNNING = {*CLAIMABLE, Status.UNDER_PROCESS}

KeyHeader = Annotated[
    IdempotencyKey | None,
    Header(alias=submit_path.KEY_HEADER, description=submit_path.KEY_HEADER_MEANING),
]

# Declared first, as before, so the router's order and /openapi.json stay the same. The
# SubmitShortcut middleware sends POST /jobs to the endpoint without this route; the router
# serves only what the shortcut leaves to it.
router.add_api_route(
    "/jobs",
    submit_path.submit_job,
    methods=["POST"],
    status_code=202,
    response_model=Submitted,
    openapi_extra=submit_path.OPENAPI,
    dependencies=[Security(partner_key, scopes=["submit"])],
    responses=errors(
        400,
        409,
        413,
        415,
        422,
        429,
        503,
        507,
        also={200: {"model": Submitted, "description": "a repeated key: the partner's first job"}},
    ),
)


@router.post(
    "/jobs/batch",
    status_code=202,
    responses=errors(
        400,
        409,
        413,
        415,
        422,
        429,
        503,
        507,
        also={200: {"model": BatchSubmitted, "description": "every key was a repeat"}},
    ),
)
def submit_batch(
    jobs: Annotated[list[JobIn], Body(min_length=1, max_length=MAX_BATCH)],
    request: Request,
    response: Response,
    intake: IntakeDep,
    caller: Submitter,
    idempotency_key: KeyHeader = None,
) -> BatchSubmitted:
    """Store several jobs in one transaction: all of them, or (with a per-item report) none."""
    if idempotency_key is not None:
        raise InvalidInput("Idempotency-Key", "a batch takes an idempotency_key per job, not the header")
    new_jobs = _new_jobs(intake, jobs, caller.partner)
    intake.depth.check_room(len(new_jobs))
    quota = intake.rates.take(caller.partner, identity_of(request).rate_per_minute, len(new_jobs))
    if quota is not None:
        response.headers.update(quota.headers())
    try:
        puts = intake.store.put_items(new_jobs)
    except IdempotencyConflict as exc:
        using_key = [index for index, job in enumerate(new_jobs) if job.idempotency_key == exc.key]
        conflicts = [FieldError(field="idempotency_key", message=str(exc), index=index) for index in using_key]
        raise RequestRejected(409, conflicts, str(exc)) from exc
    answers = [_submitted(intake, put, job.queue, job.idempotency_key) for put, job in zip(puts, new_jobs, strict=True)]
    response.status_code = 202 if any(put.created for put in puts) else 200
    return BatchSubmitted(jobs=answers)


JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID)]
PartnerFilter = Annotated[
    PartnerName | None, Query(description="an admin key's filter: one partner's jobs (others see only their own)")
]


@router.get("/jobs/{job_id}", responses=errors(404, 422, 503))
def read_job(job_id: JobId, intake: IntakeDep, caller: Reader) -> JobOut:
    """The job's status, attempts, timestamps, result or error, and callback delivery; while it
    waits or runs, `wait`: its position, start and finish estimates and why it waits."""
    job = visible_job(intake, caller, job_id)
    return JobOut.of(job, show_partner=may(caller, ADMIN), wait=wait_of(intake, job))


def wait_of(intake: Intake, job: Job) -> Wait | None:
    """The job's wait while it waits or runs (computed only then: a finished job costs nothing more)."""
    return intake.store.wait(job.id) if job.status in WAITING_OR_RUNNING else None


@router.post("/jobs/{job_id}/cancel", responses=errors(404, 409, 422, 503))
def cancel_job(job_id: JobId, intake: IntakeDep, caller: Canceller) -> JobOut:
    """Cancel a waiting job at once; a running one is stopped by its consumer (`stop_requested`
    shows the request until then). A job already finished answers 409."""
    visible_job(intake, caller, job_id)
    actor = f"{caller.partner} (key {caller.key_id or 'PQ_API_TOKEN'})"
    job = intake.store.cancel(job_id, actor=actor, reason="cancelled through the intake")
    return JobOut.of(job, show_partner=may(caller, ADMIN))


@router.get("/jobs", responses=errors(422, 503))
def list_jobs(
    intake: IntakeDep,
    caller: Reader,
    status: Annotated[list[Status] | None, Query(description="repeat to ask for several")] = None,
    queue: Annotated[QueueName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[Cursor | None, Query(description="next_cursor of the previous page")] = None,
    partner: PartnerFilter = None,
) -> JobPage:
    """A page of the caller's jobs, newest first, for partners that poll."""
    page = intake.store.get_all_items(
        status=status, queue=queue, limit=limit, cursor=cursor, partner=partner_filter(caller, partner)
    )
    shown = may(caller, ADMIN)
    return JobPage(jobs=[JobSummary.of(job, show_partner=shown) for job in page.items], next_cursor=page.next_cursor)


def visible_job(intake: Intake, caller: Caller, job_id: int) -> Job:
    """The job, when the caller may see it: its own, or any for an admin. Another partner's job
    raises exactly what an unknown id raises, so its answer tells nothing (not even that it exists)."""
    job = intake.store.get_job(job_id)
    if job.partner != caller.partner and not may(caller, ADMIN):
        raise JobNotFound(job_id)
    return job


def partner_filter(caller: Caller, asked: str | None) -> str | None:
    """Whose jobs a listing shows: an admin's choice (None: every partner's); anyone else's own.
    Asking for another partner's jobs without admin is a 403."""
    if may(caller, ADMIN):
        return asked
    if asked is not None and asked != caller.partner:
        raise Forbidden(ADMIN, caller)
    return caller.partner


def _new_jobs(intake: Intake, jobs: list[JobIn], partner: str) -> list[NewJob]:
    """The batch's jobs; every bad callback_url is reported at once, with its item's index."""
    new_jobs: list[NewJob] = []
    problems: list[FieldError] = []
    for index, job in enumerate(jobs):
        try:
            new_jobs.append(intake.new_job(job, partner, ""))
        except InvalidInput as exc:
            problems.append(field_error(exc, index))
    if problems:
        raise RequestRejected(422, problems)
    return new_jobs


def _submitted(intake: Intake, put: PutResult, queue: str | None, key: str | None) -> Submitted:
    """What a submission answers, as POST /jobs answers it; for a repeated key, the first job as it is now."""
    return submit_path.created(intake, put, queue, key) if put.created else submit_path.repeated(intake, put)
