"""The partners sharing the seats: each one's weight and limits, its jobs waiting and running, the
seat time it used in the last hour and day, and its share of the last day's seat time."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ops_dashboard.format import duration
from pqueue import Partner

SHARE = st.column_config.ProgressColumn(
    "share (1 day)", format="percent", min_value=0.0, max_value=1.0, help="its part of all partners' seat time"
)


def render_partners(partners: list[Partner]) -> None:
    """Open on its own once a second partner shares the seats; folded while `default` is alone
    (the migration makes it, so there is always one)."""
    with st.expander(f"partners ({len(partners)})", expanded=len(partners) > 1):
        st.dataframe(
            partners_frame(partners),
            hide_index=True,
            width="stretch",
            column_config={"share (1 day)": SHARE},
        )
        st.caption(
            "the seat goes to the waiting partner with the least seat time for its weight; "
            "change with `pq partner set NAME --weight --max-running --rate`"
        )


def partners_frame(partners: list[Partner]) -> pd.DataFrame:
    """One row per partner, in name order."""
    return pd.DataFrame(
        [
            {
                "partner": p.name,
                "weight": p.weight,
                "waiting": p.waiting,
                "running": p.running,
                "seat time (1 hour)": duration(p.seat_seconds_hour),
                "seat time (1 day)": duration(p.seat_seconds_day),
                "share (1 day)": p.share_day,
                "max running": str(p.max_running) if p.max_running else "—",
                "rate": f"{p.rate_per_minute}/min" if p.rate_per_minute else "—",
                "state": "disabled" if p.disabled_at else "enabled",
            }
            for p in partners
        ]
    )
