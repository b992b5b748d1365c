"""A partner's API keys: `pq key create/list/revoke/rotate`.

A new key is printed once, alone on the last line of stdout (or as `key` of the JSON object), so
a script can take it with `tail -n 1`; the database keeps only its SHA-256 digest.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from admin import output, render
from admin.commands.jobs import JsonOption
from admin.context import partners
from admin.parsing import parse_duration
from pqueue import SCOPES, ApiKey, NewKey

KeyId = Annotated[str, typer.Argument(metavar="ID", help="The key's id, as `pq key list` shows it.")]
DurationOption = {"parser": parse_duration, "metavar": "DURATION"}
DEFAULT_GRACE_SECONDS = 86400.0  # how long a rotated key (or callback secret) keeps working beside the new one


def keys_table(keys: list[ApiKey]) -> Table:
    """The keys as `pq key list` and `pq partner show` print them (never a secret)."""
    table = output.table(
        "id", "partner", "prefix", "scopes", "name", "created", "expires", "last used", "revoked", squeeze=("name",)
    )
    for key in keys:
        table.add_row(
            key.id,
            output.plain(key.partner),
            key.prefix,
            ",".join(key.scopes),
            output.cut(key.name or "-"),
            render.human_time(key.created_at),
            render.human_time(key.expires_at),
            render.human_time(key.last_used_at),
            render.human_time(key.revoked_at),
        )
    return table


def _print_new_key(new: NewKey, line: str, as_json: bool, **extra: object) -> None:
    if as_json:
        output.emit_json({**render.key_json(new.info), **extra, "key": new.key})
        return
    output.say(line)
    output.note("the key is shown only this once; store it now (the database keeps only its digest)")
    output.say(new.key)


def create(
    ctx: typer.Context,
    partner: Annotated[str, typer.Option("--partner", "-p", metavar="NAME", help="Whose key it is.")],
    scopes: Annotated[
        str, typer.Option(metavar="SCOPE,...", help=f"What it may do, some of: {', '.join(SCOPES)}.")
    ] = "submit,read,cancel",
    expires: Annotated[
        float | None, typer.Option(**DurationOption, help="It stops working this long from now: 90d (default: never).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A note of what the key is for.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Make a key for a partner; prints it once, alone on the last line.

    With --json, an object whose `key` field holds it. The key is shown only now: the database
    keeps its digest alone.
    """
    new = partners(ctx).create_key(partner, scopes=scopes.split(","), expires_in_seconds=expires, name=name)
    info = new.info
    expiry = f"expires {render.human_time(info.expires_at)}" if info.expires_at else "never expires"
    _print_new_key(new, f"key {info.id} of partner {info.partner}: {','.join(info.scopes)}, {expiry}", as_json)


def list_keys(
    ctx: typer.Context,
    partner: Annotated[str | None, typer.Option("--partner", "-p", metavar="NAME", help="Only this partner's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List keys: id, partner, prefix, scopes, name, created, expires, last used, revoked.

    Never a key's secret. The last use is written at most every few minutes.
    """
    book = partners(ctx)
    found = book.keys(partner)
    if not found and partner is not None:
        book.partner(partner)  # an unknown partner is an error, not an empty list
    if as_json:
        output.emit_json([render.key_json(key) for key in found])
        return
    if not found:
        output.note("no key yet; make one with `pq key create --partner NAME`")
    output.show(keys_table(found))


def revoke(ctx: typer.Context, key_id: KeyId, as_json: JsonOption = False) -> None:
    """Revoke a key: it stops working at once."""
    key = partners(ctx).revoke_key(key_id)
    if as_json:
        output.emit_json(render.key_json(key))
    else:
        output.say(f"key {key.id} of partner {key.partner} revoked: it stops working at once")


def rotate(
    ctx: typer.Context,
    key_id: KeyId,
    grace: Annotated[
        float | None, typer.Option(**DurationOption, help="How long the old key keeps working (default 24h).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replace a key: prints the new one once, alone on the last line.

    The new key has the old one's partner, scopes and name; the old one keeps working for
    --grace (default 24h), so callers can switch without a gap.
    """
    seconds = DEFAULT_GRACE_SECONDS if grace is None else grace
    new = partners(ctx).rotate_key(key_id, grace_seconds=seconds)
    info = new.info
    line = (
        f"key {info.id} of partner {info.partner} replaces {key_id}, which keeps working for {render.duration(seconds)}"
    )
    _print_new_key(new, line, as_json, replaces=key_id)
