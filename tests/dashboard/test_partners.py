"""The partners panel, the partner column and filter of the job table, and a job's partner (AppTest),
on SQLite and PostgreSQL: the panel's figures come from the library's usage queries on each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pqueue import PersistentQ
from tests.dashboard.page import no_exception, table_ids

MakeApp = Callable[..., AppTest]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Both databases here (the rest of the page's tests run on SQLite)."""
    return str(request.param)


@dataclass(frozen=True)
class Shared:
    """Two partners' jobs: acme held the seat ten minutes, default runs one job and waits on one."""

    acme_done: int
    acme_waiting: int
    default_running: int
    default_waiting: int


@pytest.fixture
def shared(store: PersistentQ, make_queue: Callable[..., PersistentQ]) -> Shared:
    store.add_partner("acme", weight=2, max_running=1, rate_per_minute=60)
    behind = make_queue()  # its clock runs ten minutes behind: a run it claims started then
    behind.clock_offset = timedelta(minutes=-10)
    acme_done = behind.put_item({"vendor": "acme"}, partner="acme", queue="reports")
    run = behind.get_item("worker-1", queue="reports", lease_seconds=3600)
    assert run is not None and run.id == acme_done
    store.update_status(run.id, "processed", lease_id=run.lease_id, result={})
    default_running = store.put_item({"vendor": "hooli"})
    claimed = store.get_item("worker-1")
    assert claimed is not None and claimed.id == default_running
    acme_waiting = store.put_item({"vendor": "acme", "n": 2}, partner="acme")
    default_waiting = store.put_item({"vendor": "stark"})
    return Shared(acme_done, acme_waiting, default_running, default_waiting)


def panel(app: AppTest) -> pd.DataFrame:
    [frame] = [frame for frame in app.dataframe if "seat time (1 hour)" in frame.value.columns]
    return frame.value.set_index("partner")


def expander_open(app: AppTest, label_start: str) -> bool:
    [expander] = [e for e in app.expander if e.label.startswith(label_start)]
    return bool(expander.proto.expanded)


def test_panel__weight_jobs_seat_time_and_share(make_app: MakeApp, shared: Shared) -> None:
    app = no_exception(make_app())

    rows = panel(app)

    assert list(rows.index) == ["acme", "default"]
    acme, default = rows.loc["acme"], rows.loc["default"]
    assert (acme["weight"], acme["waiting"], acme["running"]) == (2.0, 1, 0)
    assert (default["weight"], default["waiting"], default["running"]) == (1.0, 1, 1)
    assert acme["seat time (1 hour)"].startswith("10m") and acme["seat time (1 day)"].startswith("10m")
    assert acme["share (1 day)"] > 0.9 and acme["share (1 day)"] + default["share (1 day)"] == pytest.approx(1, 1e-3)
    assert (acme["max running"], acme["rate"], acme["state"]) == ("1", "60/min", "enabled")
    assert (default["max running"], default["rate"]) == ("—", "—")
    assert expander_open(app, "partners (2)"), "open once a second partner shares the seats"


def test_panel__folded_while_default_is_alone(make_app: MakeApp, store: PersistentQ) -> None:
    store.put_item({"vendor": "acme"})
    app = no_exception(make_app())
    assert list(panel(app).index) == ["default"] and panel(app).loc["default", "waiting"] == 1
    assert not expander_open(app, "partners (1)")


def test_panel__a_disabled_partner_says_so(make_app: MakeApp, store: PersistentQ) -> None:
    store.add_partner("globex")
    store.disable_partner("globex")
    assert panel(no_exception(make_app())).loc["globex", "state"] == "disabled"


def test_table__partner_column_and_filter(make_app: MakeApp, shared: Shared) -> None:
    app = no_exception(make_app())
    [table] = [frame.value for frame in app.dataframe if frame.key == "jobs_table"]
    assert dict(zip(table["id"], table["partner"], strict=True)) == {
        shared.acme_done: "acme",
        shared.acme_waiting: "acme",
        shared.default_running: "default",
        shared.default_waiting: "default",
    }
    assert app.selectbox(key="f_partner").options == ["all partners", "acme", "default"]

    app.selectbox(key="f_partner").set_value("acme").run()
    assert table_ids(no_exception(app)) == [shared.acme_waiting, shared.acme_done]
    app.selectbox(key="f_partner").set_value("default").run()
    assert table_ids(no_exception(app)) == [shared.default_waiting, shared.default_running]
    app.selectbox(key="f_queue").set_value("reports").run()
    assert not [frame for frame in no_exception(app).dataframe if frame.key == "jobs_table"], "both filters hold"
    app.selectbox(key="f_partner").set_value("all partners").run()
    assert table_ids(no_exception(app)) == [shared.acme_done]


def test_detail__shows_the_jobs_partner(make_app: MakeApp, shared: Shared) -> None:
    app = make_app()
    app.number_input(key="job_id").set_value(shared.acme_waiting).run()
    fields = [str(text.value) for text in no_exception(app).markdown if "**lease**" in str(text.value)]
    assert [line.split(" · ")[1] for line in fields] == ["**partner** acme"]
