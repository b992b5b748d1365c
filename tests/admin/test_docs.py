"""Every `pq` command is documented in docs/cli.md and has help text (as sqlite-utils checks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from admin.cli import app

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def command_paths() -> list[tuple[str, ...]]:
    """Every runnable command, as the words after `pq` (sub-groups such as `relay` included)."""
    root = typer.main.get_command(app)
    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            found.append(path)
            return
        for name, child in children.items():
            walk(child, (*path, name))

    walk(root, ())
    return found


def test_command_list__is_what_the_issue_asks_for() -> None:
    assert {" ".join(path) for path in command_paths()} == {
        "list", "show", "enqueue", "requeue", "resubmit", "fail", "mark-failed", "cancel", "redeliver", "pause",
        "resume", "workers", "stats", "purge", "rescue", "migrate", "export", "backup", "relay go", "queue show",
        "queue set", "partner add", "partner list", "partner show", "partner set", "partner disable", "partner enable",
        "key create", "key list", "key revoke", "key rotate",
    }  # fmt: skip


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_command__documented_with_an_example_and_has_help(path: tuple[str, ...]) -> None:
    docs = DOCS.read_text()
    name = "pq " + " ".join(path)
    rows = [line for line in docs.splitlines() if line.startswith(f"| `{name}")]
    assert len(rows) == 1, f"{name} needs one row in the commands table of docs/cli.md"
    assert rows[0].count("|") == 4 and f"`{name}" in rows[0].split("|")[3], "a description and an example"

    result = CliRunner().invoke(app, [*path, "--help"], prog_name="pq")
    assert result.exit_code == 0, result.output
    description = result.stdout.split("\n\n")[1].strip()
    assert len(description) > 10, f"{name} --help says what it does"


def test_docs__have_the_tour_and_json_formats() -> None:
    docs = DOCS.read_text()
    assert "## Tour: find a job in manual_intervention, read its error, requeue it" in docs
    assert "pq list --status manual_intervention" in docs and "pq show 42" in docs and "pq requeue 42" in docs
    assert "## JSON formats" in docs
