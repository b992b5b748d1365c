"""pqueue.callbacks: what the consumer signs is what a partner's verify() accepts, and nothing else."""

from __future__ import annotations

import hashlib
import hmac

from pqueue import callbacks

SECRET = "s3cret"
BODY = b'{"id":1,"status":"processed"}'


def test_sign__is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert callbacks.sign(SECRET, 1700000000, BODY) == "sha256=" + expected


def test_verify__accepts_own_signature_within_tolerance() -> None:
    signature = callbacks.sign(SECRET, 1700000000, BODY)
    assert callbacks.verify(SECRET, "1700000000", BODY, signature, now=1700000000 + 299)
    assert callbacks.verify(SECRET, 1700000000, BODY.decode(), signature, now=1700000000 - 299)


def test_verify__rejects_tampered_body() -> None:
    signature = callbacks.sign(SECRET, 1700000000, BODY)
    assert not callbacks.verify(SECRET, "1700000000", BODY.replace(b"1", b"2"), signature, now=1700000000)
    assert not callbacks.verify(SECRET, "1700000000", BODY + b" ", signature, now=1700000000)


def test_verify__rejects_old_or_future_timestamp() -> None:
    signature = callbacks.sign(SECRET, 1700000000, BODY)
    assert not callbacks.verify(SECRET, "1700000000", BODY, signature, now=1700000000 + 301)
    assert not callbacks.verify(SECRET, "1700000000", BODY, signature, now=1700000000 - 301)
    assert callbacks.verify(SECRET, "1700000000", BODY, signature, tolerance=3600, now=1700000000 + 301)


def test_verify__rejects_wrong_secret_or_timestamp_swapped() -> None:
    signature = callbacks.sign(SECRET, 1700000000, BODY)
    assert not callbacks.verify("other", "1700000000", BODY, signature, now=1700000000)
    assert not callbacks.verify(SECRET, "1700000001", BODY, signature, now=1700000000)


def test_verify__rejects_missing_or_malformed_headers() -> None:
    signature = callbacks.sign(SECRET, 1700000000, BODY)
    for timestamp, sig in [
        (None, signature),
        ("1700000000", None),
        ("1700000000", ""),
        ("17e8", signature),
        ("-1", signature),
        ("1700000000", signature.removeprefix("sha256=")),
        ("1700000000", "sha256=zz"),
    ]:
        assert not callbacks.verify(SECRET, timestamp, BODY, sig, now=1700000000), (timestamp, sig)
    assert not callbacks.verify("", "1700000000", BODY, signature, now=1700000000)


def test_headers__sign_only_with_a_secret() -> None:
    signed = callbacks.headers(SECRET, BODY, "7-3", timestamp=1700000000)
    assert signed == {
        "Content-Type": "application/json",
        "X-PQ-Timestamp": "1700000000",
        "Idempotency-Key": "7-3",
        "X-PQ-Signature": callbacks.sign(SECRET, 1700000000, BODY),
    }
    assert "X-PQ-Signature" not in callbacks.headers(None, BODY, "7-3")


def test_verify__real_clock_accepts_fresh_headers() -> None:
    sent = callbacks.headers(SECRET, BODY, "7-3")
    assert callbacks.verify(SECRET, sent["X-PQ-Timestamp"], BODY, sent["X-PQ-Signature"])


def test_headers__several_secrets_sign_once_each_newest_first() -> None:
    signed = callbacks.headers(["new", "old"], BODY, "7-3", timestamp=1700000000)

    new, old = callbacks.sign("new", 1700000000, BODY), callbacks.sign("old", 1700000000, BODY)
    assert signed["X-PQ-Signature"] == f"{new},{old}"
    assert callbacks.headers(["only"], BODY, "7-3", timestamp=1) == callbacks.headers("only", BODY, "7-3", timestamp=1)
    assert "X-PQ-Signature" not in callbacks.headers([], BODY, "7-3")


def test_verify__a_header_listing_several_signatures_passes_with_any_listed_secret() -> None:
    both = callbacks.headers(["new", "old"], BODY, "7-3", timestamp=1700000000)["X-PQ-Signature"]

    assert callbacks.verify("new", "1700000000", BODY, both, now=1700000000)
    assert callbacks.verify("old", "1700000000", BODY, both, now=1700000000)
    assert callbacks.verify("old", "1700000000", BODY, both.replace(",", " , "), now=1700000000)
    assert not callbacks.verify("other", "1700000000", BODY, both, now=1700000000)
    assert not callbacks.verify("old", "1700000000", BODY + b" ", both, now=1700000000)
    assert not callbacks.verify("old", "1700000000", BODY, both, now=1700000000 + 301)
    assert not callbacks.verify("old", "1700000000", BODY, ",,sha256=zz,", now=1700000000)
