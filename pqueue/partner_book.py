"""The Partners role of the store: partners, their keys, and who a key belongs to.

Every change to a partner or a key writes one row of the partner's event log in the same
transaction. A key's secret is never stored: `create_key` and `rotate_key` return it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pqueue import partners as rules
from pqueue.errors import InvalidInput, KeyRejected, PartnerNotFound
from pqueue.models import ApiKey, Caller, NewKey, Partner, PartnerEvent
from pqueue.sql import Statements
from pqueue.transactions import Transactions, Tx
from pqueue.validation import checked

HOUR, DAY = 3600.0, 86400.0


class PartnerBook:
    """Partners and keys over the store's transactions and statements (PersistentQ mixes it in)."""

    _tx: Transactions
    _sql: Statements

    # -- partners -----------------------------------------------------------------------------------

    @checked
    def add_partner(
        self,
        name: str,
        *,
        weight: float = 1.0,
        max_running: int | None = None,
        rate_per_minute: int | None = None,
        actor: str = "admin",
    ) -> Partner:
        values = _limits(weight=weight, max_running=max_running, rate_per_minute=rate_per_minute)

        def add(tx: Tx) -> Partner:
            row = tx.conn.execute(self._sql.partners.add(name, values)).first()
            if row is None:
                raise InvalidInput("partner", f"{name!r} already exists; change it with `pq partner set`")
            self._log(tx, name, actor, "added: " + _describe(values | {"weight": float(weight)}))
            return _partner(row)

        return self._tx.write(add)

    @checked
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
        values = _limits(weight=weight, max_running=max_running, rate_per_minute=rate_per_minute)
        values |= {"max_running": None} if no_max_running else {}
        values |= {"rate_per_minute": None} if no_rate else {}
        if not values and callback_secret is None:
            raise InvalidInput("partner", "nothing to change: give --weight, --max-running, --rate or a secret")

        def change(tx: Tx) -> Partner:
            current = self._partner_row(tx, name)
            changes: dict[str, Any] = dict(values)
            said = _describe(values)
            if callback_secret is not None:
                changes |= {"callback_secret": callback_secret.strip()}
                if current.callback_secret:  # the old one keeps signing beside it for the grace
                    changes |= {
                        "previous_callback_secret": current.callback_secret,
                        "previous_secret_until": self._sql.ctx.in_(secret_grace_seconds),
                    }
                said = ", ".join(filter(None, [said, f"callback secret rotated (grace {secret_grace_seconds:g} s)"]))
            row = tx.conn.execute(self._sql.partners.change(name, changes)).one()
            self._log(tx, name, actor, "changed: " + said)
            return _partner(row)

        return self._tx.write(change)

    @checked
    def disable_partner(self, name: str, *, enable: bool = False, actor: str = "admin") -> Partner:
        if name == rules.DEFAULT_PARTNER and not enable:
            raise InvalidInput("partner", "'default' cannot be disabled; revoke its keys instead")

        def switch(tx: Tx) -> Partner:
            self._partner_row(tx, name)
            disabled_at = None if enable else self._sql.ctx.now
            row = tx.conn.execute(self._sql.partners.change(name, {"disabled_at": disabled_at})).one()
            self._log(tx, name, actor, "enabled" if enable else "disabled: its keys stop working; its jobs still run")
            return _partner(row)

        return self._tx.write(switch)

    def partners(self) -> list[Partner]:
        sql = self._sql.partners
        with self._tx.read() as conn:
            rows = conn.execute(sql.all()).all()
            counts = conn.execute(sql.jobs_by_state()).all()
            used = conn.execute(sql.seat_seconds(HOUR, DAY)).all()
        hour = {partner: seconds for partner, seconds, _ in used}
        day = {partner: seconds for partner, _, seconds in used}
        waiting: dict[str, int] = {}
        running: dict[str, int] = {}
        for partner, status, jobs in counts:
            into = running if status == "under_process" else waiting
            into[partner] = into.get(partner, 0) + jobs
        total_day = sum(max(seconds or 0.0, 0.0) for seconds in day.values()) or 1.0
        return [
            _partner(
                row,
                waiting=waiting.get(row.name, 0),
                running=running.get(row.name, 0),
                seat_seconds_hour=max(hour.get(row.name) or 0.0, 0.0),
                seat_seconds_day=max(day.get(row.name) or 0.0, 0.0),
                share_day=max(day.get(row.name) or 0.0, 0.0) / total_day,
            )
            for row in rows
        ]

    @checked
    def partner(self, name: str) -> Partner:
        for partner in self.partners():
            if partner.name == name:
                return partner
        raise PartnerNotFound("partner", name)

    @checked
    def partner_settings(self, name: str) -> Partner:
        with self._tx.read() as conn:
            row = conn.execute(self._sql.partners.one(name)).first()
        if row is None:
            raise PartnerNotFound("partner", name)
        return _partner(row)

    @checked
    def partner_events(self, name: str) -> list[PartnerEvent]:
        with self._tx.read() as conn:
            rows = conn.execute(self._sql.partners.events(name)).all()
        return [PartnerEvent(row.id, row.partner, row.at, row.actor, row.message) for row in rows]

    @checked
    def callback_secrets(self, name: str) -> list[str]:
        """The secrets that sign this partner's callbacks now, newest first (two during a rotation's
        grace); empty when it has none of its own (then PQ_CALLBACK_SECRET signs)."""
        with self._tx.read() as conn:
            row = conn.execute(self._sql.partners.one(name)).first()
            now = conn.execute(self._sql.reads.now()).scalar_one() if row is not None else None
        if row is None or not row.callback_secret:
            return []
        secrets = [row.callback_secret]
        if row.previous_callback_secret and row.previous_secret_until and now and row.previous_secret_until > now:
            secrets.append(row.previous_callback_secret)
        return secrets

    # -- keys ------------------------------------------------------------------------------------------

    @checked
    def create_key(
        self,
        partner: str,
        *,
        scopes: Sequence[str] = rules.DEFAULT_SCOPES,
        expires_in_seconds: float | None = None,
        name: str | None = None,
        actor: str = "admin",
    ) -> NewKey:
        chosen = rules.chosen_scopes(scopes)
        return self._tx.write(lambda tx: self._new_key(tx, partner, chosen, expires_in_seconds, name, actor))

    def _new_key(
        self, tx: Tx, partner: str, scopes: tuple[str, ...], expires_in: float | None, name: str | None, actor: str
    ) -> NewKey:
        row = self._partner_row(tx, partner)
        if row.disabled_at is not None:
            raise InvalidInput("partner", f"{partner!r} is disabled; enable it first with `pq partner enable`")
        key_id, key = rules.new_key()
        values = {"id": key_id, "partner": partner, "digest": rules.key_digest(key), "scopes": ",".join(scopes)}
        created = tx.conn.execute(self._sql.partners.new_key(values | {"name": name}, expires_in)).one()
        self._log(tx, partner, actor, f"key {key_id} created ({','.join(scopes)})")
        return NewKey(key=key, info=_key(created))

    @checked
    def keys(self, partner: str | None = None) -> list[ApiKey]:
        with self._tx.read() as conn:
            return [_key(row) for row in conn.execute(self._sql.partners.keys(partner)).all()]

    @checked
    def revoke_key(self, key_id: str, *, actor: str = "admin") -> ApiKey:

        def revoke(tx: Tx) -> ApiKey:
            current = self._key_row(tx, key_id)
            if current.revoked_at is not None:
                raise InvalidInput("key", f"{key_id} is already revoked")
            row = tx.conn.execute(self._sql.partners.revoke(key_id)).one()
            self._log(tx, row.partner, actor, f"key {key_id} revoked")
            return _key(row)

        return self._tx.write(revoke)

    @checked
    def rotate_key(self, key_id: str, *, grace_seconds: float = 86400.0, actor: str = "admin") -> NewKey:

        def rotate(tx: Tx) -> NewKey:
            old = self._key_row(tx, key_id)
            if old.revoked_at is not None:
                raise InvalidInput("key", f"{key_id} is revoked; create a new key instead")
            scopes = tuple(old.scopes.split(","))
            new = self._new_key(tx, old.partner, scopes, None, old.name, actor)
            # Read to its end: SQLite refuses to commit while a write (here its RETURNING) is in progress.
            tx.conn.execute(self._sql.partners.expire(key_id, grace_seconds)).one()
            self._log(
                tx, old.partner, actor, f"key {key_id} rotated to {new.info.id}; it works {grace_seconds:g} s more"
            )
            return new

        return self._tx.write(rotate)

    @checked
    def authenticate(self, key: str) -> Caller:
        if not rules.well_formed(key):
            raise KeyRejected("the key is malformed: a pqueue key reads pq_<id>_<secret>")
        sql = self._sql.partners
        with self._tx.read() as conn:
            row = sql.by_digest.first(conn, {"w_digest": rules.key_digest(key)})
        if row is None:
            raise KeyRejected("the key is not known here")
        if row.revoked_at is not None:
            raise KeyRejected(f"key {row.id} was revoked")
        if row.expired:
            raise KeyRejected(f"key {row.id} has expired")
        if row.disabled_at is not None:
            raise KeyRejected(f"partner {row.partner!r} is disabled")
        if row.stale:  # its last use is written at most every few minutes
            self._tx.write(lambda tx: tx.conn.execute(sql.used(row.id)))
        return Caller(partner=row.partner, scopes=tuple(row.scopes.split(",")), key_id=row.id)

    def keys_required(self) -> bool:
        with self._tx.read() as conn:
            return bool(conn.execute(self._sql.partners.any_key()).scalar())

    # -- helpers ---------------------------------------------------------------------------------------

    def _partner_row(self, tx: Tx, name: str) -> Any:
        row = tx.conn.execute(self._sql.partners.one(name)).first()
        if row is None:
            raise PartnerNotFound("partner", name)
        return row

    def _key_row(self, tx: Tx, key_id: str) -> Any:
        row = tx.conn.execute(self._sql.partners.key(key_id)).first()
        if row is None:
            raise PartnerNotFound("key", key_id)
        return row

    def _refuse_unusable_partners(self, tx: Tx, names: list[str]) -> None:
        """InvalidInput unless every named partner exists and is enabled: a job of any other would
        never be claimed (the claim takes jobs partner by partner)."""
        for name in names:
            if self._sql.partners.usable.first(tx.conn, {"w_name": name}) is None:
                raise InvalidInput("partner", f"{name!r} is not a partner here, or is disabled; see `pq partner list`")

    def _log(self, tx: Tx, partner: str, actor: str, message: str) -> None:
        tx.conn.execute(self._sql.partners.event(partner, actor, message))


def _limits(*, weight: float | None, max_running: int | None, rate_per_minute: int | None) -> dict[str, Any]:
    """The given limits (None: not given)."""
    values: dict[str, Any] = {}
    if weight is not None:
        values["weight"] = float(weight)
    if max_running is not None:
        values["max_running"] = max_running
    if rate_per_minute is not None:
        values["rate_per_minute"] = rate_per_minute
    return values


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{name} {'none' if value is None else f'{value:g}'}" for name, value in values.items())


def _partner(row: Any, **usage: Any) -> Partner:
    return Partner(
        name=row.name,
        weight=row.weight,
        max_running=row.max_running,
        rate_per_minute=row.rate_per_minute,
        disabled_at=row.disabled_at,
        created_at=row.created_at,
        has_callback_secret=bool(row.callback_secret),
        **usage,
    )


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        partner=row.partner,
        scopes=tuple(row.scopes.split(",")),
        name=row.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        prefix=rules.shown(row.id),
    )
