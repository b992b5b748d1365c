"""Fixtures for the intake: the real app on a real database, reached through httpx's ASGI transport,
and the real `pq-producer` program on a free port."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pqueue import Settings
from producer import create_app
from tests.producer.support import AppFactory, Launch, client_for
from tests.programs import Process, Programs, wait_healthy
from tests.support import free_port


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Iterator[AppFactory]:
    """create_app on the test database with settings overrides; each app is closed afterwards."""
    apps: list[FastAPI] = []

    def build(**overrides: Any) -> FastAPI:
        app = create_app(make_settings(**overrides))
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.state.intake.close()


@pytest.fixture
def app(make_app: AppFactory) -> FastAPI:
    return make_app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as http:
        yield http


@pytest.fixture
def launch(db_env: dict[str, str], programs: Programs) -> Launch:
    """Start pq-producer on a free port with the test database (plus extra PQ_* variables), logging
    to producer-<port>.log, and wait until /healthz answers."""

    def run(
        extra_env: dict[str, str] | None = None, scheme: str = "http", verify: ssl.SSLContext | bool = False
    ) -> tuple[Process, str]:
        port = free_port()
        log = f"producer-{port}.log"
        env = {**db_env, **(extra_env or {})}
        process = programs.start("pq-producer", "--port", str(port), env=env, log=log)
        url = f"{scheme}://127.0.0.1:{port}"
        wait_healthy(url, process, verify=verify, log_path=programs.logs / log)
        return process, url

    return run
