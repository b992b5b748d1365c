"""A small HTTP/1.1 load generator for `POST /jobs`, run as a second process against a real intake.

    .venv/bin/python -m tests.producer.loadgen --url http://127.0.0.1:8000 --requests 5000 --concurrency 32

It keeps `--concurrency` keep-alive connections busy, each sending the next request as soon as
the previous answer arrived, and prints requests per second, status codes and latency
percentiles. Raw asyncio streams instead of an HTTP client library keep the generator's own CPU
use small, which matters on a machine with few cores shared with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from urllib.parse import urlsplit


def request_bytes(host: str, path: str, n: int, token: str | None) -> bytes:
    body = json.dumps({"payload": {"readings": [{"vendor": "acme", "value": n % 97}], "n": n}}).encode()
    headers = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return status


async def worker(
    host: str,
    port: int,
    path: str,
    numbers: list[int],
    token: str | None,
    statuses: Counter[int],
    latencies: list[float],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while numbers:
            n = numbers.pop()
            started = time.perf_counter()
            writer.write(request_bytes(host, path, n, token))
            statuses[await read_response(reader)] += 1
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def run(url: str, total: int, concurrency: int, token: str | None) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    numbers = list(range(total))
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(worker(host, port, "/jobs", numbers, token, statuses, latencies) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"{total} requests, concurrency {concurrency}: {elapsed:.2f}s, {total / elapsed:.0f} requests/s; "
        f"statuses {dict(statuses)}; latency p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--token")
    args = parser.parse_args()
    asyncio.run(run(args.url, args.requests, args.concurrency, args.token))


if __name__ == "__main__":
    main()
