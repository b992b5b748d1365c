"""One job: its fields, payload, result, error, callback delivery and timeline, and its actions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ops_dashboard import confirm
from ops_dashboard.actions import LABELS, Operation, Outcome, PendingAction, available
from ops_dashboard.format import duration, moment
from pqueue import Delivery, Event, Job, JobNotFound, PersistentQInterface

ORIGIN = "detail"
REASON = "action_reason"


def render_detail(store: PersistentQInterface, job_id: int, readonly: bool) -> None:
    """The selected job; a job that is gone (purged, wrong id) is a message, not an error."""
    try:
        job = store.get_job(job_id)
        timeline = store.events(job_id)
    except JobNotFound as exc:
        st.warning(str(exc))
        return
    st.subheader(f"Job {job.id} · {job.status.value}")
    _fields(job)
    if job.stop_request:
        st.info(f"{job.stop_request} requested ({job.stop_reason or '-'}); waiting for the consumer to stop it")
    payload, result = st.columns(2)
    with payload:
        st.markdown("**payload**")
        st.json(job.payload, expanded=2)
    with result:
        st.markdown("**result**")
        if job.result is None:
            st.caption("none yet")
        else:
            st.json(job.result, expanded=2)
    if job.operator_reason:
        st.markdown("**failed by an operator**")
        st.code(job.operator_reason, language=None, wrap_lines=True)
    if job.error:
        st.markdown("**last error**")
        st.code(job.error, language=None, wrap_lines=True)
    _delivery(job.delivery, job.callback_url)
    st.markdown("**timeline**")
    st.dataframe(_timeline(timeline), hide_index=True, width="stretch")
    if not readonly:
        _actions(store, job)


def _fields(job: Job) -> None:
    rows = {
        "queue": job.queue,
        "partner": job.partner,
        "priority": str(job.priority),
        "attempts": f"{job.attempts} of {job.max_attempts}",
        "worker": job.worker_id or "—",
        "lease": str(job.lease_id),
        "created": moment(job.created_at),
        "started": moment(job.started_at) or "—",
        "finished": moment(job.finished_at) or "—",
    }
    if job.started_at and job.finished_at:
        rows["ran for"] = duration((job.finished_at - job.started_at).total_seconds())
    if job.lease_expires_at and not job.finished_at:
        rows["lease expires"] = moment(job.lease_expires_at)
    st.dataframe(pd.DataFrame([rows]), hide_index=True, width="stretch")


def _delivery(delivery: Delivery | None, callback_url: str | None) -> None:
    st.markdown("**callback**")
    if not callback_url:
        st.caption("no callback_url")
        return
    if delivery is None:
        st.caption(f"{callback_url}: sent once the job reaches a final state")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "delivery": delivery.status.value,
                    "url": delivery.url,
                    "attempts": delivery.attempts,
                    "last status code": delivery.last_status_code,
                    "last error": delivery.last_error or "",
                    "next attempt": moment(delivery.next_attempt_at),
                    "delivered": moment(delivery.delivered_at),
                    "idempotency key": delivery.idempotency_key,
                }
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _timeline(timeline: list[Event]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "at": moment(e.at),
                "from": e.from_status.value if e.from_status else "",
                "to": e.to_status.value,
                "by": e.actor,
                "message": e.message or "",
            }
            for e in timeline
        ],
        columns=["at", "from", "to", "by", "message"],
    )


def _actions(store: PersistentQInterface, job: Job) -> None:
    """Buttons record the job id and the status on screen; nothing happens before Confirm."""
    pending = confirm.pending(ORIGIN)
    if pending is not None and pending.targets[0][0] != job.id:
        confirm.drop()  # the operator moved on to another job
    operations = available(job)
    st.markdown("**actions**")
    if operations:
        if "fail" in operations or "cancel" in operations:
            st.text_input("reason (for mark failed / cancel)", key=REASON)
        with st.container(horizontal=True):
            for operation in operations:
                st.button(LABELS[operation], key=f"do_{operation}", on_click=_request, args=(operation, job))
    else:
        st.caption(f"no action applies to a {job.status.value} job")
    confirm.render_confirmation(store, ORIGIN)
    confirm.render_outcome(ORIGIN)


def _request(operation: Operation, job: Job) -> None:
    reason = str(st.session_state.get(REASON) or "").strip() or None
    if operation == "fail" and reason is None:
        confirm.refuse(ORIGIN, Outcome(operation, refused=["mark failed needs a reason: say why the job is failed"]))
        return
    kept = reason if operation in ("fail", "cancel") else None
    confirm.request(PendingAction(operation, ((job.id, job.status),), kept))
