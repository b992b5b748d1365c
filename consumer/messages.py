"""Every message between the consumer, its helper and the job processes, declared once.

Each message is a small class (a NamedTuple: it pickles as a tuple, and `match` reads it by its
fields), imported by both ends, so a message that one end sends and the other does not know is a
type error, not a string that matches nothing. The helper and the job processes import this
module too: it imports nothing beyond `typing` (never `threading`, see consumer/channel.py).

    consumer ──Start, Fork, Deadline, StartAfter──▶ helper
    consumer ◀─Ready | Broken, then Forked (+ the job process's socket), ForkFailed,
               Exited, Overdue───────────────────── helper
    consumer ◀─Waiting, then (held: Began) Answer── job process
    consumer ──Payload──────────────────────────▶ job process
    helper ───the start gate: go, or armed (a pidfd of the job before, and the kill deadline,
              then every later deadline)────────▶ job process (a held payload)
    helper ◀──the start gate: done (the algorithm returned, its Answer sent)── job process
              (heard instead by the held job behind it, armed with that gate's helper end)

A held payload (Payload with held=True) waits in its job process on its start gate. Armed by
StartAfter, it starts by itself the moment the kernel says the job process before it has ended
(its pidfd readable), if its kill deadline is still ahead; otherwise on the helper's go, sent
once that process is reaped and only before the deadline. It says Began before the algorithm
runs. The usual start is quicker: the job process before it says done on its own gate once its
Answer is sent, and the held job, armed with that gate too, hears it, kills that process's
group and starts (the helper does the kill and says go when it heard the word instead). The
pidfd is the fallback, so the seat's hand-off needs no word from the consumer, nor
from the helper (see docs/architecture.md, "The seat's hand-off"); the gate's bytes are in
consumer/job_process.py.
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
    """Let the job process `pid` (which holds its payload) start once the job process `after` has
    ended: its gate is armed with a pidfd of `after` and `pid`'s kill deadline (every later
    Deadline for `pid` follows on the gate), and opened once `after` is reaped, at once if it
    already is. Never past `pid`'s kill deadline (a Deadline for `pid` goes first: without one,
    the gate stays shut)."""

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


class Began(NamedTuple):
    """A held payload starts at the monotonic moment `at` (said before the algorithm runs: a job
    process gone without saying it never ran its held job)."""

    pid: int
    at: float


class Answer(NamedTuple):
    """How the algorithm ended: kind "ok" with the result as JSON text, or "error" or
    "permanent" (the input can never succeed) with the traceback's tail."""

    job_id: int
    kind: str
    text: str


ToHelper = Start | Fork | Deadline | StartAfter
FromHelper = Ready | Broken | Forked | ForkFailed | Exited | Overdue
