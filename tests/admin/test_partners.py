"""`pq partner` and `pq key` on a real database: partners, their keys, and bad input refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pqueue import KeyRejected, PersistentQ
from tests.admin.cli_support import Jobs, Pq, as_json, one_error_line

PARTNER_FIELDS = [
    "name", "weight", "max_running", "rate_per_minute", "disabled_at", "created_at", "has_callback_secret",
    "waiting", "running", "seat_seconds_hour", "seat_seconds_day", "share_day",
]  # fmt: skip
KEY_FIELDS = ["id", "partner", "prefix", "scopes", "name", "created_at", "expires_at", "last_used_at", "revoked_at"]


def everything(q: PersistentQ) -> Any:
    """What a refused command must leave as it was: partners, keys and every partner's log."""
    partners = q.partners()
    settings = [(p.name, p.weight, p.max_running, p.rate_per_minute, p.disabled_at) for p in partners]
    return settings, q.keys(), [q.partner_events(p.name) for p in partners], q.callback_secrets("acme")


def new_key(pq: Pq, *args: str) -> str:
    """Run a command that makes a key; the key is alone on the last line of stdout."""
    result = pq(*args)
    assert result.exit_code == 0, result.output
    key = result.stdout.splitlines()[-1]
    assert key.startswith("pq_") and " " not in key, result.stdout
    assert "shown only this once" in result.stderr
    return key


def test_partner_add_and_list__settings_and_usage(pq: Pq, jobs: Jobs, make_queue: Callable[..., PersistentQ]) -> None:
    added = as_json(pq("partner", "add", "acme", "--weight", "2", "--max-running", "1", "--rate", "60/min", "--json"))
    assert list(added) == PARTNER_FIELDS
    assert (added["name"], added["weight"], added["max_running"], added["rate_per_minute"]) == ("acme", 2.0, 1, 60)
    jobs.running()  # default's, still running
    # acme held a seat for ten minutes: claimed by a store whose clock runs ten minutes behind.
    behind = make_queue()
    behind.clock_offset = timedelta(minutes=-10)
    behind.put_item({"n": 1}, partner="acme", queue="reports")
    run = behind.get_item("worker-1", queue="reports", lease_seconds=3600)
    assert run is not None and run.partner == "acme"
    jobs.store.update_status(run.id, "processed", lease_id=run.lease_id, result={})
    jobs.waiting(partner="acme")

    listed = {partner["name"]: partner for partner in as_json(pq("partner", "list", "--json"))}

    assert list(listed) == ["acme", "default"]
    acme, default = listed["acme"], listed["default"]
    assert (acme["waiting"], acme["running"], default["waiting"], default["running"]) == (1, 0, 0, 1)
    assert 590 <= acme["seat_seconds_hour"] <= 630 and acme["seat_seconds_day"] == acme["seat_seconds_hour"]
    assert acme["share_day"] > 0.9 and acme["share_day"] + default["share_day"] == pytest.approx(1, abs=1e-3)
    table = pq("partner", "list").stdout.splitlines()
    assert table[0].split() == [
        "partner", "weight", "max", "running", "rate", "waiting", "running", "seat", "1h", "seat", "1d", "share", "1d",
        "state",
    ]  # fmt: skip
    assert table[1].split()[:6] == ["acme", "2", "1", "60/min", "1", "0"]
    assert table[1].split()[6] == "10m", "ten minutes of seat time (and a second or so)"
    assert table[1].endswith("enabled")


def test_partner_show__settings_keys_and_event_log(pq: Pq, q: PersistentQ) -> None:
    pq("partner", "add", "acme")
    key_id = q.create_key("acme", name="nightly batch").info.id

    shown = pq("partner", "show", "acme")
    data = as_json(pq("partner", "show", "acme", "--json"))

    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0] == "partner acme"
    assert "callback secret  PQ_CALLBACK_SECRET" in shown.stdout
    assert key_id in shown.stdout and "nightly batch" in shown.stdout
    assert "added: weight 1" in shown.stdout and f"key {key_id} created" in shown.stdout
    assert list(data) == [*PARTNER_FIELDS, "keys", "events"]
    assert [key["id"] for key in data["keys"]] == [key_id]
    assert [event["message"] for event in data["events"]] == [
        "added: weight 1",
        f"key {key_id} created (submit,read,cancel)",
    ]


