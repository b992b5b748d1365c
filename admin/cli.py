"""`pq`: see and steer the pqueue job queue from a terminal.

Expected failures (an unknown job, a refused transition, a missing database) end as one line
on stderr and exit code 1; a bad or missing value (a duration that is not one, a weight that is not
a number) is one line and exit code 2; other usage errors (an unknown option) are Typer's, exit 2.
No traceback reaches the operator for them.
"""

from __future__ import annotations

import errno
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import pqueue
from admin import output
from admin.commands import actions, jobs, keys, maintenance, partners, queues, stats
from admin.context import Admin
from admin.errors import AdminError
from pqueue import PQError


class AdminGroup(TyperGroup):
    """Runs a command and turns pqueue's expected errors into one line and exit code 1, and a bad
    value of an option or argument into one line and exit code 2."""

    def invoke(self, ctx: Any) -> Any:  # Any: the Context of Typer's bundled click
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:  # raised while a subcommand's values are read, or by it
            named = exc.param is not None or exc.param_hint is not None
            output.error(exc.format_message() if named else exc.message)
            raise typer.Exit(2) from None
        except (PQError, AdminError) as exc:
            output.error(str(exc))
            raise typer.Exit(1) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # a reader such as `head` went away: Typer handles it
                raise
            output.error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=AdminGroup,
    name="pq",
    help="See and steer the pqueue job queue. Every command takes --help.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    # Plain usage errors ("Error: ..." on one line) rather than a box drawn around them.
    rich_markup_mode=None,
)
relay_app = typer.Typer(help="Steer the broker relay.", no_args_is_help=True)
queue_app = typer.Typer(help="See and set a queue's policy, stored for every host.", no_args_is_help=True)
partner_app = typer.Typer(help="The partners sharing the licence: weights, caps, rates, usage.", no_args_is_help=True)
key_app = typer.Typer(help="Partners' API keys: create, list, revoke, rotate.", no_args_is_help=True)


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            metavar="URL",
            help="Database to open (default: PQ_DATABASE_URL, else var/pqueue.db under PQ_HOME).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """See and steer the pqueue job queue."""
    overrides = {"database_url": database_url} if database_url else {}
    state = Admin(pqueue.load_settings(**overrides))
    ctx.obj = state
    ctx.call_on_close(state.close)


def alias(name: str, of: str, command: Callable[..., Any]) -> None:
    """Register `pq NAME` as a listed, documented second name of `pq OF` (the same function)."""
    doc = inspect.getdoc(command) or ""
    app.command(name, help=f"Same as `pq {of}`: {doc[:1].lower()}{doc[1:]}")(command)


app.command("list")(jobs.list_jobs)
app.command("show")(jobs.show_job)
app.command("enqueue")(jobs.enqueue)
app.command("requeue")(actions.requeue)
alias("resubmit", "requeue", actions.requeue)  # the original design's words, so its runbooks work
app.command("fail")(actions.fail)
alias("mark-failed", "fail", actions.fail)
app.command("cancel")(actions.cancel)
app.command("redeliver")(actions.redeliver)
app.command("pause")(queues.pause)
app.command("resume")(queues.resume)
app.command("workers")(queues.workers)
app.command("stats")(stats.stats)
app.command("purge")(maintenance.purge)
app.command("rescue")(maintenance.rescue)
app.command("migrate")(maintenance.migrate)
app.command("export")(maintenance.export)
app.command("backup")(maintenance.backup)
relay_app.command("go")(queues.relay_go)
app.add_typer(relay_app, name="relay")
queue_app.command("show")(queues.show_queue)
queue_app.command("set")(queues.set_queue)
app.add_typer(queue_app, name="queue")
partner_app.command("add")(partners.add)
partner_app.command("list")(partners.list_partners)
partner_app.command("show")(partners.show)
partner_app.command("set")(partners.set_partner)
partner_app.command("disable")(partners.disable)
partner_app.command("enable")(partners.enable)
app.add_typer(partner_app, name="partner")
key_app.command("create")(keys.create)
key_app.command("list")(keys.list_keys)
key_app.command("revoke")(keys.revoke)
key_app.command("rotate")(keys.rotate)
app.add_typer(key_app, name="key")


def main() -> None:
    """The `pq` console script (also `python -m admin`)."""
    try:
        app(prog_name="pq")
    except (PQError, AdminError) as exc:  # raised outside a command (AdminGroup catches the rest)
        output.error(str(exc))
        raise SystemExit(1) from None
