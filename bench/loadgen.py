"""HTTP/1.1 load generator for `POST /jobs`, run as its own process so it does not share the
intake's interpreter: `python -m bench.loadgen --port P --requests N --concurrency C [--callback URL]
[--token KEY]` (sent as `Authorization: Bearer KEY`: PQ_API_TOKEN or a partner's key).

Keeps C keep-alive connections busy (each sends its next request when the answer arrives) and
prints one JSON line: requests, seconds, requests/s, status counts, latency percentiles. The
generator shares a 2-core machine with the intake, so it keeps its own CPU use small: raw
asyncio streams on uvloop, and every request's bytes encoded before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import uvloop

from bench.measure import percentile
from bench.payloads import payload


def request_bytes(port: int, n: int, callback: str | None, queue: str | None, token: str | None = None) -> bytes:
    job: dict[str, object] = {"payload": payload(n)}
    if callback:
        job["callback_url"] = callback
    if queue:
        job["queue"] = queue
    body = json.dumps(job).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_status(reader: asyncio.StreamReader) -> int:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    length = next((int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length:")), 0)
    await reader.readexactly(length)
    return int(head[0].split(" ", 2)[1])


async def client(port: int, requests: list[bytes], statuses: Counter[int], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while requests:
            request = requests.pop()
            started = time.perf_counter()
            writer.write(request)
            statuses[await read_status(reader)] += 1
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def run(
    port: int,
    total: int,
    concurrency: int,
    callback: str | None,
    queue: str | None,
    first: int,
    token: str | None = None,
) -> dict[str, object]:
    # Popped from the end: job `first` goes first.
    requests = [request_bytes(port, n, callback, queue, token) for n in range(first + total - 1, first - 1, -1)]
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    started = time.perf_counter()
    wall_start = time.time()
    await asyncio.gather(*(client(port, requests, statuses, latencies) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "requests": total,
        "concurrency": concurrency,
        "started": wall_start,
        "seconds": elapsed,
        "rate": total / elapsed,
        "statuses": {str(k): v for k, v in statuses.items()},
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--callback")
    parser.add_argument("--queue", help="queue the jobs go to (default: the producer's)")
    parser.add_argument("--first", type=int, default=0, help="number of the first job (payloads differ)")
    parser.add_argument("--token", help="sent as Authorization: Bearer (PQ_API_TOKEN or a partner key)")
    args = parser.parse_args()
    result = uvloop.run(
        run(args.port, args.requests, args.concurrency, args.callback, args.queue, args.first, args.token)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