def test_partner_set__changes_only_what_is_given_and_rotates_the_callback_secret(
    pq: Pq, q: PersistentQ, tmp_path: Path
) -> None:
    pq("partner", "add", "acme", "--max-running", "2", "--rate", "10/min")
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("first-secret\n")
    second.write_text("second-secret\n")

    weighted = as_json(pq("partner", "set", "acme", "--weight", "3", "--no-max-running", "--json"))
    assert (weighted["weight"], weighted["max_running"], weighted["rate_per_minute"]) == (3.0, None, 10)
    unlimited = pq("partner", "set", "acme", "--no-rate")
    assert unlimited.stdout.strip() == "partner changed: acme: weight 3, no cap on running jobs, no rate limit, enabled"

    assert pq("partner", "set", "acme", "--callback-secret-file", str(first)).exit_code == 0
    assert q.callback_secrets("acme") == ["first-secret"]
    assert pq("partner", "set", "acme", "--callback-secret-file", str(second), "--grace", "1h").exit_code == 0
    assert q.callback_secrets("acme") == ["second-secret", "first-secret"], "the old one signs during the grace"
    assert pq("partner", "set", "acme", "--callback-secret-file", str(first), "--grace", "0s").exit_code == 0
    assert q.callback_secrets("acme") == ["first-secret"], "no grace: the previous one stops signing at once"
    assert "its own" in pq("partner", "show", "acme").stdout
    assert "second-secret" not in pq("partner", "show", "acme", "--json").stdout


def test_partner_disable_and_enable__its_keys_stop_and_work_again(pq: Pq, q: PersistentQ) -> None:
    pq("partner", "add", "acme")
    key = new_key(pq, "key", "create", "--partner", "acme")

    disabled = pq("partner", "disable", "acme")
    assert disabled.stdout.strip() == "partner acme disabled: its keys stop working; its stored jobs still run"
    with pytest.raises(KeyRejected, match="disabled"):
        q.authenticate(key)
    assert as_json(pq("partner", "list", "--json"))[0]["disabled_at"] is not None

    assert pq("partner", "enable", "acme").stdout.strip() == "partner acme enabled: its keys work again"
    assert q.authenticate(key).partner == "acme"


def test_key_create__printed_once_alone_on_the_last_line_and_only_its_digest_stored(
    pq: Pq, q: PersistentQ, backend: str, db_env: dict[str, str]
) -> None:
    pq("partner", "add", "acme")

    key = new_key(pq, "key", "create", "--partner", "acme", "--scopes", "submit,read", "--expires", "90d")
    made = as_json(pq("key", "create", "--partner", "acme", "--name", "ci", "--json"))

    caller = q.authenticate(key)
    assert (caller.partner, caller.scopes) == ("acme", ("submit", "read"))
    assert list(made) == [*KEY_FIELDS, "key"]
    assert q.authenticate(made["key"]).scopes == ("submit", "read", "cancel")
    [first, second] = q.keys("acme")
    assert first.expires_at is not None and first.expires_at - first.created_at == timedelta(days=90)
    assert (second.name, second.expires_at) == ("ci", None)
    if backend == "sqlite":
        stored = Path(db_env["PQ_DATABASE_URL"].removeprefix("sqlite:///")).read_bytes()
        assert key.encode() not in stored and made["key"].encode() not in stored
        assert key.split("_")[2].encode() not in stored, "not even the secret part"


