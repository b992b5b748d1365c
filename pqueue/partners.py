"""Partners and their keys: the scopes, and the key format (the rules of a partner's name, weight,
caps and scopes as arguments are in pqueue/validation.py).

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

DEFAULT_PARTNER = "default"  # every job without a partner's key, and PQ_API_TOKEN's partner

SCOPES = ("submit", "read", "cancel", "admin")
DEFAULT_SCOPES = ("submit", "read", "cancel")

KEY_PREFIX = "pq_"
_ALPHABET = string.ascii_letters + string.digits
_NAME = re.compile(r"[a-z0-9-]{1,64}")
_KEY = re.compile(r"pq_([a-z0-9]{12})_([A-Za-z0-9]{43})")


def chosen_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes given (checked already: pqueue/validation.py), each once, in SCOPES' order."""
    given = {scope.strip() for scope in scopes}
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
