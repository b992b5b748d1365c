"""`pq-demo-feeder` / `python -m producer.demo`: submit a realistic sample job every few seconds,
so a newcomer sees the system move.

`--kind iqr` (default) sends vendor readings for the IQR analysis, now and then with outliers;
`--kind files` writes a file of random text under the inbox (var/inbox) and submits it for the
`stamp` algorithm (run a consumer with PQ_ALGORITHM=consumer.algorithms.stamp:run for those).
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
from pathlib import Path
from typing import Any

import httpx

from pqueue import PQError, Settings, load_settings, setup_logging

log = logging.getLogger("demo_feeder")
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


def file_payload(rng: random.Random, inbox: Path) -> dict[str, Any]:
    """A new file of random text in the inbox, named in the payload for the stamp algorithm."""
    inbox.mkdir(parents=True, exist_ok=True)
    name = f"demo-{time.strftime('%Y%m%dT%H%M%S')}-{rng.randrange(16**6):06x}.txt"
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))) for _ in range(rng.randint(2, 6))]
    (inbox / name).write_text("\n".join(lines) + "\n")
    return {"file": name}


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


def submit_one(client: httpx.Client, payload: dict[str, Any], kind: str, queue: str | None) -> int | None:
    """Submit; log the outcome; the job's id, or None when the intake refused or was not there."""
    body: dict[str, Any] = {"payload": payload, "idempotency_key": f"demo-{uuid.uuid4()}"}
    if queue:
        body["queue"] = queue
    try:
        response = client.post("/jobs", json=body)
    except httpx.HTTPError as exc:
        log.warning("intake at %s not reachable (%s); will try again", client.base_url, exc)
        return None
    if response.status_code not in (200, 202):
        log.warning("intake answered %d: %s", response.status_code, response.text[:300])
        return None
    job_id: int = response.json()["id"]
    log.info("submitted %s job %d", kind, job_id)
    return job_id


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pq-demo-feeder", description="Submit a sample job to the intake on an interval."
    )
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between submissions (default 5)")
    parser.add_argument("--kind", choices=["iqr", "files"], default="iqr", help="what to submit (default iqr)")
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
    url = args.url or intake_url(settings)
    log.info("feeding %s jobs to %s every %.1fs", args.kind, url, args.interval)
    submitted = 0
    with make_client(settings, url) as client:
        while not stop.is_set():
            payload = iqr_payload(rng) if args.kind == "iqr" else file_payload(rng, settings.resolved_inbox_dir)
            if submit_one(client, payload, args.kind, args.queue) is not None:
                submitted += 1
                if args.count and submitted >= args.count:
                    break
            stop.wait(args.interval)
    log.info("stopped after %d submissions", submitted)


if __name__ == "__main__":
    main()
