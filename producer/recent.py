"""Recent answers of a blocking lookup, kept about a second, for code on the event loop.

The intake asks the database who a key belongs to on nearly every request. Asking once a second
per key instead keeps requests cheap, and still lets a revoked key stop within that second. A
lookup runs in the threadpool, never on the event loop; requests that miss the same entry at the
same moment share one lookup.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

Value = TypeVar("Value")


@dataclass(frozen=True)
class _Entry(Generic[Value]):
    until: float
    value: Value | None
    error: Exception | None


class Recent(Generic[Value]):
    """Answers (and the errors of `remember`'s classes) kept `ttl` seconds, at most `size` of them.

    Other errors are not kept: every request waiting on that lookup gets the error, and the next
    request asks again. Not thread-safe: call it from the event loop only.
    """

    def __init__(
        self,
        ttl: float,
        *,
        remember: tuple[type[Exception], ...] = (),
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.remember = remember
        self.size = size
        self.clock = clock
        self._entries: dict[Hashable, _Entry[Value]] = {}
        self._loading: dict[Hashable, asyncio.Future[_Entry[Value]]] = {}

    async def get(self, key: Hashable, lookup: Callable[[], Value]) -> Value:
        """The kept answer for `key`, else `lookup()`'s, run in a thread (once for all who wait)."""
        entry = self._entries.get(key)
        if entry is None or entry.until <= self.clock():
            loading = self._loading.get(key)
            if loading is None:
                loading = asyncio.ensure_future(self._load(key, lookup))
                self._loading[key] = loading
            # shield: a request that goes away does not cancel the lookup others wait for.
            entry = await asyncio.shield(loading)
        if entry.error is not None:
            raise entry.error.with_traceback(None)  # raised again and again: keep its traceback short
        return entry.value  # type: ignore[return-value]  # no error: the lookup returned a Value

    def forget(self) -> None:
        """Drop every kept answer (the next request of each key asks again)."""
        self._entries.clear()

    async def _load(self, key: Hashable, lookup: Callable[[], Value]) -> _Entry[Value]:
        try:
            entry = _Entry(self.clock() + self.ttl, await run_in_threadpool(lookup), None)
        except self.remember as exc:
            entry = _Entry(self.clock() + self.ttl, None, exc)
        finally:
            del self._loading[key]
        if len(self._entries) >= self.size:
            self._evict()
        self._entries[key] = entry
        return entry

    def _evict(self) -> None:
        now = self.clock()
        for key in [key for key, entry in self._entries.items() if entry.until <= now]:
            del self._entries[key]
        if len(self._entries) >= self.size:  # all still fresh: a flood of distinct keys
            self._entries.clear()
