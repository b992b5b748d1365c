"""The row of numbers an operator looks at first."""

from __future__ import annotations

from typing import Literal

import pandas as pd
import streamlit as st

from ops_dashboard.format import duration, moment, plain, rough_duration
from ops_dashboard.liveness import alive_ids, alive_within, liveness
from ops_dashboard.overview import Overview
from pqueue import QueueInfo, RunningJob, Settings, Worker

Color = Literal["red", "orange", "green", "gray"]


def render_header(overview: Overview, settings: Settings) -> None:
    """Waiting, running, last hour's outcomes, jobs needing a person, oldest wait, liveness.

    A metric's own delta is one line cut to its column's width; the notes under these metrics
    are text that wraps, so "job 5: lease ends in 3s" is read whole in a narrow column."""
    columns = st.columns(7)
    with columns[0]:
        st.metric("waiting", overview.waiting, help="unprocessed, plus crashed jobs waiting for their retry")
        held = sum(overview.stats.held.values())
        if held:  # claimed ahead (PQ_CLAIM_AHEAD): each starts in its consumer's seat as the running job ends
            note(f"{held} held to start next in a seat", "gray", key="note_held")
    with columns[1]:
        _running(overview, settings)
    with columns[2]:
        st.metric("processed (1h)", overview.processed_last_hour, help="jobs that reached processed in the last hour")
    with columns[3]:
        st.metric(
            "failed runs (1h)",
            overview.failed_last_hour,
            help="runs (not jobs) that ended crashed or manual_intervention in the last hour, and jobs an operator "
            "failed: a job retried three times counts three times",
        )
    with columns[4]:
        _manual_intervention(overview.stats.waiting_for_person(), overview.stats.failed_by_operator())
    with columns[5]:
        oldest = overview.stats.oldest_waiting_seconds
        # The metric's large digits hold one unit in a narrow column; the note has the rest.
        st.metric("oldest waiting", rough_duration(oldest), help="age of the oldest unprocessed or crashed job")
        if duration(oldest) != rough_duration(oldest):
            note(duration(oldest), "gray", key="note_oldest")
    with columns[6]:
        verdict = liveness(overview.workers, overview.stats.running, settings.lease_seconds)
        st.metric(
            "consumers",
            verdict.value,
            help="from the worker registry: alive when seen within twice PQ_LEASE_SECONDS or holding a "
            "running job whose lease is renewed; red when a running job's lease is about to end",
        )
        note(verdict.detail, "green" if verdict.healthy else "red", key="note_consumers")
        gone = len(overview.workers) - len(alive_ids(overview.workers, overview.stats.running, settings.lease_seconds))
        if gone:
            note(f"{gone} of {len(overview.workers)} registered are gone (workers, below)", "gray", key="note_gone")


def note(text: str, color: Color, *, key: str | None = None) -> None:
    """A metric's note: coloured text under it that wraps instead of being cut."""
    with st.container(key=key):
        st.markdown(f":{color}[{plain(text)}]")


def _running(overview: Overview, settings: Settings) -> None:
    running = overview.stats.running
    if not running:
        st.metric("running", 0, help="under_process; each may run up to its queue's job timeout (`pq queue show`)")
        return
    longest = max(running, key=lambda job: job.elapsed_seconds)
    timeouts = {info.name: info.job_timeout for info in overview.stats.queues}  # each queue's stored timeout
    timeout = timeouts.get(longest.queue, settings.job_timeout)
    share = longest.elapsed_seconds / timeout
    color: Color = "red" if share >= 1 else "orange" if share >= 0.8 else "gray"
    st.metric(
        "running",
        overview.running,
        help="elapsed time of the longest-running job against its queue's job timeout",
    )
    note(f"job {longest.id}: {duration(longest.elapsed_seconds)} of {duration(timeout)}", color, key="note_running")
    st.progress(min(1.0, share))


def _manual_intervention(waiting: int, failed: int) -> None:
    """manual_intervention jobs no one has decided on yet; those an operator failed are counted
    under it, apart (they need nothing more)."""
    meaning = "manual_intervention jobs out of attempts, refused or timed out: requeue, or fix and requeue"
    st.metric("needs a person", waiting, help=meaning)
    if waiting:
        note("requeue or fail", "red", key="note_person")
    if failed:
        note(f"{failed} failed by an operator", "gray", key="note_operator_failed")


def render_workers(workers: list[Worker], running: list[RunningJob], lease_seconds: float) -> None:
    """The worker registry, folded away: who is registered, where, what each is doing, and which
    are gone (not seen for longer than the header's liveness allows), alive ones first."""
    alive = set(alive_ids(workers, running, lease_seconds))
    gone = len(workers) - len(alive)
    title = f"workers ({len(alive)} alive, {gone} gone)" if gone else f"workers ({len(workers)} alive)"
    with st.expander(title if workers else "workers (none registered)"):
        if not workers:
            st.caption("no consumer or relay has registered")
            return
        ordered = sorted(workers, key=lambda w: (w.id not in alive, w.seen_seconds_ago))
        rows = [
            {
                "worker": w.id,
                "state": "alive" if w.id in alive else f"gone: not seen for {duration(w.seen_seconds_ago)}",
                "kind": w.kind,
                "queue": w.queue,
                "host": w.host,
                "pid": w.pid,
                "started": moment(w.started_at),
                "seen": f"{duration(w.seen_seconds_ago)} ago",
                # Text: a column of ids and blanks would be floats, shown as 5.000000 and None once styled.
                "running job": str(w.current_job_id) if w.current_job_id is not None else "",
            }
            for w in ordered
        ]
        frame = pd.DataFrame(rows)
        styled = frame.style.apply(
            lambda row: ["color: #9e9e9e" if row["state"] != "alive" else "" for _ in row], axis=1
        )
        st.dataframe(styled, hide_index=True, width="stretch", key="workers_table")
        if gone:
            st.caption(
                f"{gone} gone: registered, but not seen within {duration(alive_within(lease_seconds))}; "
                "pqueue forgets such rows after a day"
            )


def render_queues(queues: list[QueueInfo]) -> None:
    """Each queue's seats, pause flag and policy as stored in the database (else the PQ_ default)."""
    with st.expander(f"queues ({len(queues)})"):
        if not queues:
            st.caption("no queue has jobs or settings yet")
            return
        rows = [
            {
                "queue": q.name,
                "seats": q.seats,
                "state": "paused" if q.paused else "claiming",
                "max attempts": q.max_attempts,
                "job timeout": duration(q.job_timeout),
                "lease": duration(q.lease_seconds),
                "retry backoff": duration(q.retry_backoff_seconds),
                "timeout retries": q.timeout_retries,
            }
            for q in queues
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption(
            "change with `pq queue set NAME --seats --max-attempts --timeout --lease --backoff --timeout-retries`"
        )
