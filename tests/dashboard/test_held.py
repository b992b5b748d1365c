"""The dashboard on a job a consumer holds to start next in its seat (PQ_CLAIM_AHEAD): the job
is still `unprocessed` in the database, and the table and the job's detail say it is held, by
whom, behind which running job, since when (AppTest, on both backends)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from pqueue import PersistentQ, Status
from tests.dashboard.page import no_exception, note, notes, texts

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
WORKER = "consumer-test-1"


def held_behind_running(store: PersistentQ) -> tuple[int, int, int]:
    """(running job, held job, a waiting job nobody holds)."""
    store.put_items([{"n": n} for n in range(3)])
    running = store.get_item(WORKER)
    assert running is not None
    held = store.hold_next(WORKER, behind_job=running.id, behind_lease=running.lease_id)
    assert held is not None
    [other] = [job.id for job in store.next_items(limit=5) if job.id != held.id]
    return running.id, held.id, other


def statuses(app: AppTest) -> dict[int, str]:
    [table] = [frame for frame in app.dataframe if frame.key == "jobs_table"]
    return {int(job_id): status for job_id, status in zip(table.value["id"], table.value["status"], strict=True)}


def unescaped(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


@BACKENDS
def test_table__marks_the_held_job_and_only_it(make_app: Callable[..., AppTest], store: PersistentQ) -> None:
    running, held, other = held_behind_running(store)
    app = no_exception(make_app())
    shown = statuses(app)
    assert shown[held] == "unprocessed (held)"
    assert (shown[other], shown[running]) == ("unprocessed", "under_process")
    assert note(app, "1 held") == ("gray", "1 held to start next in a seat"), "under the waiting count"


@BACKENDS
def test_detail__says_who_holds_the_job_behind_which_job_and_since_when(
    make_app: Callable[..., AppTest], store: PersistentQ
) -> None:
    running, held, other = held_behind_running(store)
    app = make_app()
    app.number_input(key="job_id").set_value(held).run()
    assert [h.value for h in no_exception(app).subheader][-1] == f"Job {held} · unprocessed (held)"
    [info] = [unescaped(text) for text in texts(app, "info") if "held by" in unescaped(text)]
    assert info.startswith(f"held by consumer {WORKER} to start right after job {running} (since 20")

    app.number_input(key="job_id").set_value(other).run()
    assert not [text for text in texts(no_exception(app), "info") if "held by" in unescaped(text)]


@BACKENDS
def test_a_lapsed_hold_is_no_longer_shown(make_app: Callable[..., AppTest], store: PersistentQ) -> None:
    running, held, _other = held_behind_running(store)
    job = store.get_job(running)
    store.update_status(running, Status.PROCESSED, lease_id=job.lease_id)  # recorded alone: the hold lapses
    app = make_app()
    assert statuses(no_exception(app))[held] == "unprocessed"
    assert not [text for _color, text in notes(app) if "held" in text]
    app.number_input(key="job_id").set_value(held).run()
    assert not [text for text in texts(no_exception(app), "info") if "held by" in unescaped(text)]
