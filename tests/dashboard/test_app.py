"""The dashboard page on a real SQLite database seeded with jobs in every state (AppTest)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pqueue import PersistentQ, Status
from tests.dashboard.page import metrics, no_exception, note, notes, table_ids, texts
from tests.dashboard.seed import Seeded

MakeApp = Callable[..., AppTest]


def test_header__counts_every_state(make_app: MakeApp, seeded: Seeded) -> None:
    app = no_exception(make_app())
    shown = metrics(app)
    assert shown["waiting"] == "4"  # 2 + 1 in reports + the crashed job awaiting its retry
    assert shown["running"] == "1"
    assert shown["processed (1h)"] == "3"
    assert shown["failed runs (1h)"] == "2"  # one crash, one out of attempts
    assert shown["needs a person"] == "1"
    assert shown["consumers"] == "1 alive"
    assert note(app, "seen ")[0] == "green"
    assert note(app, "requeue or fail") == ("red", "requeue or fail")
    assert not [text for _color, text in notes(app) if "failed by an operator" in text]
    color, running = note(app, f"job {seeded.running}: ")
    assert color == "gray" and running.endswith("of 1h 0m")


def test_charts__waiting_depth_drawn_on_the_first_look_from_the_event_log(make_app: MakeApp, seeded: Seeded) -> None:
    app = no_exception(make_app())
    assert not [c.value for c in app.caption if "appears after" in c.value]
    charts = app.get("vega_lite_chart")
    assert len(charts) == 3, "waiting depth, throughput and run durations, on a fresh session"
    depth = json.loads(charts[0].proto.spec)
    assert depth["encoding"]["y"]["axis"]["format"] == "d", "whole jobs, not 0.000000"


def test_detail__a_final_job_without_result_says_none_will_come(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.manual).run()
    captions = [c.value for c in no_exception(app).caption]
    assert "none: the job ended manual_intervention without one" in captions
    assert "none yet" not in " ".join(captions)
    app.number_input(key="job_id").set_value(seeded.waiting[0]).run()
    assert "none yet: the job has not run to the end" in [c.value for c in no_exception(app).caption]


def test_queues__show_each_queues_stored_policy(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    store.set_queue_policy("default", max_attempts=2, job_timeout=120, lease_seconds=45)
    app = no_exception(make_app())
    assert note(app, "job ")[1].endswith("of 2m 0s"), "the running job against its queue's stored timeout"
    [queues] = [frame.value for frame in app.dataframe if "max attempts" in frame.value.columns]
    default = queues.set_index("queue").loc["default"]
    assert (default["max attempts"], default["job timeout"], default["lease"]) == (2, "2m 0s", "45s")
    assert default["seats"] == 1 and default["state"] == "claiming"


def test_header__no_consumer_registered_is_red(make_app: MakeApp, store: PersistentQ) -> None:
    store.put_item({"vendor": "acme"})
    app = no_exception(make_app())
    assert (metrics(app)["consumers"], note(app, "never")) == ("none", ("red", "never registered"))


def test_table__lists_newest_first(make_app: MakeApp, seeded: Seeded) -> None:
    app = no_exception(make_app())
    ids = table_ids(app)
    assert len(ids) == 10 and ids == sorted(ids, reverse=True)


def test_filter__status_narrows_table(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app()
    app.multiselect(key="f_status").set_value(["processed"]).run()
    assert table_ids(no_exception(app)) == sorted(seeded.processed, reverse=True)
    app.multiselect(key="f_status").set_value(["crashed", "manual_intervention"]).run()
    assert table_ids(app) == [seeded.manual, seeded.crashed]


def test_filter__queue_narrows_table(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app()
    app.selectbox(key="f_queue").set_value("reports").run()
    assert table_ids(no_exception(app)) == [seeded.other_queue]


def test_filter__search_matches_payload_text_and_id(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app()
    app.text_input(key="f_search").input("GLOBEX").run()
    assert table_ids(no_exception(app)) == [seeded.crashed]
    app.text_input(key="f_search").input(str(seeded.cancelled)).run()
    assert table_ids(app) == [seeded.cancelled]


def test_filter__search_for_a_huge_number_finds_nothing(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app()
    app.text_input(key="f_search").input("9" * 30).run()
    assert not texts(no_exception(app), "error")
    assert not [frame for frame in app.dataframe if frame.key == "jobs_table"]
    assert "0 jobs match" in " ".join(c.value for c in app.caption)


def test_filter__oldest_first_reverses_order(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app()
    app.selectbox(key="f_order").set_value("oldest first").run()
    ids = table_ids(no_exception(app))
    assert ids == sorted(ids) and ids[0] == seeded.processed[0]


def test_pagination__walks_pages_by_cursor(make_app: MakeApp, store: PersistentQ) -> None:
    ids = [store.put_item({"n": n}) for n in range(60)]
    app = make_app()
    assert table_ids(no_exception(app)) == ids[::-1][:50]
    app.button(key="page_next").click().run()
    assert table_ids(no_exception(app)) == ids[::-1][50:]
    assert app.button(key="page_next").disabled
    app.button(key="page_previous").click().run()
    assert table_ids(app) == ids[::-1][:50]


def test_filter_change__returns_to_first_page(make_app: MakeApp, store: PersistentQ) -> None:
    ids = [store.put_item({"n": n}) for n in range(60)]
    app = make_app()
    app.button(key="page_next").click().run()
    app.multiselect(key="f_status").set_value(["unprocessed"]).run()
    assert table_ids(no_exception(app)) == ids[::-1][:50]


def test_detail__shows_payload_error_timeline(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.crashed).run()
    no_exception(app)
    assert [h.value for h in app.subheader if h.value.startswith("Job")] == [f"Job {seeded.crashed} · crashed"]
    assert any("ValueError: bad reading" in code.value for code in app.code)
    assert any(j.value.startswith("{") and "globex" in j.value for j in app.json)
    timeline = app.dataframe[-1].value
    assert list(timeline["to"]) == ["unprocessed", "under_process", "crashed"]


def test_detail__a_waiting_job_shows_where_it_is_in_line_and_why(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.waiting[1]).run()
    captions = [c.value for c in no_exception(app).caption]
    assert "**in line**" in [m.value for m in app.markdown]
    line = next(frame.value for frame in app.dataframe if "ahead" in frame.value.columns)
    assert line["ahead"][0] == "1 own, 0 others" and "latest" in line["start"][0]
    assert any(text.startswith("seat_busy: ") for text in captions)
    assert any(text.startswith("behind_own_jobs: 1 of your jobs go first") for text in captions)
    app.number_input(key="job_id").set_value(seeded.processed[0]).run()
    assert "**in line**" not in [m.value for m in no_exception(app).markdown]


def test_detail__shows_callback_delivery(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.processed[0]).run()
    [delivery] = [frame.value for frame in no_exception(app).dataframe if "delivery" in frame.value.columns]
    assert list(delivery["delivery"]) == ["pending"]


def test_detail__unknown_job_is_a_message(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(999).run()
    assert texts(no_exception(app), "warning") == ["job 999 not found"]


def act(app: AppTest, operation: str, reason: str | None = None) -> AppTest:
    """Press an action's button, then Confirm."""
    if reason is not None:
        app.text_input(key="action_reason").input(reason)
    app.button(key=f"do_{operation}").click().run()
    return app.button(key="confirm_detail").click().run()


