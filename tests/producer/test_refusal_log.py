"""An outage is logged once per interval with a count of the refusals left unsaid, not once per request."""

from __future__ import annotations

import logging

import pytest

from producer.refusal_log import RefusalLog


def test_refusal_log__first_of_each_kind_logged_then_repeats_counted_in_the_next_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    refusals = RefusalLog(logging.getLogger("producer"), interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="producer"):
        for _ in range(100):
            refusals.warning("database_unavailable", "POST /jobs answered 503: database unreachable")
        refusals.warning("disk_full", "POST /jobs answered 507: the database's disk is full")
        now[0] += 12
        refusals.warning("database_unavailable", "POST /jobs answered 503: database unreachable")
        refusals.warning("database_unavailable", "POST /jobs answered 503: database unreachable")

    assert [r.getMessage() for r in caplog.records] == [
        "POST /jobs answered 503: database unreachable",
        "POST /jobs answered 507: the database's disk is full",
        "POST /jobs answered 503: database unreachable (99 more refused like it since this was last logged, 12s ago)",
    ]
