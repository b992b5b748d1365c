"""Signing callbacks, and checking them on the partner's side.

The consumer signs every callback it POSTs; a partner checks it in one call:

    from pqueue.callbacks import verify

    ok = verify(secret, request.headers["X-PQ-Timestamp"], raw_body, request.headers["X-PQ-Signature"])

The signature is `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` under the shared secret
(the partner's own, else PQ_CALLBACK_SECRET), over the exact bytes of the body. The timestamp
(unix seconds) is part of what is signed, so an old request cannot be replayed once it is older
than the tolerance. While a partner's secret is being rotated the header lists one signature per
secret, newest first (`sha256=<new>,sha256=<old>`), and verify() accepts the request when any of
them is right: a partner switches to its new secret whenever it likes within the grace period.

This module uses only the standard library and never touches the database: partners import it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

TIMESTAMP_HEADER = "X-PQ-Timestamp"
SIGNATURE_HEADER = "X-PQ-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE = 300

__all__ = [
    "DEFAULT_TOLERANCE",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_PREFIX",
    "TIMESTAMP_HEADER",
    "headers",
    "sign",
    "verify",
]


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: int | str, body: str | bytes) -> str:
    """The X-PQ-Signature value for this body sent at this time: `sha256=<hex>`."""
    message = _as_bytes(str(timestamp)) + b"." + _as_bytes(body)
    digest = hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


Secrets = str | bytes | Sequence[str | bytes] | None


def headers(
    secret: Secrets, body: str | bytes, idempotency_key: str, *, timestamp: int | None = None
) -> dict[str, str]:
    """Every header a callback carries. Several secrets (newest first) sign it once each, in one
    X-PQ-Signature separated by commas; without a secret there is no X-PQ-Signature."""
    moment = int(time.time()) if timestamp is None else int(timestamp)
    result = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(moment),
        IDEMPOTENCY_HEADER: idempotency_key,
    }
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret or ())
    signatures = [sign(each, moment, body) for each in secrets if each]
    if signatures:
        result[SIGNATURE_HEADER] = ",".join(signatures)
    return result


def verify(
    secret: str | bytes,
    timestamp: int | str | None,
    body: str | bytes,
    signature: str | None,
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """True when signature is this body's, signed with secret, at a timestamp at most
    `tolerance` seconds away from now (either way). A missing or malformed header is False.
    A header listing several signatures (`sha256=<a>,sha256=<b>`, during a rotation of the
    secret) is True when any one of them is right.

    Pass the raw request body (bytes as received), not re-serialised JSON: any change to the
    bytes, even whitespace, fails the check.
    """
    if not secret or timestamp is None or not signature:
        return False
    sent_at = str(timestamp).strip()
    if not (sent_at.isascii() and sent_at.isdigit()):
        return False
    current = time.time() if now is None else now
    if abs(current - int(sent_at)) > tolerance:
        return False
    expected = sign(secret, sent_at, body).encode()
    # Every listed signature is compared, so the time taken does not say which one matched.
    matches = [hmac.compare_digest(expected, given.strip().encode()) for given in signature.split(",")]
    return any(matches)
