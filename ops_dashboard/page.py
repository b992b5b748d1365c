"""The dashboard page: settings, sign-in, the store, then everything that refreshes itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import streamlit as st

from ops_dashboard import access
from ops_dashboard.charts import render_charts
from ops_dashboard.connection import open_store
from ops_dashboard.detail import render_detail
from ops_dashboard.header import render_header, render_queues, render_workers
from ops_dashboard.overview import load_overview
from ops_dashboard.partners import render_partners
from ops_dashboard.table import render_filters, render_job_picker, render_table
from pqueue import Insights, PersistentQInterface, PQError, Settings, SettingsError, load_settings

log = logging.getLogger("ops_dashboard")

REFRESH = {"off": None, "2 s": 2, "5 s": 5, "10 s": 10, "30 s": 30, "1 min": 60}
WINDOWS = {"15 min": 900, "1 hour": 3600, "6 hours": 21600, "24 hours": 86400}
PAGE_SIZES = (25, 50, 100, 200)
# Programs started together: the dashboard may be up before the producer created the database.
DATABASE_RETRY_SECONDS = 5


@dataclass(frozen=True)
class Controls:
    """The sidebar's choices; changing one reruns the whole page."""

    refresh_seconds: int | None
    window_seconds: int
    page_size: int


def render() -> None:
    """Entry point of app.py."""
    st.set_page_config(page_title="pqueue", page_icon="📋", layout="wide")
    try:
        settings = load_settings()
    except SettingsError as exc:
        st.error(str(exc))
        return
    if not access.signed_in(settings):
        return
    try:
        store = open_store(settings)
    except PQError as exc:
        log.error("cannot open the database: %s", exc)
        st.fragment(_wait_for_database, run_every=DATABASE_RETRY_SECONDS)(settings)
        return
    controls = _sidebar(settings, store)
    # Only this part reruns on the timer; widget state (filters, page, selected job) lives in
    # session state, so a refresh redraws the same view with fresh numbers.
    st.fragment(_body, run_every=controls.refresh_seconds)(store, settings, controls)


def _wait_for_database(settings: Settings) -> None:
    """Say why the database cannot be used, and try again until it can; then draw the page."""
    try:
        open_store(settings)
    except PQError as exc:
        st.error(str(exc))
        st.caption(f"trying again every {DATABASE_RETRY_SECONDS} s")
        return
    st.rerun()


def _sidebar(settings: Settings, store: Insights) -> Controls:
    with st.sidebar:
        st.title("pqueue")
        refresh = st.selectbox("refresh every", list(REFRESH), index=3, key="refresh")
        window = st.selectbox("chart window", list(WINDOWS), index=1, key="window")
        page_size = st.selectbox("rows per page", PAGE_SIZES, index=1, key="page_size")
        st.caption(f"database: {store.describe()}")
        if settings.dashboard_readonly:
            st.caption("read-only: actions are hidden (PQ_DASHBOARD_READONLY)")
        if settings.dashboard_password:
            st.button("Sign out", on_click=access.sign_out)
    return Controls(REFRESH[refresh], WINDOWS[window], int(page_size))


def _body(store: PersistentQInterface, settings: Settings, controls: Controls) -> None:
    try:
        _sections(store, settings, controls)
    except PQError as exc:
        st.error(str(exc))
    except Exception as exc:  # the page shows one line; the log keeps the traceback
        log.exception("dashboard render failed")
        st.error(f"unexpected error: {type(exc).__name__}: {exc}")


def _sections(store: PersistentQInterface, settings: Settings, controls: Controls) -> None:
    overview = load_overview(store, controls.window_seconds)
    partners = store.partners()
    now = datetime.now(UTC)
    render_header(overview, settings)
    render_charts(overview, controls.window_seconds, now)
    render_workers(overview.workers, overview.stats.running, settings.lease_seconds)
    render_queues(overview.stats.queues)
    render_partners(partners)
    st.subheader("jobs")
    filters = render_filters(overview.stats, [partner.name for partner in partners])
    render_table(store, filters, controls.page_size, settings.dashboard_readonly)
    job_id = render_job_picker()
    if job_id is not None:
        render_detail(store, job_id, settings.dashboard_readonly)
    st.caption(f"updated {now:%H:%M:%S} UTC")
