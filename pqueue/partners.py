"""The rules of partners and their keys: names, weights, caps, rates, scopes, and the key format.

A key reads `pq_<id>_<secret>`: `pq_` lets secret scanners find a leaked key, `<id>` (12 characters)
is the key's public name in listings and the event log, and `<secret>` is 43 base62 characters
(256 bits). Only the SHA-256 digest of the whole key is stored: a random key of that length needs
no slow hash, and the digest finds the key in one indexed lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Iterable

from pqueue.errors import InvalidInput

DEFAULT_PARTNER = "default"  # every job without a partner's key, and PQ_API_TOKEN's partner

SCOPES = ("submit", "read", "cancel", "admin")
DEFAULT_SCOPES = ("submit", "read", "cancel")

KEY_PREFIX = "pq_"
_ALPHABET = string.ascii_letters + string.digits
_NAME = re.compile(r"[a-z0-9-]{1,64}")
_KEY = re.compile(r"pq_([a-z0-9]{12})_([A-Za-z0-9]{43})")


def check_partner_name(name: object, field: str = "partner") -> str:
    """The name itself, or InvalidInput: 1 to 64 of a-z, 0-9 and '-'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(field, f"{name!r} is not a partner name; use 1 to 64 of a-z, 0-9 and '-'")
    return name


def check_weight(weight: object) -> float:
    """A weight is a finite number above 0."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not (0 < weight < float("inf")):
        raise InvalidInput("weight", f"{weight!r} is not a number above 0")
    return float(weight)


def check_positive(field: str, value: object) -> int:
    """A cap or a rate is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(field, f"{value!r} is not a positive integer")
    return value


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Known scopes, each once, in SCOPES' order; at least one."""
    given = [scope.strip() for scope in scopes if scope.strip()]
    unknown = [scope for scope in given if scope not in SCOPES]
    if unknown or not given:
        raise InvalidInput("scopes", f"{','.join(unknown) or 'none'} is not a scope; use some of {', '.join(SCOPES)}")
    return tuple(scope for scope in SCOPES if scope in given)


def new_key() -> tuple[str, str]:
    """(key id, whole key) of a fresh key."""
    key_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(43))
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}"


def key_digest(key: str) -> str:
    """What is stored of a key: the hex SHA-256 of all of it."""
    return hashlib.sha256(key.encode()).hexdigest()


def well_formed(key: str) -> bool:
    """Whether the text has a key's shape (a malformed one is refused before any lookup)."""
    return _KEY.fullmatch(key) is not None


def shown(key_id: str) -> str:
    """How a key is shown once created: its prefix and id, never its secret."""
    return f"{KEY_PREFIX}{key_id}_…"
