"""What the intake's tests share besides fixtures: an in-process client for the app, and polling
an async check with a deadline."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
from fastapi import FastAPI

from tests.programs import Process

AppFactory = Callable[..., FastAPI]  # the make_app fixture
Launch = Callable[..., tuple[Process, str]]  # the launch fixture: (pq-producer, its URL)


def client_for(app: FastAPI, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that calls the app in-process (no lifespan, no sockets)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake", **kwargs)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "") -> None:
    """Poll an async check until it is true; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await anyio.sleep(0.02)
