"""The original documents' routes, in their words (docs/seeds.md).

- `GET /`, `GET /calculate/{number1}/{number2}` and `GET /get_answer/{identifier}`: the
  calculate service of the addition document. Each calculation is a job in the `calculate`
  queue, which its own consumer runs with the adder (supervisord.conf, program `adder`), so it
  never takes the licensed algorithm's seat. The identifier is the job's id.
- `GET /go/`: the order-status document's go, the same call as `POST /relay/go`.

A calculation is submitted through the intake's own steps (validation, backpressure, the
partner's rate, group commit), and an answer is read as `GET /jobs/{id}` reads a job: same
dependency, same rules (the submit and read scopes; another partner's job does not exist).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Security
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from pqueue import InvalidInput, JobNotFound, Status, partner_error
from producer import submit_path
from producer.deps import IntakeDep, Reader, Submitter, identity_of, partner_key
from producer.routes import errors
from producer.routes.jobs import visible_job, wait_of
from producer.routes.queues import relay_go
from producer.schemas import MAX_JOB_ID, JobIn
from producer.wait_schemas import WaitOut

CALCULATE_QUEUE = "calculate"  # the adder's own queue (supervisord.conf's `adder` runs it)
NOT_THERE = "identifier does not exist"
PLEASE_WAIT = "please wait: the answer is not computed yet"

router = APIRouter(tags=["calculate"])

Number = Annotated[float, Path(description="a number, such as 2 or 2.5")]


class Index(BaseModel):
    """The intake answers and where to start."""

    message: str
    docs: str = "/docs"


class Calculation(BaseModel):
    """A stored calculation: its identifier, and the payload the adder gets."""

    unique_identifier: int
    payload: dict[str, Any] = Field(description="{number1, number2, unique_identifier}")
    status: Status


class Answer(BaseModel):
    """The answer to a calculation, once there is one; else why not yet."""

    unique_identifier: int
    status: Status
    message: str
    number1: float | int
    number2: float | int
    answer: float | int | None = None
    error: str | None = None
    wait: WaitOut | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="while it waits or runs: its position, start and finish estimates and why it waits",
    )


@router.get("/", response_model=Index, dependencies=[Security(partner_key)])
def index() -> Index:
    """A successful message: the intake is up (the consumers listen for new tasks on their own)."""
    return Index(message="pqueue is running: POST /jobs, or GET /calculate/{number1}/{number2} to add two numbers")


@router.get("/calculate/{number1}/{number2}", responses=errors(422, 503, 507))
async def calculate(
    number1: Number, number2: Number, intake: IntakeDep, caller: Submitter, request: Request
) -> Calculation:
    """Store `number1 + number2` for the adder; answers its identifier once stored."""
    numbers = {"number1": _plain(number1), "number2": _plain(number2)}
    for name, value in numbers.items():
        if not math.isfinite(value):
            raise InvalidInput(name, f"must be a finite number, got {value}")
    job = JobIn.model_validate({"payload": numbers, "queue": CALCULATE_QUEUE})
    new_job = intake.new_job(job, caller.partner, "")
    intake.depth.check_room(1)
    intake.rates.take(caller.partner, identity_of(request).rate_per_minute, 1)
    put = await intake.committer.submit(new_job)
    submit_path.created(intake, put, CALCULATE_QUEUE, None)
    return Calculation(
        unique_identifier=put.id, payload={**numbers, "unique_identifier": put.id}, status=Status.UNPROCESSED
    )


@router.get("/get_answer/{identifier}", responses=errors(404, 422, 503))
def get_answer(identifier: Annotated[int, Path(ge=1, le=MAX_JOB_ID)], intake: IntakeDep, caller: Reader) -> Answer:
    """404 for an identifier that does not exist (or is another partner's); 200 with `please
    wait`, or with the answer."""
    try:
        job = visible_job(intake, caller, identifier)
    except JobNotFound:
        raise HTTPException(404, NOT_THERE) from None
    payload = job.payload if isinstance(job.payload, dict) else {}
    if job.queue != CALCULATE_QUEUE or not {"number1", "number2"} <= payload.keys():
        raise HTTPException(404, NOT_THERE)
    answer = Answer(
        unique_identifier=job.id,
        status=job.status,
        message=PLEASE_WAIT,
        number1=payload["number1"],
        number2=payload["number2"],
        wait=None,
    )
    if job.status == Status.PROCESSED:
        return answer.model_copy(update={"message": "answer computed", "answer": (job.result or {}).get("sum")})
    if job.status in (Status.MANUAL_INTERVENTION, Status.CANCELLED):
        update = {"message": f"no answer: the calculation is {job.status}", "error": partner_error(job.error)}
        return answer.model_copy(update=update)
    wait = wait_of(intake, job)
    return answer.model_copy(update={"wait": WaitOut.of(wait) if wait else None})


# The same endpoint as POST /relay/go, whatever it takes and answers.
router.add_api_route(
    "/go/",
    relay_go,
    methods=["GET"],
    tags=["relay"],
    summary="Relay go (GET)",
    description="Start feeding the broker relay: the same as `POST /relay/go`.",
    responses=errors(404, 409, 422, 503),
)


def _plain(number: float) -> float | int:
    """2.0 as 2, so the payload reads as the request did."""
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