def test_requeue__moves_job_and_logs_dashboard_event(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.crashed).run()
    act(app, "requeue")
    assert texts(no_exception(app), "success") == [f"requeued job {seeded.crashed}"]
    assert store.get_job(seeded.crashed).status == Status.UNPROCESSED
    last = store.events(seeded.crashed)[-1]
    assert (last.from_status, last.to_status, last.actor) == (Status.CRASHED, Status.UNPROCESSED, "dashboard")


def test_action__waits_for_confirmation(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.crashed).run()
    app.button(key="do_requeue").click().run()
    assert texts(app, "warning") == [f"Please confirm: requeue job {seeded.crashed} (shown as crashed)."]
    app.button(key="back_detail").click().run()
    assert store.get_job(seeded.crashed).status == Status.CRASHED
    assert not texts(app, "warning")


def test_fail__needs_a_reason(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.waiting[0]).run()
    app.button(key="do_fail").click().run()
    assert texts(app, "error") == ["refused: mark failed needs a reason: say why the job is failed"]
    assert store.get_job(seeded.waiting[0]).status == Status.UNPROCESSED


def test_fail__moves_to_manual_intervention_with_reason(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.waiting[0]).run()
    act(app, "fail", reason="bad input file")
    assert texts(no_exception(app), "success") == [f"marked failed job {seeded.waiting[0]}"]
    job = store.get_job(seeded.waiting[0])
    assert (job.status, job.operator_reason, job.error) == (Status.MANUAL_INTERVENTION, "bad input file", None)
    last = store.events(job.id)[-1]
    assert (last.to_status, last.actor, last.message) == (Status.MANUAL_INTERVENTION, "dashboard", "bad input file")


