"""The PostgreSQL test server: its URL (PQ_TEST_POSTGRES_URL), and removing a test's schema."""

from __future__ import annotations

import os

import pytest
import sqlalchemy

from tests.support import IN_CI

POSTGRES_URL = os.environ.get("PQ_TEST_POSTGRES_URL")


def require_postgres() -> str:
    """The test server's URL; skip without one locally, fail without one in CI."""
    if not POSTGRES_URL:
        if IN_CI:
            pytest.fail("PQ_TEST_POSTGRES_URL is not set: PostgreSQL tests must run in CI")
        pytest.skip("PQ_TEST_POSTGRES_URL is not set")
    return POSTGRES_URL


def drop_schema(url: str, schema: str) -> None:
    """Remove a test's PostgreSQL schema and everything in it."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        engine.dispose()
