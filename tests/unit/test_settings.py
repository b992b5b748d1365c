"""Settings: defaults, clear errors for bad values, and every variable documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pqueue import Settings, SettingsError, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults__match_the_spec() -> None:
    settings = load_settings()
    assert (settings.max_running, settings.max_attempts, settings.job_timeout, settings.lease_seconds) == (
        1,
        3,
        3600,
        30,
    )
    assert (settings.producer_host, settings.producer_port, settings.dashboard_port) == ("127.0.0.1", 8000, 8501)
    assert settings.resolved_database_url.endswith("/var/pqueue.db")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PQ_MAX_ATTEMPTS", "three", "PQ_MAX_ATTEMPTS='three' is not an integer"),
        ("PQ_LEASE_SECONDS", "soon", "PQ_LEASE_SECONDS='soon' is not a number"),
        ("PQ_DASHBOARD_READONLY", "maybe", "PQ_DASHBOARD_READONLY='maybe' is not a boolean"),
        ("PQ_MAX_RUNNING", "0", "PQ_MAX_RUNNING='0'"),
    ],
)
def test_bad_value__stops_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings()


def test_settings__are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.max_running = 5


def test_every_setting__is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\|\s*`(PQ_[A-Z_]+)`", README.read_text(), flags=re.MULTILINE))
    wanted = {f"PQ_{name.upper()}" for name in Settings.model_fields}
    assert wanted - documented == set(), "add these to README's configuration table"