def test_fail__keeps_the_traceback_and_is_counted_apart(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.manual).run()
    act(app, "fail", reason="partner sent a bad field")
    app.run()  # the page as drawn after the action
    no_exception(app)
    assert metrics(app)["needs a person"] == "0", "out of attempts, then decided on: nobody needs to look"
    assert note(app, "1 failed by an operator") == ("gray", "1 failed by an operator")
    blocks = [code.value for code in app.code]
    assert "partner sent a bad field" in blocks
    assert any("KeyError: 'readings'" in block and "Traceback" in block for block in blocks), "the last error stays"
    [table] = [frame.value for frame in app.dataframe if frame.key == "jobs_table"]
    row = table.set_index("id").loc[seeded.manual]
    assert row["error"] == "failed by an operator: partner sent a bad field · KeyError: 'readings'"


def test_cancel__cancels_waiting_job(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.waiting[1]).run()
    act(app, "cancel")
    assert store.get_job(seeded.waiting[1]).status == Status.CANCELLED
    assert store.events(seeded.waiting[1])[-1].actor == "dashboard"
    assert texts(no_exception(app), "success") == [f"cancelled job {seeded.waiting[1]}"]


def test_cancel__a_crashed_job_keeps_its_traceback_beside_the_reason(
    make_app: MakeApp, store: PersistentQ, seeded: Seeded
) -> None:
    error = store.get_job(seeded.crashed).error
    assert error
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.crashed).run()
    act(app, "cancel")
    app.run()  # the page as drawn after the action
    no_exception(app)
    assert (store.get_job(seeded.crashed).error, store.get_job(seeded.crashed).operator_reason) == (
        error,
        "cancelled from the dashboard",
    )
    assert "**cancelled by an operator**" in [m.value for m in app.markdown]
    assert [code.value for code in app.code if code.value == error], "the last error stays"
    [table] = [frame.value for frame in app.dataframe if frame.key == "jobs_table"]
    row = table.set_index("id").loc[seeded.crashed]
    assert row["error"] == f"cancelled by an operator: cancelled from the dashboard · {error.strip().splitlines()[-1]}"


def test_cancel__running_job_asks_its_consumer(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.running).run()
    act(app, "cancel")
    job = store.get_job(seeded.running)
    assert (job.status, job.stop_request) == (Status.UNDER_PROCESS, Status.CANCELLED)
    assert texts(no_exception(app), "info")[-1] == (
        f"job {seeded.running} is running: its consumer stops it at its next heartbeat"
    )
    assert store.events(seeded.running)[-1].actor == "dashboard"


