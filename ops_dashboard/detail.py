"""One job: its fields, payload, result, error, callback delivery and timeline, and its actions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from ops_dashboard import confirm
from ops_dashboard.actions import LABELS, Operation, Outcome, PendingAction, available
from ops_dashboard.format import duration, moment, plain
from pqueue import (
    CLAIMABLE,
    FINAL,
    Delivery,
    Estimate,
    Event,
    Hold,
    Job,
    JobNotFound,
    PersistentQInterface,
    Status,
    Wait,
)

ORIGIN = "detail"
WAITING_OR_RUNNING = {*CLAIMABLE, Status.UNDER_PROCESS}
REASON = "action_reason"


def render_detail(store: PersistentQInterface, job_id: int, readonly: bool) -> None:
    """The selected job; a job that is gone (purged, wrong id) is a message, not an error."""
    try:
        job = store.get_job(job_id)
        timeline = store.events(job_id)
    except JobNotFound as exc:
        st.warning(str(exc))
        return
    hold = store.holds([job.id]).get(job.id) if job.status in CLAIMABLE else None
    st.subheader(f"Job {job.id} · {job.status_words}" + (" (held)" if hold is not None else ""))
    if hold is not None:
        st.info(plain(held_words(hold)))
    _fields(job, timeline)
    if job.status in WAITING_OR_RUNNING:
        _wait(store.wait(job.id))
    if job.stop_request:
        st.info(f"{job.stop_request} requested ({job.stop_reason or '-'}); waiting for the consumer to stop it")
    payload, result = st.columns(2)
    with payload:
        st.markdown("**payload**")
        st.json(job.payload, expanded=_expansion(job.payload))
    with result:
        st.markdown("**result**")
        if job.result is not None:
            st.json(job.result, expanded=_expansion(job.result))
        else:
            st.caption(_no_result(job))
    if job.operator_verdict and job.operator_reason:
        st.markdown(f"**{job.operator_verdict}**")
        st.code(job.operator_reason, language=None, wrap_lines=True)
    if job.error:
        st.markdown("**last error**")
        st.code(job.error, language=None, wrap_lines=True)
    _delivery(job.delivery, job.callback_url)
    st.markdown("**timeline**")
    st.dataframe(_timeline(timeline), hide_index=True, width="stretch")
    if not readonly:
        _actions(store, job)


def held_words(hold: Hold) -> str:
    """A held job's state, as `pq show` says it: it starts in that consumer's seat right after
    the job it waits behind, and no other consumer takes it meanwhile."""
    return (
        f"held by consumer {hold.worker_id} to start right after job {hold.behind_job} (since {moment(hold.held_at)})"
    )


# A payload or result up to this much JSON text opens whole; a bigger one opens two levels deep.
EXPAND_WHOLE_CHARS = 5000


def _expansion(value: object) -> bool | int:
    """Open a value whole (a reading, not `0: {...}`) unless it is too big to read at a glance."""
    return True if len(json.dumps(value, default=str)) <= EXPAND_WHOLE_CHARS else 2


def _no_result(job: Job) -> str:
    """Why there is no result: still to come, or none will come (a final state other than processed)."""
    if job.status in FINAL:
        return f"none: the job ended {job.status.value} without one"
    if job.status == Status.UNDER_PROCESS:
        return "none yet: the job is running"
    return "none yet: the job has not run to the end"


def last_run(job: Job, timeline: list[Event]) -> tuple[datetime, datetime | None] | None:
    """When the job's last run started and ended (None for the end while it runs), from its
    timeline: an operator's later fail or cancel moves finished_at, not the run."""
    starts = [n for n, e in enumerate(timeline) if e.to_status == Status.UNDER_PROCESS and e.from_status != e.to_status]
    if not starts:
        return None
    began = timeline[starts[-1]]
    ends = [
        e for e in timeline[starts[-1] + 1 :] if e.from_status == Status.UNDER_PROCESS and e.to_status != e.from_status
    ]
    if ends:
        return began.at, ends[0].at
    return (began.at, None) if job.status == Status.UNDER_PROCESS else None


def _wait(wait: Wait | None) -> None:
    """Where the job is in line, when it starts and finishes, and why it waits (as its partner sees it)."""
    if wait is None:
        return
    st.markdown("**in line**")
    rows = {}
    if wait.position is not None:
        extrapolated = "" if wait.position.exact else " (extrapolated)"
        rows["ahead"] = f"{wait.position.own} own, {wait.position.others} others{extrapolated}"
    for name, estimate in (("start", wait.eta_start), ("finish", wait.eta_finish)):
        if estimate is not None:
            rows[name] = _estimate(estimate)
    rows["confidence"] = wait.confidence
    st.dataframe(pd.DataFrame([rows]), hide_index=True, width="stretch")
    for reason in wait.reasons:
        until = f" (until {moment(reason.until)})" if reason.until else ""
        st.caption(f"{reason.code}: {reason.message}{until}")


def _estimate(estimate: Estimate) -> str:
    if estimate.p50 is None:
        latest = f"latest {moment(estimate.latest)}; " if estimate.latest else ""
        return f"{latest}{estimate.why or ''}"
    return f"p50 {moment(estimate.p50)}, p90 {moment(estimate.p90)}, latest {moment(estimate.latest)}"


def _fields(job: Job, timeline: list[Event]) -> None:
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
    run = last_run(job, timeline)
    if run is not None and run[1] is not None:
        rows["last run took"] = duration((run[1] - run[0]).total_seconds())
    elif run is not None:
        rows["running for"] = duration((datetime.now(UTC) - run[0]).total_seconds())
    if job.lease_expires_at and not job.finished_at:
        rows["lease expires"] = moment(job.lease_expires_at)
    # One line of text that wraps, so no field is off the right edge of a narrow window.
    with st.container(key="job_fields"):
        st.markdown(" · ".join(f"**{name}** {plain(value)}" for name, value in rows.items()))


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
