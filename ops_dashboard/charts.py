"""Waiting depth, throughput and run durations over the chosen window."""

from __future__ import annotations

from datetime import datetime

import altair as alt
import pandas as pd
import streamlit as st

from ops_dashboard.overview import Overview, bucket_for
from pqueue import Status

# Streamlit fits axes and legend into this height too.
CHART_HEIGHT = 230
# Room past the plot's right edge for the last tick's label (stretched to its column, a chart
# would otherwise cut it by a few pixels), and on the left for the rotated axis title.
PADDING = {"left": 8, "right": 16, "top": 5, "bottom": 5}
# Two columns and no label limit: a narrow chart (three side by side at 1366 px) keeps
# "manual_intervention" whole instead of cutting it.
LEGEND = alt.Legend(orient="top", title=None, labelFontSize=11, symbolSize=60, columns=2, labelLimit=0)
OUTCOME_COLORS = {
    Status.PROCESSED.value: "#2e7d32",
    Status.CRASHED.value: "#ef6c00",
    Status.MANUAL_INTERVENTION.value: "#c62828",
}


def render_charts(overview: Overview, window_seconds: int, now: datetime) -> None:
    """Three charts side by side; each says so when it has nothing to show yet."""
    depth, throughput, durations = st.columns(3)
    with depth:
        st.markdown("**waiting depth** (UTC)")
        _depth_chart(overview.waiting_depth(window_seconds, now))
    with throughput:
        st.markdown("**throughput** (jobs per minute, UTC)")
        _throughput_chart(overview, window_seconds)
    with durations:
        st.markdown("**run durations** (processed jobs)")
        _durations_chart(overview.durations)


def _time_axis(label_format: str) -> alt.X:
    # UTC, like every time in the tables, whatever the browser's time zone.
    # labelFlush: the last tick's label ends at the plot's right edge instead of past the chart's.
    axis = alt.Axis(format=label_format, labelFlush=True)
    return alt.X("time:T", title=None, scale=alt.Scale(type="utc"), axis=axis)


def _depth_chart(points: list[tuple[datetime, int]]) -> None:
    frame = pd.DataFrame(points, columns=["time", "waiting"])
    top = max(1, int(frame["waiting"].max()))
    # Whole jobs on the axis, from 0: an empty queue is a flat line at 0, not ticks of 0.000000.
    counts = alt.Y(
        "waiting:Q",
        title="jobs waiting",
        scale=alt.Scale(domain=[0, top], nice=True),
        axis=alt.Axis(format="d", tickMinStep=1),
    )
    chart = alt.Chart(frame).mark_line(interpolate="step-after").encode(x=_time_axis("%H:%M"), y=counts)
    st.altair_chart(chart.properties(height=CHART_HEIGHT, padding=PADDING), width="stretch")


def _throughput_chart(overview: Overview, window_seconds: int) -> None:
    if not overview.throughput:
        st.caption("no job finished or crashed in this window")
        return
    per_minute = 60 / bucket_for(window_seconds)
    frame = pd.DataFrame(
        [(p.bucket_start, p.status.value, p.count * per_minute) for p in overview.throughput],
        columns=["time", "status", "per_minute"],
    )
    scale = alt.Scale(domain=list(OUTCOME_COLORS), range=list(OUTCOME_COLORS.values()))
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=_time_axis("%H:%M"),
            y=alt.Y("per_minute:Q", title="jobs / minute", stack=True),
            color=alt.Color("status:N", scale=scale, legend=LEGEND),
            tooltip=[
                alt.Tooltip("utcyearmonthdatehoursminutes(time):T", title="UTC"),
                "status:N",
                alt.Tooltip("per_minute:Q", format=".2f"),
            ],
        )
    )
    st.altair_chart(chart.properties(height=CHART_HEIGHT, padding=PADDING), width="stretch")


def _durations_chart(durations: list[float]) -> None:
    if not durations:
        st.caption("no job processed in this window")
        return
    frame = pd.DataFrame({"seconds": durations})
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("seconds:Q", bin=alt.Bin(maxbins=30), title="seconds", axis=alt.Axis(labelFlush=True)),
            y=alt.Y("count():Q", title="jobs"),
        )
    )
    st.altair_chart(chart.properties(height=CHART_HEIGHT, padding=PADDING), width="stretch")
