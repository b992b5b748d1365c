"""Databases `pq` cannot use: one clear line on stderr, exit 1, and nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.admin.cli_support import Pq, one_error_line, sqlite_only
from tests.support import free_port

pytestmark = sqlite_only  # the database is absent, empty or unreachable: the backend does not matter


def test_missing_sqlite_file__names_the_absolute_path_and_creates_nothing(
    pq: Pq, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = pq("--database-url", "sqlite:///var/elsewhere.db", "list")

    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith(f"error: database {tmp_path / 'var' / 'elsewhere.db'} does not exist")
    assert "--database-url" in line and "PQ_DATABASE_URL" in line
    assert not (tmp_path / "var").exists(), "pq never creates a database"


def test_missing_default_database__every_command_refuses(pq: Pq, tmp_path: Path) -> None:
    env = {"PQ_HOME": str(tmp_path)}  # no PQ_DATABASE_URL: var/pqueue.db under PQ_HOME
    for args in (["list"], ["show", "1"], ["requeue", "1"], ["purge", "--older-than", "1d", "--yes"], ["stats"]):
        result = pq(*args, env=env)
        assert result.exit_code == 1, args
        assert f"database {tmp_path / 'var' / 'pqueue.db'} does not exist" in one_error_line(result)
    assert not (tmp_path / "var").exists()


def test_unreachable_postgresql__one_clear_line(pq: Pq) -> None:
    port = free_port()  # nothing listens there
    result = pq("--database-url", f"postgresql+psycopg://postgres:secret@127.0.0.1:{port}/test", "list")

    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith(f"error: cannot reach the database postgresql+psycopg://postgres:***@127.0.0.1:{port}/test")
    assert "secret" not in result.output


def test_database_without_schema__says_to_migrate(pq: Pq, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    result = pq("--database-url", f"sqlite:///{empty}", "list")
    assert result.exit_code == 1
    assert one_error_line(result).endswith("run `pq migrate`")


def test_bad_database_url_or_setting__one_line(pq: Pq, db_env: dict[str, str]) -> None:
    bad_url = pq("--database-url", "not a url", "list")
    bad_setting = pq("list", env={**db_env, "PQ_MAX_ATTEMPTS": "three"})
    assert bad_url.exit_code == 1 and "'not a url' cannot be used: it is not a URL" in one_error_line(bad_url)
    assert bad_setting.exit_code == 1
    assert one_error_line(bad_setting) == "error: PQ_MAX_ATTEMPTS='three' is not an integer"


def test_unknown_command_or_option__usage_error(pq: Pq) -> None:
    assert pq("frobnicate").exit_code == 2
    assert pq("list", "--colour").exit_code == 2
    assert pq("show", "twelve").exit_code == 2
