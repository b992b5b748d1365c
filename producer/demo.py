"""`pq-demo-feeder` / `python -m producer.demo`: submit a realistic sample job every few seconds,
so a newcomer sees the system move.

The kind is PQ_DEMO_KIND (or --kind), so Supervisor can run any of them:
`iqr` (default) sends vendor readings for the IQR analysis, now and then with outliers;
`files` writes a file of random text under the inbox (var/inbox) and submits it for the `stamp`
algorithm (run a consumer with PQ_ALGORITHM=consumer.algorithms.stamp:run for those); `add`
sends two numbers for the `add` algorithm. A file stays in the inbox only for a job the intake
acknowledged: a refused or unreachable submission removes it.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import ssl
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, get_args

import httpx

from pqueue import PQError, Settings, load_settings, setup_logging

log = logging.getLogger("demo_feeder")
KINDS = get_args(Settings.model_fields["demo_kind"].annotation)
VENDORS = {"acme": 12.0, "globex": 30.0, "initech": 7.5}
WORDS = [
    "queue",
    "licence",
    "partner",
    "reading",
    "vendor",
    "outlier",
    "stamp",
    "result",
    "callback",
    "durable",
    "lease",
    "seat",
]


def iqr_payload(rng: random.Random) -> dict[str, Any]:
    """Readings of a few vendors around their usual level; about one payload in three has outliers."""
    readings = []
    for vendor, level in VENDORS.items():
        for _ in range(rng.randint(8, 20)):
            readings.append({"vendor": vendor, "value": round(rng.gauss(level, level * 0.05), 3)})
    if rng.random() < 0.35:
        for _ in range(rng.randint(1, 3)):
            vendor, level = rng.choice(list(VENDORS.items()))
            readings.append({"vendor": vendor, "value": round(level * rng.choice([0.2, 3.0, 5.0]), 3)})
    rng.shuffle(readings)
    return {"readings": readings, "k": 1.5}


def add_payload(rng: random.Random) -> dict[str, Any]:
    """Two small numbers for the add algorithm."""
    return {"a": rng.randint(0, 100), "b": rng.randint(0, 100)}


@dataclass
class Submission:
    """One job to submit; its idempotency key stays the same across retries of the same job."""

    payload: dict[str, Any]
    file: Path | None = None
    key: str = field(default_factory=lambda: f"demo-{uuid.uuid4()}")

    def discard(self) -> None:
        """The intake did not take the job: leave no file behind for it."""
        if self.file is not None:
            self.file.unlink(missing_ok=True)


def new_submission(kind: str, rng: random.Random, inbox: Path) -> Submission:
    """A fresh sample of this kind; for `files`, its file is written to the inbox first."""
    if kind == "iqr":
        return Submission(iqr_payload(rng))
    if kind == "add":
        return Submission(add_payload(rng))
    inbox.mkdir(parents=True, exist_ok=True)
    name = f"demo-{time.strftime('%Y%m%dT%H%M%S')}-{rng.randrange(16**6):06x}.txt"
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))) for _ in range(rng.randint(2, 6))]
    (inbox / name).write_text("\n".join(lines) + "\n")
    return Submission({"file": name}, file=inbox / name)


def intake_url(settings: Settings) -> str:
    """Where this machine's intake listens, from PQ_PRODUCER_HOST/PORT and PQ_TLS_CERTFILE."""
    host = settings.producer_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls_certfile else "http"
    return f"{scheme}://{host}:{settings.producer_port}"


def make_client(settings: Settings, url: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    verify: ssl.SSLContext | bool = True
    if url.startswith("https") and settings.tls_certfile:
        # The intake's own certificate (often self-signed) is the one to trust.
        verify = ssl.create_default_context(cafile=str(settings.tls_certfile.expanduser()))
    return httpx.Client(base_url=url, headers=headers, verify=verify, timeout=10)


class Outcome(Enum):
    """What became of one submission attempt."""

    SUBMITTED = "submitted"
    REFUSED = "refused"  # the intake did not store the job (or nothing listened): safe to drop
    UNKNOWN = "unknown"  # the request may have reached the intake: retry it with the same key


def submit_one(client: httpx.Client, job: Submission, kind: str, queue: str | None) -> Outcome:
    """Submit and log the outcome: SUBMITTED, REFUSED or UNKNOWN (see Outcome)."""
    body: dict[str, Any] = {"payload": job.payload, "idempotency_key": job.key}
    if queue:
        body["queue"] = queue
    try:
        response = client.post("/jobs", json=body)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        log.warning("intake at %s not reachable (%s); will try again", client.base_url, exc)
        return Outcome.REFUSED
    except httpx.HTTPError as exc:
        log.warning("no answer from the intake at %s (%s); will send the same job again", client.base_url, exc)
        return Outcome.UNKNOWN
    if response.status_code not in (200, 202):
        log.warning("intake answered %d: %s", response.status_code, response.text[:300])
        return Outcome.REFUSED
    log.info("submitted %s job %d", kind, response.json()["id"])
    return Outcome.SUBMITTED


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pq-demo-feeder", description="Submit a sample job to the intake on an interval."
    )
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between submissions (default 5)")
    parser.add_argument("--kind", choices=KINDS, help="what to submit (default PQ_DEMO_KIND, else iqr)")
    parser.add_argument("--url", help="the intake's URL (default from PQ_PRODUCER_HOST and PQ_PRODUCER_PORT)")
    parser.add_argument("--queue", help="queue to submit to (default: the intake's, PQ_QUEUE)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many submissions (default 0: never)")
    parser.add_argument("--seed", type=int, help="random seed, for repeatable samples")
    args = parser.parse_args(argv)
    if args.interval <= 0 or args.count < 0:
        parser.error("--interval must be positive and --count not negative")
    return args


def main(argv: list[str] | None = None) -> None:
    """Submit until --count is reached or SIGTERM / Ctrl-C."""
    try:
        settings = load_settings()
    except PQError as exc:
        sys.exit(f"pq-demo-feeder: {exc}")
    args = parse_args(argv)
    setup_logging(settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # our own line says what was submitted
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    rng = random.Random(args.seed)
    kind: str = args.kind or settings.demo_kind
    url = args.url or intake_url(settings)
    log.info("feeding %s jobs to %s every %.1fs", kind, url, args.interval)
    submitted = 0
    pending: Submission | None = None  # a job whose outcome is unknown, sent again before any new one
    with make_client(settings, url) as client:
        while not stop.is_set():
            job = pending or new_submission(kind, rng, settings.resolved_inbox_dir)
            outcome = submit_one(client, job, kind, args.queue)
            pending = job if outcome == Outcome.UNKNOWN else None
            if outcome == Outcome.REFUSED:
                job.discard()
            elif outcome == Outcome.SUBMITTED:
                submitted += 1
                if args.count and submitted >= args.count:
                    break
            stop.wait(args.interval)
    if pending is not None and pending.file is not None:
        log.warning("kept %s: the intake may have stored its job (idempotency key %s)", pending.file, pending.key)
    log.info("stopped after %d submissions", submitted)


if __name__ == "__main__":
    main()
