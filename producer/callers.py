"""Who is calling: the partner and scopes behind a request's `Authorization: Bearer` header.

- `PQ_API_TOKEN` is a key of partner `default` with the scopes submit, read and cancel.
- Any other bearer value is a partner's key (`store.authenticate`).
- With no key ever created and no `PQ_API_TOKEN`, the intake is open as it always was: every
  request is partner `default` with every scope, admin included.

Answers are kept about a second (`producer/recent.py`): a revoked key stops within that second,
and requests do not each cost a database read.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from pqueue import DEFAULT_PARTNER, DEFAULT_SCOPES, KEY_PREFIX, SCOPES, Caller, KeyRejected, Partners, PQError
from producer.recent import Recent

ADMIN = "admin"
OPEN = Caller(partner=DEFAULT_PARTNER, scopes=SCOPES, key_id=None)
TOKEN = Caller(partner=DEFAULT_PARTNER, scopes=DEFAULT_SCOPES, key_id=None)
KEEP_SECONDS = 1.0


class Unauthorized(PQError):
    """No key, or one that lets nobody in (401); the message says which."""


class Forbidden(PQError):
    """The key lacks the scope the route needs (403)."""

    def __init__(self, scope: str, caller: Caller) -> None:
        self.scope = scope
        super().__init__(f"this key may not do that: it needs the {scope!r} scope, and has {', '.join(caller.scopes)}")


@dataclass(frozen=True)
class Identity:
    """A request's caller, and its partner's submissions allowed per minute (None: no limit)."""

    caller: Caller
    rate_per_minute: int | None


def may(caller: Caller, scope: str) -> bool:
    """Whether the caller holds the scope; admin holds them all."""
    return caller.may(scope) or caller.may(ADMIN)


def require(caller: Caller, scope: str) -> Caller:
    """The caller, once it may use `scope`; else Forbidden."""
    if not may(caller, scope):
        raise Forbidden(scope, caller)
    return caller


class Callers:
    """Resolves an Authorization header to an Identity, or raises Unauthorized (or a database error)."""

    def __init__(self, store: Partners, token: str | None, keep_seconds: float = KEEP_SECONDS) -> None:
        self.store = store
        self.token = _digest(token) if token else None
        self._identities: Recent[Identity] = Recent(keep_seconds, remember=(KeyRejected,))
        self._keys_required: Recent[bool] = Recent(keep_seconds)
        self._keys_exist = False  # once a key exists, one always will (revoked keys count)

    async def resolve(self, authorization: str | None) -> Identity:
        presented = _bearer(authorization)
        if presented is not None and self.token is not None and hmac.compare_digest(_digest(presented), self.token):
            return await self._identities.get("token", lambda: self._default_partner(TOKEN))
        if presented is not None and (presented.startswith(KEY_PREFIX) or self.token is None):
            try:
                identity = await self._identities.get(_digest(presented), lambda: self._authenticate(presented))
            except KeyRejected:
                if self.token is None and not await self._needs_keys():
                    return await self._open()  # as before keys existed: a bearer value is not looked at
                raise
            self._keys_exist = True  # a key just made works at once, and from now on one is needed
            return identity
        if self.token is None and not await self._needs_keys():
            return await self._open()
        raise Unauthorized(self._missing(authorization))

    @property
    def is_open(self) -> bool:
        """Whether, as far as this process has seen, any request gets in without a key."""
        return self.token is None and not self._keys_exist

    def _missing(self, authorization: str | None) -> str:
        """Why a request without a key, or with one that is neither a key nor the token, is refused."""
        if self.token is not None:
            if authorization is None:
                return "this intake needs an Authorization: Bearer <token> header (PQ_API_TOKEN or a key)"
            return "the bearer token is not the one this intake accepts (PQ_API_TOKEN), nor a key"
        if authorization is None:
            return "this intake needs an Authorization: Bearer <key> header with your partner key"
        return "send your key as `Authorization: Bearer <key>`"

    async def _open(self) -> Identity:
        return await self._identities.get("open", lambda: self._default_partner(OPEN))

    async def _needs_keys(self) -> bool:
        if not self._keys_exist:
            self._keys_exist = await self._keys_required.get("any", self.store.keys_required)
        return self._keys_exist

    def _default_partner(self, caller: Caller) -> Identity:
        return Identity(caller, self.store.partner_settings(DEFAULT_PARTNER).rate_per_minute)

    def _authenticate(self, key: str) -> Identity:
        caller = self.store.authenticate(key)
        return Identity(caller, self.store.partner_settings(caller.partner).rate_per_minute)


def _bearer(authorization: str | None) -> str | None:
    """The token of `Bearer <token>`, else None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _digest(value: str) -> bytes:
    # Kept answers are found by the key's digest, so the key itself is not kept in memory; comparing
    # digests also keeps compare_digest's time independent of the token's length.
    return hashlib.sha256(value.encode()).digest()
