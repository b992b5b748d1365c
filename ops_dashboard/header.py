"""The row of numbers an operator looks at first."""

from __future__ import annotations

from typing import Literal

import pandas as pd
import streamlit as st

from ops_dashboard.format import duration, moment
from ops_dashboard.liveness import liveness
from ops_dashboard.overview import Overview
from pqueue import QueueInfo, Settings, Worker


def render_header(overview: Overview, settings: Settings) -> None:
    """Waiting, running, last hour's outcomes, jobs needing a person, oldest wait, liveness."""
    # Wider columns where the value or its note runs longer.
    columns = st.columns([1, 1.3, 1.1, 1, 1.4, 1.3, 1.3])
    with columns[0]:
        st.metric("waiting", overview.waiting, help="unprocessed, plus crashed jobs waiting for their retry")
    with columns[1]:
        _running(overview, settings)
    with columns[2]:
        st.metric("processed (1h)", overview.processed_last_hour, help="jobs that reached processed in the last hour")
    with columns[3]:
        st.metric(
            "failed (1h)",
            overview.failed_last_hour,
            help="runs that ended crashed or manual_intervention in the last hour",
        )
    with columns[4]:
        _manual_intervention(overview.stats.waiting_for_person(), overview.stats.failed_by_operator())
    with columns[5]:
        st.metric(
            "oldest waiting",
            duration(overview.stats.oldest_waiting_seconds),
            help="age of the oldest unprocessed or crashed job",
        )
    with columns[6]:
        verdict = liveness(overview.workers, overview.stats.running, settings.lease_seconds)
        st.metric(
            "consumers",
            verdict.value,
            delta=verdict.detail,
            delta_color="green" if verdict.healthy else "red",
            delta_arrow="off",
            help="from the worker registry: alive when seen within twice PQ_LEASE_SECONDS or holding a "
            "running job whose lease is renewed; red when a running job's lease is about to end",
        )


def _running(overview: Overview, settings: Settings) -> None:
    running = overview.stats.running
    if not running:
        st.metric("running", 0, help="under_process; each may run up to its queue's job timeout (`pq queue show`)")
        return
    longest = max(running, key=lambda job: job.elapsed_seconds)
    timeouts = {info.name: info.job_timeout for info in overview.stats.queues}  # each queue's stored timeout
    timeout = timeouts.get(longest.queue, settings.job_timeout)
    share = longest.elapsed_seconds / timeout
    color: Literal["red", "orange", "gray"] = "red" if share >= 1 else "orange" if share >= 0.8 else "gray"
    st.metric(
        "running",
        overview.running,
        delta=f"job {longest.id}: {duration(longest.elapsed_seconds)} of {duration(timeout)}",
        delta_color=color,
        delta_arrow="off",
        help="elapsed time of the longest-running job against its queue's job timeout",
    )
    st.progress(min(1.0, share))


def _manual_intervention(waiting: int, failed: int) -> None:
    """manual_intervention jobs no one has decided on yet; those an operator failed are counted
    under it, apart (they need nothing more)."""
    meaning = "manual_intervention jobs out of attempts, refused or timed out: requeue, or fix and requeue"
    if waiting:
        st.metric(
            "needs a person", waiting, delta="requeue or fail", delta_color="red", delta_arrow="off", help=meaning
        )
    else:
        st.metric("needs a person", 0, help=meaning)
    if failed:
        st.caption(f"{failed} failed by an operator", help="manual_intervention jobs an operator failed (pq fail)")


def render_workers(workers: list[Worker]) -> None:
    """The worker registry, folded away: who is registered, where, and what each is doing."""
    with st.expander(f"workers ({len(workers)})"):
        if not workers:
            st.caption("no consumer or relay has registered")
            return
        rows = [
            {
                "worker": w.id,
                "kind": w.kind,
                "queue": w.queue,
                "host": w.host,
                "pid": w.pid,
                "started": moment(w.started_at),
                "seen": f"{duration(w.seen_seconds_ago)} ago",
                "running job": w.current_job_id,
            }
            for w in workers
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


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
