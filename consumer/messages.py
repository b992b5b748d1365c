"""Every message between the consumer, its helper and the job processes, declared once.

Each message is a small class (a NamedTuple: it pickles as a tuple, and `match` reads it by its
fields), imported by both ends, so a message that one end sends and the other does not know is a
type error, not a string that matches nothing. The helper and the job processes import this
module too: it imports nothing beyond `typing` (never `threading`, see consumer/channel.py).

    consumer ──Start, Fork, Deadline, StartAfter──▶ helper
    consumer ◀─Ready | Broken, then Forked (+ the job process's socket), ForkFailed,
               Exited, Overdue, Started──────────── helper
    consumer ◀─Waiting, then Answer─────────────── job process
    consumer ──Payload──────────────────────────▶ job process
    helper ───one byte on the start gate─────────▶ job process (a held payload's go)

A held payload (Payload with held=True) waits in its job process until the helper opens its
start gate: after it has reaped the job process named by StartAfter, and only before the held
job's kill deadline. The seat's hand-off then needs no word from the consumer (see
docs/architecture.md, "The seat's hand-off").
"""

from __future__ import annotations

from typing import Any, NamedTuple

# -- consumer to helper ------------------------------------------------------------------------


class Start(NamedTuple):
    """Import the algorithm (once, first): `module:function`, and the consumer's Settings as JSON."""

    algorithm: str
    settings_json: str


class Fork(NamedTuple):
    """Fork one job process and pass its socket back (answered by Forked or ForkFailed)."""


class Deadline(NamedTuple):
    """The monotonic moment by which the job process `pid` and its group must be dead; sent
    before its payload and again after every renewal of its lease (it only moves forward)."""

    pid: int
    when: float


class StartAfter(NamedTuple):
    """Open the start gate of the job process `pid` (which holds its payload) once the job process
    `after` is reaped and its group killed; at once if it already is. Never past `pid`'s kill
    deadline (a Deadline for `pid` goes first: without one, the gate stays shut)."""

    pid: int
    after: int


# -- helper to consumer ------------------------------------------------------------------------


class Ready(NamedTuple):
    """The algorithm is imported: fork requests are served from now on."""


class Broken(NamedTuple):
    """The algorithm cannot be imported, and why; the helper exits."""

    why: str


class Forked(NamedTuple):
    """A job process was forked; its socket follows on the channel (SCM_RIGHTS)."""

    pid: int


class ForkFailed(NamedTuple):
    """fork(2) failed, and why (the consumer asks again before its next claim)."""

    why: str


class Exited(NamedTuple):
    """The job process `pid` was reaped, with its wait status; what was left of its group is killed."""

    pid: int
    wait_status: int


class Started(NamedTuple):
    """The start gate of the job process `pid` was opened at the monotonic moment `at`: its held
    payload runs from then on. Sent before that process's Exited."""

    pid: int
    at: float


class Overdue(NamedTuple):
    """The job process `pid` was killed at its deadline, `late` seconds after it."""

    pid: int
    late: float


# -- between the consumer and a job process ----------------------------------------------------


class Waiting(NamedTuple):
    """The job process is in its own group with its parent-death signal set: it may be given a job."""

    pid: int


class Payload(NamedTuple):
    """The job to run; held, it waits for the helper to open the process's start gate."""

    job_id: int
    payload: Any
    held: bool = False


class Answer(NamedTuple):
    """How the algorithm ended: kind "ok" with the result as JSON text, or "error" or
    "permanent" (the input can never succeed) with the traceback's tail."""

    job_id: int
    kind: str
    text: str


ToHelper = Start | Fork | Deadline | StartAfter
FromHelper = Ready | Broken | Forked | ForkFailed | Exited | Overdue | Started
