"""Partners posting jobs to a real intake from threads while a fault strikes, every answer kept.

Each client sends `POST /jobs` one after another on a keep-alive connection, a few milliseconds
apart, and writes down when it sent, when the answer came and what it was: a status and the
acknowledged id, or the transport error (a refused or cut connection while the producer is
down, a timeout if it hangs). The load is bounded in requests and in time, and stops by itself.
Tests read from the record what was acknowledged (and so must be stored) and how the intake
answered during the fault.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support import wait_until

Payload = Callable[[int], Any]
Fields = Callable[[int], dict[str, Any]]
# An answer slower than this is a hang: the intake must refuse quickly when it cannot store.
HANG_SECONDS = 15.0


@dataclass(frozen=True)
class Answer:
    """One request and how it ended (monotonic clock)."""

    n: int
    sent: float
    answered: float
    status: int | None  # None: no HTTP answer (refused, cut, timed out)
    job_id: int | None
    error: str | None  # the transport error, or the intake's detail for a refusal

    @property
    def seconds(self) -> float:
        return self.answered - self.sent


class HttpLoad:
    """`clients` threads posting payload(n) for n = 0, 1, … to url until stopped or spent."""

    def __init__(
        self,
        url: str,
        payload: Payload,
        clients: int = 3,
        pause: float = 0.01,
        limit: int = 5000,
        seconds: float = 120,
        fields: Fields | None = None,
    ) -> None:
        """`fields(n)`: more of request n's body beside its payload (an idempotency_key, …)."""
        self.url = url
        self.payload = payload
        self.fields = fields or (lambda _n: {})
        self.pause = pause
        self.limit = limit
        self.deadline = time.monotonic() + seconds
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> HttpLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending; wait for the answers on their way."""
        self._stop.set()
        for thread in self._threads:
            thread.join(HANG_SECONDS + 5)

    @property
    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)

    def acknowledged(self) -> dict[int, int]:
        """Job id → n for every request answered 202: each must be stored."""
        return {a.job_id: a.n for a in self.answers if a.status == 202 and a.job_id is not None}

    def since(self, moment: float) -> list[Answer]:
        """The answers to requests sent at or after this moment."""
        return [a for a in self.answers if a.sent >= moment]

    def wait_acknowledged(self, count: int, since: float, timeout: float = 60.0) -> None:
        """Wait until `count` requests sent after the moment were answered 202."""
        wait_until(
            lambda: sum(a.status == 202 for a in self.since(since)) >= count,
            timeout=timeout,
            what=f"{count} acknowledgements from the intake",
        )

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.limit or time.monotonic() > self.deadline:
                return None
            self._next += 1
            return self._next - 1

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=HANG_SECONDS) as client:
            while not self._stop.is_set():
                n = self._take()
                if n is None:
                    return
                answer = self._post(client, n)
                with self._lock:
                    self._answers.append(answer)
                self._stop.wait(self.pause if answer.status is not None else max(self.pause, 0.05))

    def _post(self, client: httpx.Client, n: int) -> Answer:
        sent = time.monotonic()
        try:
            response = client.post("/jobs", json={"payload": self.payload(n), **self.fields(n)})
        except httpx.HTTPError as exc:
            return Answer(n, sent, time.monotonic(), None, None, f"{type(exc).__name__}: {exc}")
        body = response.json()
        if response.status_code == 202:
            return Answer(n, sent, time.monotonic(), 202, body["id"], None)
        return Answer(n, sent, time.monotonic(), response.status_code, None, str(body.get("detail")))


def first_answer(load: HttpLoad, status: int, after: float) -> Answer | None:
    """The earliest request sent after the moment that was answered with this status."""
    found = [a for a in load.since(after) if a.status == status]
    return min(found, key=lambda a: a.sent) if found else None