def test_redeliver__queues_callback_again(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    job_id = seeded.processed[0]
    [delivery] = [d for d in store.claim_deliveries("deliverer") if d.job_id == job_id]
    store.record_delivery(delivery.id, delivered=False, status_code=500, error="server error", retry_in_seconds=None)
    assert store.delivery(job_id).status.value == "undeliverable"  # type: ignore[union-attr]
    app = make_app()
    app.number_input(key="job_id").set_value(job_id).run()
    act(app, "redeliver")
    assert texts(no_exception(app), "success") == [f"callback queued again for job {job_id}"]
    again = store.delivery(job_id)
    assert again is not None and (again.status.value, again.attempts) == ("pending", 0)
    last = store.events(job_id)[-1]
    assert (last.actor, last.message) == ("dashboard", "callback redelivery requested")


def test_action__refused_when_job_moved_since_shown(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(seeded.crashed).run()
    app.button(key="do_requeue").click().run()
    store.requeue(seeded.crashed, actor="admin")  # another operator got there first
    app.button(key="confirm_detail").click().run()
    assert texts(no_exception(app), "error") == [
        f"refused: job {seeded.crashed} is unprocessed; requeue needs crashed (as it was shown)"
    ]
    assert [e.actor for e in store.events(seeded.crashed)][-1] == "admin"


def test_bulk_requeue__requeues_the_pages_failed_jobs(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.multiselect(key="f_status").set_value(["crashed", "manual_intervention", "cancelled"]).run()
    app.button(key="bulk_requeue").click().run()
    assert texts(app, "warning") == [
        f"Please confirm: requeue 3 jobs: {seeded.cancelled}, {seeded.manual}, {seeded.crashed} "
        "(shown as cancelled ×1, manual_intervention ×1, crashed ×1)."
    ]
    app.button(key="confirm_table").click().run()
    no_exception(app)
    assert texts(app, "success") == [f"requeued 3 jobs: {seeded.cancelled}, {seeded.manual}, {seeded.crashed}"]
    for job_id in (seeded.crashed, seeded.manual, seeded.cancelled):
        assert store.get_job(job_id).status == Status.UNPROCESSED
        assert store.events(job_id)[-1].actor == "dashboard"
    assert metrics(app)["needs a person"] == "0"


def test_bulk_requeue__refuses_jobs_that_moved(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.multiselect(key="f_status").set_value(["crashed", "cancelled"]).run()
    app.button(key="bulk_requeue").click().run()
    store.requeue(seeded.cancelled, actor="admin")
    store.fail(seeded.cancelled, "operator decided", actor="admin")
    app.button(key="confirm_table").click().run()
    assert texts(no_exception(app), "success") == [f"requeued job {seeded.crashed}"]
    assert texts(app, "error") == [
        f"refused: job {seeded.cancelled} is manual_intervention; requeue needs cancelled (as it was shown)"
    ]
    assert store.get_job(seeded.cancelled).status == Status.MANUAL_INTERVENTION


def test_bulk_requeue__dropped_when_the_page_changes(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.button(key="bulk_requeue").click().run()
    assert [b for b in app.button if b.key == "confirm_table"]
    app.multiselect(key="f_status").set_value(["crashed"]).run()
    assert not [b for b in app.button if b.key == "confirm_table"]
    assert store.get_job(seeded.cancelled).status == Status.CANCELLED


def test_refresh__keeps_filters_page_and_selection(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app()
    app.multiselect(key="f_status").set_value(["unprocessed"]).run()
    app.number_input(key="job_id").set_value(seeded.waiting[0]).run()
    newer = store.put_item({"vendor": "acme", "readings": [9]})
    app.run()  # what the timer does
    assert table_ids(no_exception(app)) == [newer, seeded.other_queue, *seeded.waiting[::-1]]
    assert app.multiselect(key="f_status").value == ["unprocessed"]
    assert f"Job {seeded.waiting[0]} · unprocessed" in [h.value for h in app.subheader]


def test_password__blocks_everything_until_entered(make_app: MakeApp, seeded: Seeded) -> None:
    app = make_app(PQ_DASHBOARD_PASSWORD="correct horse")
    assert not app.metric and not app.dataframe
    app.text_input(key="login_password").input("wrong")
    app.button[0].click().run()
    assert texts(app, "error") == ["wrong password"]
    assert not app.metric and not app.dataframe
    app.text_input(key="login_password").input("correct horse")
    app.button[0].click().run()
    assert metrics(no_exception(app))["waiting"] == "4"


def test_readonly__hides_every_action(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    app = make_app(PQ_DASHBOARD_READONLY="1")
    app.number_input(key="job_id").set_value(seeded.crashed).run()
    keys = {button.key for button in no_exception(app).button}
    assert not {key for key in keys if key and (key.startswith("do_") or key == "bulk_requeue")}
    assert not [t for t in app.text_input if t.key == "action_reason"]
    assert f"Job {seeded.crashed} · crashed" in [h.value for h in app.subheader]


def test_missing_database__error_names_absolute_path(make_app: MakeApp, app_env: dict[str, str]) -> None:
    app = no_exception(make_app())
    path = Path(app_env["PQ_HOME"]) / "var" / "pqueue.db"
    [message] = texts(app, "error")
    assert message.startswith(f"database {path.resolve()} does not exist")
    assert not path.exists()


def test_missing_database__page_appears_once_it_exists(
    make_app: MakeApp, make_queue: Callable[..., PersistentQ]
) -> None:
    app = make_app()
    assert texts(app, "error")
    make_queue().put_item({"vendor": "acme"})  # the producer starts and creates it
    app.run()  # what the retry timer does
    assert not texts(no_exception(app), "error")
    assert metrics(app)["waiting"] == "1"


def test_bad_setting__one_line_error(make_app: MakeApp, seeded: Seeded) -> None:
    app = no_exception(make_app(PQ_JOB_TIMEOUT="soon"))
    assert texts(app, "error") == ["PQ_JOB_TIMEOUT='soon' is not a number"]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql__header_filters_detail_and_action(make_app: MakeApp, store: PersistentQ, seeded: Seeded) -> None:
    """The same page on PostgreSQL (the other tests use SQLite)."""
    app = no_exception(make_app())
    shown = metrics(app)
    counted = (shown["waiting"], shown["running"], shown["processed (1h)"], shown["failed runs (1h)"])
    assert counted == ("4", "1", "3", "2")
    app.text_input(key="f_search").input("globex").run()
    assert table_ids(no_exception(app)) == [seeded.crashed]
    app.number_input(key="job_id").set_value(seeded.crashed).run()
    act(app, "requeue")
    assert texts(no_exception(app), "success") == [f"requeued job {seeded.crashed}"]
    assert store.events(seeded.crashed)[-1].actor == "dashboard"