def test_key_list__every_field_but_the_secret_and_the_partner_filter(pq: Pq, q: PersistentQ) -> None:
    pq("partner", "add", "acme")
    pq("partner", "add", "globex")
    acme = q.create_key("acme", name="batch")
    globex = q.create_key("globex", scopes=["read"])
    q.revoke_key(globex.info.id)

    listed = as_json(pq("key", "list", "--json"))
    table = pq("key", "list").stdout.splitlines()
    only_acme = as_json(pq("key", "list", "--partner", "acme", "--json"))

    assert [(key["id"], key["partner"], key["scopes"]) for key in listed] == [
        (acme.info.id, "acme", ["submit", "read", "cancel"]),
        (globex.info.id, "globex", ["read"]),
    ]
    assert all(list(key) == KEY_FIELDS for key in listed)
    assert listed[0]["prefix"] == f"pq_{acme.info.id}_…" and listed[1]["revoked_at"] is not None
    assert table[0].split() == [
        "id",
        "partner",
        "prefix",
        "scopes",
        "name",
        "created",
        "expires",
        "last",
        "used",
        "revoked",
    ]
    assert table[1].split()[:5] == [acme.info.id, "acme", f"pq_{acme.info.id}_…", "submit,read,cancel", "batch"]
    assert acme.key not in "\n".join(table) and acme.key.split("_")[2] not in str(listed)
    assert [key["id"] for key in only_acme] == [acme.info.id]


def test_key_revoke__stops_working_at_once(pq: Pq, q: PersistentQ) -> None:
    pq("partner", "add", "acme")
    made = q.create_key("acme")

    revoked = pq("key", "revoke", made.info.id)

    assert revoked.stdout.strip() == f"key {made.info.id} of partner acme revoked: it stops working at once"
    with pytest.raises(KeyRejected, match="revoked"):
        q.authenticate(made.key)
    again = pq("key", "revoke", made.info.id)
    assert again.exit_code == 1 and one_error_line(again) == f"error: key: {made.info.id} is already revoked"
    assert f"key {made.info.id} revoked" in [event.message for event in q.partner_events("acme")]


def test_key_rotate__new_key_printed_once_and_the_old_one_works_for_the_grace(pq: Pq, q: PersistentQ) -> None:
    pq("partner", "add", "acme")
    old = q.create_key("acme", scopes=["submit"], name="batch")

    new = new_key(pq, "key", "rotate", old.info.id, "--grace", "1h")

    assert q.authenticate(new).scopes == ("submit",) and q.authenticate(old.key).partner == "acme"
    [kept] = [key for key in q.keys("acme") if key.id == old.info.id]
    assert kept.expires_at is not None and timedelta(minutes=59) < kept.expires_at - q.now() <= timedelta(hours=1)
    rotated = as_json(pq("key", "rotate", q.authenticate(new).key_id or "", "--grace", "0s", "--json"))
    assert rotated["name"] == "batch" and rotated["scopes"] == ["submit"]
    with pytest.raises(KeyRejected, match="expired"):
        q.authenticate(new)  # no grace: the key it replaced stops at once
    assert q.authenticate(rotated["key"]).partner == "acme"


