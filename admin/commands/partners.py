"""The partners sharing the licence: `pq partner add/list/show/set/disable/enable`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from admin import output, render
from admin.commands.jobs import JsonOption
from admin.commands.keys import DEFAULT_GRACE_SECONDS, keys_table
from admin.context import partners
from admin.parsing import parse_duration, parse_rate, read_text_file
from pqueue import ApiKey, Partner, PartnerEvent

PartnerName = Annotated[str, typer.Argument(metavar="NAME", help="The partner: 1 to 64 of a-z, 0-9 and '-'.")]
MaxRunningOption = Annotated[
    int | None, typer.Option("--max-running", metavar="N", help="At most N of its jobs running at once in a queue.")
]
RateOption = Annotated[
    int | None, typer.Option("--rate", parser=parse_rate, metavar="N/min", help="At most N submissions a minute.")
]


def _report(partner: Partner, line: str, as_json: bool) -> None:
    if as_json:
        output.emit_json(render.partner_json(partner))
    else:
        output.say(line)


def add(
    ctx: typer.Context,
    name: PartnerName,
    weight: Annotated[float, typer.Option(help="Its share of the seat time against the others' weights.")] = 1.0,
    max_running: MaxRunningOption = None,
    rate: RateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a partner: a caller with its own keys and its share of the seats.

    Its share of the seat time is its weight against the weights of the other partners with jobs
    waiting; then make it a key with `pq key create --partner NAME`.
    """
    partner = partners(ctx).add_partner(name, weight=weight, max_running=max_running, rate_per_minute=rate)
    _report(partner, f"partner added: {render.partner_line(partner)}", as_json)


