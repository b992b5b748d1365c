"""With 100,000 jobs, a render still runs a fixed handful of queries and loads one page of rows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event
from streamlit.testing.v1 import AppTest

from pqueue import PersistentQ
from tests.dashboard.bulk import run_some, seed_many
from tests.dashboard.page import metrics, no_exception, table_ids

JOBS = 100_000
PAGE = 50
# stats (8, the replication mode and the held jobs among them), workers, two throughputs, run
# durations, partners (4), count + page + the page's held jobs, and a job's detail (5, whether it is
# held among them), with a waiting job's wait (13: the job, the clock twice, its queue twice,
# partners, running jobs, each partner's first waiting jobs, run times, live consumers, its own jobs
# ahead when it is past its partner's first ones, the queue's waiting count, the last day's seat
# time). A fixed number either way: none of them grows with the jobs stored.
MAX_QUERIES = 37


class StatementLog:
    """Every SQL statement any engine in this process sends, while recording."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):  # SQLite's explicit BEGIN is no query
            self.statements.append((statement, parameters))

    def selects_of_job_rows(self) -> list[tuple[str, Any]]:
        """Statements that read pq_jobs rows themselves rather than an aggregate of them."""
        found = []
        for statement, parameters in self.statements:
            flat = " ".join(statement.split())
            if not re.search(r"\bFROM pq_jobs\b", flat) or not flat.startswith("SELECT"):
                continue
            head = flat.split(" FROM ", 1)[0]
            if re.search(r"\b(count|min|max|sum)\(|\bDISTINCT\b", head, re.IGNORECASE):
                continue
            found.append((flat, parameters))
        return found


@pytest.fixture
def statements() -> Iterator[StatementLog]:
    log = StatementLog()
    yield log
    if event.contains(Engine, "before_cursor_execute", log):
        event.remove(Engine, "before_cursor_execute", log)


def render(app: AppTest, log: StatementLog, action: Callable[[AppTest], Any]) -> AppTest:
    """Run one interaction and record the statements of that render only."""
    log.statements.clear()
    event.listen(Engine, "before_cursor_execute", log)
    try:
        action(app)
    finally:
        event.remove(Engine, "before_cursor_execute", log)
    return no_exception(app)


def assert_bounded(log: StatementLog) -> None:
    assert len(log.statements) <= MAX_QUERIES, "\n".join(" ".join(s.split())[:70] for s, _ in log.statements)
    for statement, parameters in log.selects_of_job_rows():
        # Every read of job rows carries a LIMIT, or reads one job by id, or the running jobs
        # (as many as the queues have seats), or the held ones (at most one per running job).
        one_job = re.search(r"WHERE pq_jobs.id = \?", statement)
        running = re.search(r"WHERE pq_jobs.status = \?", statement) and "under_process" in parameters
        held = re.search(r"FROM pq_jobs, pq_holds WHERE pq_holds.job_id = pq_jobs.id AND", statement)
        assert " LIMIT " in statement or one_job or running or held, statement


@pytest.mark.timeout(240)
def test_render__bounded_queries_with_100k_jobs(
    make_app: Callable[..., AppTest], store: PersistentQ, statements: StatementLog
) -> None:
    seed_many(store, JOBS)
    processed = run_some(store, 40)
    app = make_app()  # opens the server's store: not counted
    shown = metrics(no_exception(app))
    assert (shown["processed (1h)"], shown["waiting"]) == (str(processed), str(JOBS - processed))

    render(app, statements, lambda a: a.run())
    assert_bounded(statements)
    assert len(table_ids(app)) == PAGE

    render(app, statements, lambda a: a.text_input(key="f_search").input("vendor-42").run())
    assert_bounded(statements)
    assert 0 < len(table_ids(app)) <= PAGE

    render(app, statements, lambda a: a.button(key="page_next").click().run())
    assert_bounded(statements)

    job_id = table_ids(app)[0]
    render(app, statements, lambda a: a.number_input(key="job_id").set_value(job_id).run())
    assert_bounded(statements)
    assert len(table_ids(app)) <= PAGE