def test_list_and_show__the_jobs_partner_and_a_partner_filter(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    pq("partner", "add", "acme")
    theirs = jobs.waiting({"vendor": "acme"}, partner="acme")
    ours = jobs.waiting()

    table = pq("list").stdout.splitlines()
    filtered = as_json(pq("list", "--partner", "acme", "--json"))
    shown = pq("show", str(theirs)).stdout

    assert [line.split()[:4] for line in table[1:]] == [
        [str(ours), "default", "default", "unprocessed"],
        [str(theirs), "default", "acme", "unprocessed"],
    ]
    assert [(job["id"], job["partner"]) for job in filtered] == [(theirs, "acme")]
    assert as_json(pq("list", "--partner", "default", "--json"))[0]["id"] == ours
    assert [line.split() for line in shown.splitlines() if line.startswith("partner")] == [["partner", "acme"]]
    assert as_json(pq("show", str(theirs), "--json"))["partner"] == "acme"


BAD_INPUT = [
    (["partner", "add", "Acme"], 1, "error: partner: 'Acme' is not a partner name; use 1 to 64 of a-z, 0-9 and '-'"),
    (["partner", "add", "a" * 65], 1, "is not a partner name"),
    (["partner", "add", "acme"], 1, "error: partner: 'acme' already exists; change it with `pq partner set`"),
    (["partner", "add", "bob", "--weight", "0"], 1, "error: weight: 0.0 is not a number above 0"),
    (["partner", "add", "bob", "--weight", "-1"], 1, "is not a number above 0"),
    (["partner", "add", "bob", "--weight", "heavy"], 2, "error: Invalid value for '--weight'"),
    (["partner", "add", "bob", "--max-running", "0"], 1, "error: max_running: 0 is not a positive integer"),
    (["partner", "add", "bob", "--max-running", "1.5"], 2, "error: Invalid value for '--max-running'"),
    (["partner", "add", "bob", "--rate", "0/min"], 1, "error: rate: 0 is not a positive integer"),
    (["partner", "add", "bob", "--rate", "60"], 2, "'60' is not a rate; use a whole number per minute: 60/min"),
    (["partner", "add", "bob", "--rate", "1.5/min"], 2, "'1.5/min' is not a rate"),
    (["partner", "add", "bob", "--rate", "60/hour"], 2, "'60/hour' is not a rate"),
    (["partner", "set", "acme", "--weight", "0"], 1, "error: weight: 0.0 is not a number above 0"),
    (["partner", "set", "acme", "--rate", "-3/min"], 2, "'-3/min' is not a rate"),
    (["partner", "set", "acme", "--max-running", "2", "--no-max-running"], 2, "give --max-running or --no-max"),
    (["partner", "set", "acme", "--rate", "2/min", "--no-rate"], 2, "give --rate or --no-rate, not both"),
    (["partner", "set", "acme"], 2, "error: give at least one of --weight"),
    (["partner", "set", "acme", "--grace", "1h"], 2, "error: --grace goes with --callback-secret-file"),
    (["partner", "set", "acme", "--callback-secret-file", "missing"], 2, "cannot read"),
    (["partner", "set", "acme", "--callback-secret-file", "secret", "--grace", "soon"], 2, "'soon' is not a duration"),
    (["partner", "set", "acme", "--callback-secret-file", "empty"], 1, "error: callback_secret: is empty"),
    (["partner", "set", "nobody", "--weight", "2"], 1, "error: partner 'nobody' not found"),
    (["partner", "show", "nobody"], 1, "error: partner 'nobody' not found"),
    (["partner", "disable", "nobody"], 1, "error: partner 'nobody' not found"),
    (["partner", "enable", "nobody"], 1, "error: partner 'nobody' not found"),
    (["partner", "disable", "default"], 1, "error: partner: 'default' cannot be disabled; revoke its keys instead"),
    (["key", "create", "--partner", "nobody"], 1, "error: partner 'nobody' not found"),
    (["key", "create", "--partner", "acme", "--scopes", "submit,write"], 1, "error: scopes: write is not a scope"),
    (["key", "create", "--partner", "acme", "--scopes", ""], 1, "error: scopes: none is not a scope"),
    (["key", "create", "--partner", "acme", "--expires", "soon"], 2, "'soon' is not a duration"),
    (["key", "create", "--partner", "acme", "--expires", "0d"], 1, "error: expires: must be a duration above 0"),
    (["key", "create"], 2, "error: Missing option '--partner'"),
    (["key", "list", "--partner", "nobody"], 1, "error: partner 'nobody' not found"),
    (["key", "revoke", "k000000000000"], 1, "error: key 'k000000000000' not found"),
    (["key", "rotate", "k000000000000"], 1, "error: key 'k000000000000' not found"),
    (["key", "rotate", "KEY", "--grace", "a day"], 2, "'a day' is not a duration"),
    (["list", "--partner", "nobody"], 1, "error: partner 'nobody' not found"),
]


def test_bad_input__one_line_a_non_zero_exit_and_nothing_changed(
    pq: Pq, q: PersistentQ, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret").write_text("s3cret")
    (tmp_path / "empty").write_text("  \n")
    pq("partner", "add", "acme", "--max-running", "1")
    key_id = q.create_key("acme").info.id
    before = everything(q)

    for args, code, message in BAD_INPUT:
        result = pq(*[key_id if arg == "KEY" else arg for arg in args])
        assert result.exit_code == code, (args, result.output)
        line = one_error_line(result)
        assert line.startswith("error: ") and message in line, (args, line)
        assert result.stdout == "", (args, result.stdout)

    assert everything(q) == before
