"""Every statement pqueue runs, one module per concern; the store decides when each one runs.

    claim.py     the claim and the checks idle consumers run     submit.py   puts
    holds.py     jobs claimed ahead for a seat, and their start
    moves.py     the fenced UPDATE of every transition, events    outbox.py   callback deliveries
    reads.py     listings, timelines, stats, queues, workers      registry.py queue settings, workers
    purge.py     deleting finished jobs                           fair.py     the fair share of the seats
    partners.py  partners, their keys and usage                   ids.py      ids never given twice (DDL)
    waitline.py  what a job's wait is computed from

Where SQLite and PostgreSQL need statements of different shapes (the claim, a put, the processed
outcome), both shapes sit side by side in the concern's module, and `Statements` picks one per
backend here, once. Clauses that differ within a statement come from `pqueue/dialects.py`.

The one rule for how a statement runs: those every job runs are DirectStatements, compiled
once and run on the driver's cursor (`pqueue/direct.py`); the rest are SQLAlchemy Core,
run with Connection.execute (an expanding IN cannot be direct).
"""

from __future__ import annotations

from sqlalchemy import select

from pqueue.sql import claim, moves, submit
from pqueue.sql.context import Context
from pqueue.sql.holds import Holds
from pqueue.sql.outbox import Outbox
from pqueue.sql.partners import PartnerStatements
from pqueue.sql.purge import Purge
from pqueue.sql.reads import Reads
from pqueue.sql.registry import Registry
from pqueue.sql.waitline import WaitlineReads
from pqueue.transactions import Locks

__all__ = ["Context", "Statements", "locks"]


class Statements:
    """The statements of one store at one clock offset (they embed the clock); each is built
    when first used and kept."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        backend = ctx.dialect.name
        self.claim: claim.Claim = claim.SHAPES[backend](ctx)
        self.holds = Holds(ctx, self.claim)
        self.put: submit.Put = submit.SHAPES[backend](ctx)
        self.moves: moves.Moves = moves.SHAPES[backend](ctx)
        self.outbox = Outbox(ctx)
        self.reads = Reads(ctx)
        self.registry = Registry(ctx)
        self.purge = Purge(ctx)
        self.partners = PartnerStatements(ctx)
        self.waitline = WaitlineReads(ctx)


def locks(ctx: Context, schema: str | None, channel: str) -> Locks:
    """The seat lock and wake-up statements every write transaction may run (none on SQLite)."""
    lock, wake = ctx.dialect.seat_lock(), ctx.dialect.wake_up()
    return Locks(
        seat_lock=ctx.direct(select(lock)) if lock is not None else None,
        wake_up=ctx.direct(select(wake)) if wake is not None else None,
        schema=schema,
        channel=channel,
    )
