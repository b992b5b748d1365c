"""The small pieces: durations, short texts, JSON shapes of times, colour only on a terminal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import typer
from rich.console import Console

from admin import output, render
from admin.cli import queue_app
from admin.parsing import parse_duration
from admin.queue_options import QUEUE_SET_OPTIONS, overruled_line
from pqueue import Overruled, QueueInfo, Status, load_settings, policy_defaults


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("12h", 43_200), ("7d", 604_800), ("2w", 1_209_600), ("1.5h", 5400)],
)
def test_parse_duration__units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "-1d", "7 days", "7y", "1e3s"])
def test_parse_duration__refuses_anything_else(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (125, "2m 5s"),
        (3600, "1h"),
        (3720, "1h 2m"),
        (90_000, "1d 1h"),
    ],
)
def test_duration__short_for_people(seconds: float | None, text: str) -> None:
    assert render.duration(seconds) == text


def test_iso__utc_with_z_whatever_the_zone() -> None:
    moment = datetime(2025, 1, 31, 10, 15, 2, 125_000, tzinfo=timezone(timedelta(hours=1)))
    assert render.iso(moment) == "2025-01-31T09:15:02.125Z"
    assert render.iso(None) is None
    assert render.human_time(moment.astimezone(UTC)) == "2025-01-31 09:15:02Z"


def test_shorten_and_last_line() -> None:
    assert render.shorten("a\n  b", 10) == "a b"
    assert render.shorten("x" * 50, 10) == "x" * 9 + "…"
    assert render.last_line("Traceback\n  File x\nValueError: y\n") == "ValueError: y"
    assert render.last_line("  ") is None


def test_status_colour__only_on_a_terminal() -> None:
    coloured = Console(force_terminal=True, color_system="standard", width=40)
    with coloured.capture() as captured:
        coloured.print(output.status_text(Status.MANUAL_INTERVENTION))
    assert "\x1b[1;31mmanual_intervention" in captured.get()
    piped = Console(force_terminal=False, no_color=True, width=40)
    with piped.capture() as captured:
        piped.print(output.status_text(Status.MANUAL_INTERVENTION))
    assert captured.get() == "manual_intervention\n"


def test_user_text_is_never_rich_markup() -> None:
    piped = Console(force_terminal=False, width=80)
    with piped.capture() as captured:
        piped.print(output.plain("[bold]not markup[/bold]"))
    assert captured.get() == "[bold]not markup[/bold]\n"


def test_queue_set_options__each_policy_value_has_its_option_of_pq_queue_set() -> None:
    """The options the overruled-setting line names are `pq queue set`'s own, one per policy value."""
    command = typer.main.get_command(queue_app).get_command(None, "set")  # type: ignore[attr-defined]
    options = {option for parameter in command.params for option in parameter.opts}
    assert set(QUEUE_SET_OPTIONS.values()) <= options
    assert set(QUEUE_SET_OPTIONS) == set(policy_defaults(load_settings())) < set(QueueInfo.__dataclass_fields__)


def test_overruled_line__names_the_setting_the_stored_value_and_the_command() -> None:
    said = overruled_line(Overruled(queue="default", name="job_timeout", setting="job_timeout", given=5, stored=3600))

    assert said == (
        "PQ_JOB_TIMEOUT=5 is overruled by queue 'default''s stored job_timeout 3600"
        " (`pq queue set default --timeout 5` changes it for every host)"
    )
