"""The job table: filters, keyset pagination (one page of rows per render), row selection, and
bulk requeue of what the page shows."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from ops_dashboard import confirm
from ops_dashboard.actions import REQUEUE_FROM, PendingAction
from ops_dashboard.format import compact_json, first_line, moment
from pqueue import CLAIMABLE, Job, Page, PersistentQInterface, Stats, Status

ORIGIN = "table"
ALL_QUEUES = "all queues"
ALL_PARTNERS = "all partners"
SINCE = {"any time": None, "last hour": 3600.0, "last 24 hours": 86400.0, "last 7 days": 604800.0}
ORDER = ("newest first", "oldest first")
CURSORS = "page_cursors"  # the cursor of every page walked through, so "previous" needs no query
PAGE_IDS = "page_ids"  # the ids in the rows on screen, to turn a selected row into a job id
SELECTED = "job_id"  # the job whose detail is shown; kept across refreshes
MAX_ID = 2**53 - 1  # the largest whole number the browser's number input holds exactly


@dataclass(frozen=True)
class Filters:
    """What the operator narrowed the table to."""

    statuses: tuple[Status, ...]
    queue: str | None
    partner: str | None
    search: str | None
    since_seconds: float | None
    oldest_first: bool

    def query(self) -> dict[str, object]:
        """The filter arguments get_all_items and count_items share."""
        return {
            "status": list(self.statuses) or None,
            "queue": self.queue,
            "partner": self.partner,
            "search": self.search,
            "since_seconds": self.since_seconds,
        }


def _turn_page(cursors: list[str | None]) -> None:
    st.session_state[CURSORS] = cursors
    if confirm.pending(ORIGIN) is not None:
        confirm.drop()  # a bulk action names the jobs of the page it was asked on


def _first_page() -> None:
    _turn_page([None])


def _next_page(cursor: str) -> None:
    _turn_page([*st.session_state[CURSORS], cursor])


def _previous_page() -> None:
    _turn_page(st.session_state[CURSORS][:-1] or [None])


def _select_row() -> None:
    rows = st.session_state["jobs_table"].selection.rows
    ids: list[int] = st.session_state.get(PAGE_IDS, [])
    if rows and rows[0] < len(ids):
        st.session_state[SELECTED] = ids[rows[0]]


def _close_detail() -> None:
    st.session_state[SELECTED] = None


def render_filters(stats: Stats, partners: list[str]) -> Filters:
    """Status, queue, partner, text or id search, time window and order; any change goes back to
    page 1."""
    queues = sorted(set(stats.counts) | {q.name for q in stats.queues})
    current = st.session_state.get("f_queue")
    if current and current != ALL_QUEUES and current not in queues:
        queues.append(current)  # keep the operator's choice even if that queue emptied
    status, queue, partner, search, since, order = st.columns([3, 2, 2, 3, 2, 2])
    chosen = status.multiselect("status", [s.value for s in Status], key="f_status", on_change=_first_page)
    picked = queue.selectbox("queue", [ALL_QUEUES, *queues], key="f_queue", on_change=_first_page)
    whose = partner.selectbox("partner", [ALL_PARTNERS, *partners], key="f_partner", on_change=_first_page)
    text = search.text_input(
        "search", key="f_search", on_change=_first_page, placeholder="job id or text in the payload"
    )
    window = since.selectbox("created", list(SINCE), key="f_since", on_change=_first_page)
    direction = order.selectbox("order", ORDER, key="f_order", on_change=_first_page)
    return Filters(
        statuses=tuple(Status(s) for s in chosen),
        queue=None if picked == ALL_QUEUES else picked,
        partner=None if whose == ALL_PARTNERS else whose,
        search=(text or "").strip() or None,
        since_seconds=SINCE[window],
        oldest_first=direction == ORDER[1],
    )


def render_table(store: PersistentQInterface, filters: Filters, page_size: int, readonly: bool) -> None:
    """One count and one page of rows, however many jobs match."""
    cursors: list[str | None] = st.session_state.setdefault(CURSORS, [None])
    total = store.count_items(**filters.query())  # type: ignore[arg-type]
    page = store.get_all_items(
        **filters.query(),  # type: ignore[arg-type]
        limit=page_size,
        cursor=cursors[-1],
        oldest_first=filters.oldest_first,
    )
    st.session_state[PAGE_IDS] = [job.id for job in page.items]
    held = set(store.holds([job.id for job in page.items if job.status in CLAIMABLE]))
    _pager(page, total, page_size, len(cursors))
    if page.items:
        st.dataframe(
            _rows(page.items, held),
            column_config=COLUMNS,
            key="jobs_table",
            on_select=_select_row,
            selection_mode="single-row",
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("no job matches these filters on this page")
    if not readonly:
        _bulk_requeue(store, page.items)


def _pager(page: Page, total: int, page_size: int, depth: int) -> None:
    start = (depth - 1) * page_size + 1
    shown = f"{start:,}–{start + len(page.items) - 1:,}" if page.items else "none"
    info, first, previous, following = st.columns([6, 1, 1, 1])
    info.caption(f"{total:,} jobs match · showing {shown} · click a row to open it; a column header sorts the page")
    first.button("First", key="page_first", on_click=_first_page, disabled=depth == 1)
    previous.button("‹ Previous", key="page_previous", on_click=_previous_page, disabled=depth == 1)
    following.button(
        "Next ›",
        key="page_next",
        on_click=_next_page,
        args=(page.next_cursor,),
        disabled=page.next_cursor is None,
    )


# What an operator reads first comes first: the error sits beside the status, inside the page at
# 1366 px, and the columns that only add detail follow it, out to the right edge and beyond.
COLUMNS = {
    "id": st.column_config.NumberColumn("id", width=70, format="%d"),
    "status": st.column_config.TextColumn(
        "status", width=150, help="(held): a consumer holds the job to start in its seat right after its running job"
    ),
    "error": st.column_config.TextColumn("error", width=360, help="the operator's reason, then the last error's line"),
    "attempts": st.column_config.TextColumn("attempts", width=70),
    "queue": st.column_config.TextColumn("queue", width=90),
    "partner": st.column_config.TextColumn("partner", width=90),
}


def _rows(items: list[Job], held: set[int]) -> pd.DataFrame:
    """One row per job; a waiting job a consumer holds to start next in its seat reads
    `unprocessed (held)`, as in `pq list`."""
    return pd.DataFrame(
        [
            {
                "id": job.id,
                "status": f"{job.status_words} (held)" if job.id in held else job.status_words,
                "error": _why(job),
                "attempts": f"{job.attempts}/{job.max_attempts}",
                "queue": job.queue,
                "partner": job.partner,
                "priority": job.priority,
                "created": moment(job.created_at),
                "started": moment(job.started_at),
                "finished": moment(job.finished_at),
                "worker": job.worker_id or "",
                "payload": compact_json(job.payload),
            }
            for job in items
        ]
    )


def _why(job: Job) -> str:
    """The error cell: an operator's reason first (the job was failed on purpose), then the last
    error's line."""
    error = first_line(job.error)
    if job.operator_verdict and job.operator_reason:
        reason = f"{job.operator_verdict}: {first_line(job.operator_reason)}"
        return f"{reason} · {error}" if error else reason
    return error


def _bulk_requeue(store: PersistentQInterface, items: list[Job]) -> None:
    """Requeue the page's jobs that can be requeued, each bound to the status shown for it."""
    targets = tuple((job.id, job.status) for job in items if job.status in REQUEUE_FROM)
    if targets:
        st.button(
            f"Requeue the {len(targets)} crashed / manual_intervention / cancelled jobs on this page",
            key="bulk_requeue",
            on_click=confirm.request,
            args=(PendingAction("requeue", targets, origin=ORIGIN),),
        )
    confirm.render_confirmation(store, ORIGIN)
    confirm.render_outcome(ORIGIN)


def render_job_picker() -> int | None:
    """The job whose detail is shown: set by clicking a row or by typing any job id."""
    picker, close = st.columns([2, 6])
    job_id = picker.number_input(
        "open job id", min_value=1, max_value=MAX_ID, step=1, value=None, key=SELECTED, format="%d"
    )
    if job_id is not None:
        close.button("Close", key="close_detail", on_click=_close_detail)
    return int(job_id) if job_id is not None else None
