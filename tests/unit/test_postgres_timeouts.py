"""PostgreSQL's timeouts: derived from the lease unless set, and carried by the URL and options."""

from __future__ import annotations

import pytest
from sqlalchemy import make_url

from pqueue import SettingsError, load_settings
from pqueue.database import PostgresTimeouts, describe_url

URL = "postgresql+psycopg://pq:secret@db.internal:5432/pqueue"


@pytest.mark.parametrize(
    ("lease", "expected"),
    [(30, 5.0), (4, 2.0), (18, 3.0), (600, 5.0)],
)
def test_defaults__a_sixth_of_the_lease_between_2_and_5_seconds(lease: float, expected: float) -> None:
    timeouts = PostgresTimeouts.for_settings(load_settings(lease_seconds=lease))
    assert (timeouts.statement, timeouts.network, timeouts.call_deadline) == (expected, expected, 2 * expected)


def test_settings__win_over_the_derived_values() -> None:
    settings = load_settings(lease_seconds=30, db_statement_timeout=20, db_network_timeout=0.5)
    timeouts = PostgresTimeouts.for_settings(settings)
    assert (timeouts.statement, timeouts.network) == (20, 0.5)
    assert timeouts.server_options() == [
        "-cstatement_timeout=20000",
        "-cidle_in_transaction_session_timeout=20500",
    ]
    assert make_url(timeouts.add_tcp_settings(URL)).query["connect_timeout"] == "2"  # libpq's least useful value


def test_tcp_settings__are_added_to_the_url_unless_it_has_its_own() -> None:
    timeouts = PostgresTimeouts(statement=5, network=8)
    query = make_url(timeouts.add_tcp_settings(URL + "?keepalives_idle=60&sslmode=require")).query
    assert query == {
        "connect_timeout": "8",
        "keepalives": "1",
        "keepalives_idle": "60",
        "keepalives_interval": "2",
        "keepalives_count": "3",
        "tcp_user_timeout": "8000",
        "sslmode": "require",
    }


def test_several_hosts__connect_to_the_primary_unless_the_url_says_otherwise() -> None:
    timeouts = PostgresTimeouts(statement=5, network=8)
    several = "postgresql+psycopg://pq@a:5432,b:5432/pqueue"
    assert timeouts.add_tcp_settings(several).query["target_session_attrs"] == "read-write"
    assert timeouts.add_tcp_settings(several + "?target_session_attrs=any").query["target_session_attrs"] == "any"


def test_describe_url__names_the_database_without_the_added_settings() -> None:
    with_tcp = PostgresTimeouts(statement=5, network=5).add_tcp_settings(URL + "?sslmode=require")
    assert describe_url(with_tcp.render_as_string(hide_password=False)) == (
        "postgresql+psycopg://pq:***@db.internal:5432/pqueue?sslmode=require"
    )


def test_bad_timeout__stops_with_one_clear_line() -> None:
    with pytest.raises(SettingsError, match="PQ_DB_STATEMENT_TIMEOUT=0"):
        load_settings(db_statement_timeout=0)
