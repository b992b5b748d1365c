"""Where `pq` writes: rich tables and colour on a terminal, plain text when piped, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from pqueue import Job, Status

STATUS_STYLES = {
    Status.UNPROCESSED: "cyan",
    Status.UNDER_PROCESS: "bold yellow",
    Status.PROCESSED: "green",
    Status.CRASHED: "red",
    Status.MANUAL_INTERVENTION: "bold red",
    Status.CANCELLED: "bright_black",
}
# Piped output is never wrapped: a line per row, whatever the width of the reader's terminal.
PIPED_WIDTH = 4096


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): colour and box lines only on a terminal."""
    # Made per call: CliRunner and pytest swap sys.stdout between invocations.
    out = Console(stderr=stderr, highlight=False)
    if out.is_terminal:
        return out
    return Console(stderr=stderr, highlight=False, no_color=True, width=PIPED_WIDTH, soft_wrap=True)


def table(*columns: str, squeeze: tuple[str, ...] = ()) -> Table:
    """A table for people; without a terminal it is plain space-aligned text.

    On a narrow terminal the `squeeze` columns give up their width first (cut with …, fill them
    with `cut()`), so every row stays one line; otherwise long cells fold.
    """
    on_terminal = console().is_terminal
    result = Table(
        box=box.SIMPLE_HEAD if on_terminal else None,
        show_edge=on_terminal,
        pad_edge=False,
        header_style="bold" if on_terminal else "",
    )
    for name in columns:
        if name in squeeze:
            result.add_column(name, overflow="ellipsis")
        else:
            result.add_column(name, overflow="fold", no_wrap=bool(squeeze))
    return result


def cut(value: str) -> Text:
    """A cell of a squeeze column: one line, cut with … when the column is narrow."""
    return Text(value, no_wrap=True, overflow="ellipsis")


def status_text(status: Status | str | None) -> Text:
    """A status word, coloured by what it means (the colour is dropped when piped)."""
    if status is None:
        return Text("-")
    value = Status(status)
    return Text(value.value, style=STATUS_STYLES[value])


def job_status_text(job: Job, *, held: bool = False) -> Text:
    """A job's status word, with the agents' word beside it for a job a relay sent them:
    `under_process (queued)`, `under_process (processing)`; a waiting job a consumer holds to
    start next in its seat: `unprocessed (held)`."""
    text = status_text(job.status)
    if job.agent_status is not None:
        text.append(f" ({job.agent_status.value})")
    if held:
        text.append(" (held)")
    return text


def plain(value: object) -> Text:
    """User data for a table cell or a line: never read as rich markup."""
    return Text("" if value is None else str(value))


def show(renderable: Any) -> None:
    """Print something rich (a table, a Text) for people on stdout."""
    out = console()
    if out.is_terminal:
        out.print(renderable)
        return
    # Piped: the same text without the padding rich puts after the last column.
    with out.capture() as captured:
        out.print(renderable)
    for line in captured.get().splitlines():
        typer.echo(line.rstrip())


def say(line: str) -> None:
    """One line for people on stdout."""
    typer.echo(line)


def note(line: str) -> None:
    """One line for people on stderr (keeps stdout clean for the data)."""
    typer.echo(line, err=True)


def error(message: str) -> None:
    """An error: exactly one line on stderr."""
    lines = str(message).strip().splitlines() or ["failed"]
    typer.echo(f"error: {lines[0]}", err=True)


def emit_json(value: Any, *, one_line: bool = False) -> None:
    """JSON for scripts on stdout: indented, or one object per line when streaming."""
    typer.echo(json.dumps(value, ensure_ascii=False, indent=None if one_line else 2))


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while that is a terminal; yields `advance(count)`."""
    err = Console(stderr=True)
    if not err.is_terminal:
        yield lambda _count: None
        return
    bar = Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda count: bar.advance(task, count)
