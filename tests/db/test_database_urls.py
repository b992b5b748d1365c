"""Database URLs: every spelling of a PostgreSQL URL with several hosts reaches the same connection
arguments; a URL pqueue can never use stops `pq` and every long-running program at once, with one
line naming the accepted forms (no traceback, no endless "database not ready")."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from admin.cli import app as pq_app
from pqueue import DatabaseUrlError, load_settings
from pqueue.database import describe_url
from pqueue.urls import database_url
from tests.programs import Programs, stop_program

# The hosts and ports of a primary and its standby, as libpq's keyword lists.
LISTS = {"host": "10.0.0.1,10.0.0.2", "port": "5433,5434"}
MULTI_HOST = {
    "libpq URI": "postgresql+psycopg://pq:pw@10.0.0.1:5433,10.0.0.2:5434/jobs",
    "libpq URI, postgresql://": "postgresql://pq:pw@10.0.0.1:5433,10.0.0.2:5434/jobs",
    "SQLAlchemy host=H:P&host=H:P": "postgresql+psycopg://pq:pw@/jobs?host=10.0.0.1:5433&host=10.0.0.2:5434",
    "keyword lists": "postgresql+psycopg://pq:pw@/jobs?host=10.0.0.1,10.0.0.2&port=5433,5434",
    "repeated keywords": "postgresql+psycopg://pq:pw@/jobs?host=10.0.0.1&host=10.0.0.2&port=5433&port=5434",
    "host list with ports": "postgresql+psycopg://pq:pw@/jobs?host=10.0.0.1:5433,10.0.0.2:5434",
}
# (URL, what the one line says about it besides the accepted forms)
REFUSED = [
    ("mysql://root:pw@127.0.0.1/jobs", "pqueue runs on SQLite or PostgreSQL, not mysql"),
    (
        "postgres://pq:pw@127.0.0.1/jobs",
        "SQLAlchemy does not load libpq's postgres:// alias; write postgresql+psycopg://",
    ),
    ("postgresql+psycopg2://pq:pw@127.0.0.1/jobs", "psycopg 3 only"),
    ("postgresql+psycopg://pq:pw@10.0.0.1:5433,10.0.0.2:x/jobs", "port 'x' of 10.0.0.2 is not a number"),
    ("postgresql+psycopg://pq:pw@10.0.0.1:5433,,10.0.0.2/jobs", "'' is not HOST or HOST:PORT"),
    ("postgresql+psycopg://pq:pw@/jobs?host=a,b,c&port=1,2", "it names 3 hosts but 2 ports"),
    ("postgresql+psycopg://pq:pw@/jobs?host=a:1&host=b:2&port=3", "ports both in host=HOST:PORT and in port="),
    ("postgresql+psycopg://pq:pw@db:port/jobs", "invalid literal for int()"),
    ("sqlite://", "not an in-memory database"),
    ("not a url", "it is not a URL"),
]
ACCEPTED = "use sqlite:///PATH, or postgresql+psycopg://"


def connect_args(url: str) -> dict[str, object]:
    engine = create_engine(database_url(url))
    try:
        _, params = engine.dialect.create_connect_args(engine.url)
    finally:
        engine.dispose()
    return {k: v for k, v in params.items() if k != "context"}


@pytest.mark.parametrize("url", MULTI_HOST.values(), ids=MULTI_HOST.keys())
def test_multi_host_spellings__reach_the_same_connection_arguments(url: str) -> None:
    assert connect_args(url) == {"user": "pq", "password": "pw", "dbname": "jobs", **LISTS}
    assert describe_url(url) == "postgresql+psycopg://pq:***@10.0.0.1:5433,10.0.0.2:5434/jobs"


def test_one_port_for_several_hosts__as_libpq_reads_it() -> None:
    args = connect_args("postgresql+psycopg://pq@/jobs?host=a,b&port=6432")
    assert (args["host"], args["port"]) == ("a,b", "6432,6432")


@pytest.mark.parametrize(("url", "why"), REFUSED, ids=[url for url, _ in REFUSED])
def test_unusable_url__one_line_naming_the_accepted_forms_without_the_password(url: str, why: str) -> None:
    with pytest.raises(DatabaseUrlError) as refused:
        load_settings(database_url=url)
    message = str(refused.value)
    assert why in message and ACCEPTED in message and "\n" not in message, message
    assert ":pw@" not in message


@pytest.mark.parametrize(("url", "why"), REFUSED[:5], ids=[url for url, _ in REFUSED[:5]])
def test_pq__unusable_url_is_one_line_and_exit_1(url: str, why: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(pq_app, ["migrate"], env={"PQ_HOME": str(tmp_path), "PQ_DATABASE_URL": url})
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert why in lines[0] and ACCEPTED in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "var").exists()


@pytest.mark.process
@pytest.mark.parametrize("program", ["pq-producer", "pq-consumer", "pq-relay", "pq-demo-feeder", "pq-dashboard"])
def test_long_running_program__stops_at_once_on_an_unusable_url(
    program: str, programs: Programs, tmp_path: Path
) -> None:
    """Not retried for ever as if the database were down: Supervisor sees the program exit at once."""
    for url, why in (REFUSED[0], REFUSED[1], REFUSED[3]):
        log_path = tmp_path / f"{program}.log"
        log_path.unlink(missing_ok=True)
        started = time.monotonic()
        process = programs.start(program, env={"PQ_HOME": str(tmp_path), "PQ_DATABASE_URL": url}, log=log_path)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_program(process)
            raise AssertionError(f"{program} kept running on {url}: {log_path.read_text()[-2000:]}") from None
        output = log_path.read_text()
        assert process.returncode != 0 and time.monotonic() - started < 30
        assert why in output and ACCEPTED in output, output
        assert "Traceback" not in output and "not ready" not in output and ":pw@" not in output
        assert len(output.strip().splitlines()) == 1, output