def list_partners(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List partners with their limits and their use of the seats.

    Columns: weight, cap on running jobs, rate limit, jobs waiting and running, seat time used
    in the last hour and day, and share of all partners' seat time in the last day.
    """
    found = partners(ctx).partners()
    if as_json:
        output.emit_json([render.partner_json(partner) for partner in found])
        return
    table = output.table(
        "partner", "weight", "max running", "rate", "waiting", "running", "seat 1h", "seat 1d", "share 1d", "state"
    )
    for partner in found:
        table.add_row(
            output.plain(partner.name),
            f"{partner.weight:g}",
            str(partner.max_running or "-"),
            f"{partner.rate_per_minute}/min" if partner.rate_per_minute else "-",
            str(partner.waiting),
            str(partner.running),
            render.duration(partner.seat_seconds_hour),
            render.duration(partner.seat_seconds_day),
            f"{partner.share_day:.0%}",
            "disabled" if partner.disabled_at else "enabled",
        )
    output.show(table)


def show(ctx: typer.Context, name: PartnerName, as_json: JsonOption = False) -> None:
    """Show a partner: its settings, its use of the seats, its keys and its event log."""
    book = partners(ctx)
    partner = book.partner(name)
    keys = book.keys(name)
    events = book.partner_events(name)
    if as_json:
        output.emit_json(
            {
                **render.partner_json(partner),
                "keys": [render.key_json(key) for key in keys],
                "events": [render.partner_event_json(event) for event in events],
            }
        )
        return
    signing = len(book.callback_secrets(name))
    grid = output.table("field", "value")
    grid.show_header = False
    grid.title = f"partner {partner.name}"
    for field, value in _fields(partner, signing):
        grid.add_row(field, value)
    output.show(grid)
    _show_keys(keys)
    _show_events(events)


def _fields(partner: Partner, signing_secrets: int) -> list[tuple[str, str]]:
    secret = {0: "PQ_CALLBACK_SECRET", 1: "its own"}.get(signing_secrets, "its own, and the previous one for its grace")
    return [
        ("state", f"disabled since {render.human_time(partner.disabled_at)}" if partner.disabled_at else "enabled"),
        ("weight", f"{partner.weight:g}"),
        ("max running", f"{partner.max_running} per queue" if partner.max_running else "no cap"),
        ("rate", f"{partner.rate_per_minute}/min" if partner.rate_per_minute else "no limit"),
        ("callback secret", secret),
        ("created", render.human_time(partner.created_at)),
        ("waiting", str(partner.waiting)),
        ("running", str(partner.running)),
        ("seat time 1h", render.duration(partner.seat_seconds_hour)),
        ("seat time 1d", render.duration(partner.seat_seconds_day)),
        ("share 1d", f"{partner.share_day:.0%}"),
    ]


def _show_keys(keys: list[ApiKey]) -> None:
    output.show(Text("\nkeys:", style="bold"))
    if not keys:
        output.say("  none; make one with `pq key create --partner NAME`")
        return
    output.show(keys_table(keys))


def _show_events(events: list[PartnerEvent]) -> None:
    output.show(Text("\nevents:", style="bold"))
    table = output.table("when", "by", "message")
    for event in events:
        table.add_row(render.human_time(event.at), output.plain(event.actor), output.plain(event.message))
    output.show(table)


def set_partner(
    ctx: typer.Context,
    name: PartnerName,
    weight: Annotated[float | None, typer.Option(help="Its new weight (counts for runs charged from now on).")] = None,
    max_running: MaxRunningOption = None,
    no_max_running: Annotated[bool, typer.Option("--no-max-running", help="Remove its cap on running jobs.")] = False,
    rate: RateOption = None,
    no_rate: Annotated[bool, typer.Option("--no-rate", help="Remove its rate limit.")] = False,
    callback_secret_file: Annotated[
        str | None,
        typer.Option(metavar="FILE", help="A file holding its own secret for signing callbacks."),
    ] = None,
    grace: Annotated[
        float | None,
        typer.Option(
            parser=parse_duration, metavar="DURATION", help="How long the previous secret signs beside it (24h)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a partner's weight, cap, rate limit or callback secret.

    Only the options given change. A new callback secret signs at once, and the previous one
    signs beside it for --grace (default 24h), so the partner can switch without a gap.
    """
    if max_running is not None and no_max_running:
        raise typer.BadParameter("give --max-running or --no-max-running, not both")
    if rate is not None and no_rate:
        raise typer.BadParameter("give --rate or --no-rate, not both")
    if grace is not None and callback_secret_file is None:
        raise typer.BadParameter("--grace goes with --callback-secret-file")
    changes = (weight, max_running, rate, callback_secret_file)
    if all(value is None for value in changes) and not (no_max_running or no_rate):
        raise typer.BadParameter(
            "give at least one of --weight, --max-running, --no-max-running, --rate, --no-rate, --callback-secret-file"
        )
    secret = read_text_file(callback_secret_file, "'--callback-secret-file'") if callback_secret_file else None
    partner = partners(ctx).set_partner(
        name,
        weight=weight,
        max_running=max_running,
        rate_per_minute=rate,
        no_max_running=no_max_running,
        no_rate=no_rate,
        callback_secret=secret,
        secret_grace_seconds=DEFAULT_GRACE_SECONDS if grace is None else grace,
    )
    line = f"partner changed: {render.partner_line(partner)}"
    if secret is not None:
        line += "; callbacks are signed with the new secret (and any previous one during its grace)"
    _report(partner, line, as_json)


def disable(ctx: typer.Context, name: PartnerName, as_json: JsonOption = False) -> None:
    """Disable a partner: its keys stop working and it can submit nothing more.

    Its jobs already stored still run; `pq partner enable` undoes it.
    """
    partner = partners(ctx).disable_partner(name)
    _report(partner, f"partner {partner.name} disabled: its keys stop working; its stored jobs still run", as_json)


def enable(ctx: typer.Context, name: PartnerName, as_json: JsonOption = False) -> None:
    """Enable a disabled partner again: its keys work again."""
    partner = partners(ctx).disable_partner(name, enable=True)
    _report(partner, f"partner {partner.name} enabled: its keys work again", as_json)
