"""Partners and their keys: the rows `pq partner` and `pq key` write, the lookup of a key by its
digest that every authenticated request runs, and each partner's usage of the seats."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqlalchemy import and_, bindparam, case, exists, func, literal, null, or_, select, update

from pqueue.direct import DirectStatement
from pqueue.schema import api_keys, jobs, partner_events, partners
from pqueue.sql.context import Context
from pqueue.states import CLAIMABLE, Status

WAITING = [status.value for status in CLAIMABLE]
ENDED = [status.value for status in Status if status not in (Status.UNPROCESSED, Status.UNDER_PROCESS)]

# A key's last use is written at most this often, so authenticating is not a write per request.
LAST_USED_EVERY_SECONDS = 300.0


class PartnerStatements:
    """The statements of pq_partners, pq_api_keys and pq_partner_events, for one context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- partners ---------------------------------------------------------------------------------

    def add(self, name: str, values: dict[str, Any]) -> Any:
        """A new partner's row, returned; nothing when the name is taken."""
        insert = self.ctx.dialect.insert(partners).values(name=name, created_at=self.ctx.now, **values)
        return insert.on_conflict_do_nothing(index_elements=["name"]).returning(*partners.c)

    def change(self, name: str, values: dict[str, Any]) -> Any:
        """The partner's row with `values` set (a value may be NOW-relative SQL), returned."""
        return update(partners).where(partners.c.name == name).values(**values).returning(*partners.c)

    @staticmethod
    def one(name: str) -> Any:
        return select(partners).where(partners.c.name == name)

    @staticmethod
    def all() -> Any:
        return select(partners).order_by(partners.c.name)

    @cached_property
    def usable(self) -> DirectStatement:
        """The partner named :w_name when it exists and is not disabled (a put for any other is
        refused: its job would never be claimed). Direct: every put of a named partner runs it."""
        return self.ctx.direct(
            select(partners.c.name).where(partners.c.name == bindparam("w_name"), partners.c.disabled_at.is_(None))
        )

    @staticmethod
    def jobs_by_state() -> Any:
        """(partner, status, jobs) of every waiting or running job (an index-only count)."""
        live = [*WAITING, Status.UNDER_PROCESS.value]
        return (
            select(jobs.c.partner, jobs.c.status, func.count().label("jobs"))
            .where(jobs.c.status.in_(live))
            .group_by(jobs.c.partner, jobs.c.status)
        )

    def seat_seconds(self, short: float, long: float) -> Any:
        """(partner, short, long): the seconds the partner's runs held a seat within the last `short`
        and `long` seconds: runs that ended in the window (each job's last run) and runs still going,
        cut at the window's start. One pass: ended runs through the finished index, running ones
        through the running index."""
        dialect, now = self.ctx.dialect, self.ctx.now
        ended = select(jobs.c.partner, jobs.c.started_at, jobs.c.finished_at.label("until")).where(
            jobs.c.status.in_(ENDED), jobs.c.finished_at >= self.ctx.in_(-long), jobs.c.started_at.is_not(None)
        )
        running = select(jobs.c.partner, jobs.c.started_at, now.label("until")).where(
            jobs.c.status == Status.UNDER_PROCESS.value
        )
        runs = ended.union_all(running).subquery("runs")

        def within(seconds: float) -> Any:
            start = self.ctx.in_(-seconds)
            held = dialect.seconds_between(runs.c.until, dialect.larger(runs.c.started_at, start))
            return func.sum(case((runs.c.until >= start, held), else_=0.0))

        return select(runs.c.partner, within(short), within(long)).group_by(runs.c.partner)

    # -- the partner's event log -----------------------------------------------------------------------

    def event(self, partner: str, actor: str, message: str) -> Any:
        return partner_events.insert().values(partner=partner, at=self.ctx.now, actor=actor, message=message)

    @staticmethod
    def events(partner: str) -> Any:
        return select(partner_events).where(partner_events.c.partner == partner).order_by(partner_events.c.id)

    # -- keys ----------------------------------------------------------------------------------------

    def new_key(self, values: dict[str, Any], expires_in: float | None) -> Any:
        """The key's row; it expires exactly `expires_in` after it was made (one reading of the
        clock for both: PostgreSQL's clock_timestamp() moves between two readings)."""
        moment = select(self.ctx.now.label("at")).subquery("moment")
        expires = self.ctx.dialect.add_seconds(moment.c.at, expires_in) if expires_in is not None else null()
        names = [*values, "created_at", "expires_at"]
        row = select(*(literal(value, api_keys.c[name].type) for name, value in values.items()), moment.c.at, expires)
        return api_keys.insert().from_select(names, row).returning(*api_keys.c)

    @staticmethod
    def key(key_id: str) -> Any:
        return select(api_keys).where(api_keys.c.id == key_id)

    @staticmethod
    def keys(partner: str | None) -> Any:
        chosen = select(api_keys).order_by(api_keys.c.partner, api_keys.c.created_at, api_keys.c.id)
        return chosen if partner is None else chosen.where(api_keys.c.partner == partner)

    def revoke(self, key_id: str) -> Any:
        return update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=self.ctx.now).returning(*api_keys.c)

    def expire(self, key_id: str, in_seconds: float) -> Any:
        """The key stops working `in_seconds` from now (sooner if it already expires sooner)."""
        later = self.ctx.in_(in_seconds)
        sooner = case(
            (and_(api_keys.c.expires_at.is_not(None), api_keys.c.expires_at < later), api_keys.c.expires_at),
            else_=later,
        )
        return update(api_keys).where(api_keys.c.id == key_id).values(expires_at=sooner).returning(*api_keys.c)

    @cached_property
    def by_digest(self) -> DirectStatement:
        """The key with digest :w_digest, its partner's disabled_at, and whether it is expired now
        and whether its last use is old enough to write again."""
        now = self.ctx.now
        expired = and_(api_keys.c.expires_at.is_not(None), api_keys.c.expires_at <= now)
        stale = or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < self.ctx.in_(-LAST_USED_EVERY_SECONDS))
        return self.ctx.direct(
            select(
                api_keys.c.id,
                api_keys.c.partner,
                api_keys.c.scopes,
                api_keys.c.revoked_at,
                partners.c.disabled_at,
                case((expired, True), else_=False).label("expired"),
                case((stale, True), else_=False).label("stale"),
            )
            .join(partners, partners.c.name == api_keys.c.partner)
            .where(api_keys.c.digest == bindparam("w_digest"))
        )

    def used(self, key_id: str) -> Any:
        return update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=self.ctx.now)

    @staticmethod
    def any_key() -> Any:
        """Whether any key was ever made: from then on the intake needs one on every request."""
        return select(exists().where(api_keys.c.id.is_not(None)))
