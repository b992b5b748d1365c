"""The agents' word for a job a relay sent them (AgentStatus): stored by heartbeat, fenced by the
lease, shown only while the claim it was said of runs, and cleared by every claim."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pqueue import AgentStatus, InvalidInput, LeaseLost, PersistentQ, Status

MakeQueue = Callable[..., PersistentQ]


def test_heartbeat_records_queued_then_processing_and_an_outcome_hides_it(make_queue: MakeQueue) -> None:
    q = make_queue()
    job_id = q.put_item({"unit": 1})
    job = q.get_item("relay-1")
    assert job is not None and job.agent_status is None

    q.heartbeat(job_id, job.lease_id, agent_status=AgentStatus.QUEUED)
    assert q.get_job(job_id).agent_status == AgentStatus.QUEUED
    assert q.get_job(job_id).status_words == "under_process (queued)"
    q.heartbeat(job_id, job.lease_id, agent_status="processing")  # type: ignore[arg-type]  # a word is taken too
    assert q.get_job(job_id).agent_status == AgentStatus.PROCESSING
    q.heartbeat(job_id, job.lease_id)  # a plain heartbeat keeps the word
    assert [j.agent_status for j in q.get_all_items(status=[Status.UNDER_PROCESS]).items] == [AgentStatus.PROCESSING]

    done = q.update_status(job_id, "processed", lease_id=job.lease_id)
    assert done.agent_status is None and q.get_job(job_id).status_words == "processed"


def test_a_new_claim_clears_the_word_and_an_old_lease_cannot_write_it(make_queue: MakeQueue) -> None:
    q = make_queue(retry_backoff_seconds=0)
    job_id = q.put_item({"unit": 1})
    first = q.get_item("relay-1")
    assert first is not None
    q.heartbeat(job_id, first.lease_id, agent_status=AgentStatus.PROCESSING)
    q.update_status(job_id, "crashed", lease_id=first.lease_id, error="agent a1: simulated failure")

    second = q.get_item("relay-1")
    assert second is not None and second.id == job_id and second.agent_status is None
    with pytest.raises(LeaseLost):
        q.heartbeat(job_id, first.lease_id, agent_status=AgentStatus.PROCESSING)
    assert q.get_job(job_id).agent_status is None


def test_a_word_agents_do_not_have__one_clear_error_and_nothing_changes(make_queue: MakeQueue) -> None:
    q = make_queue()
    job_id = q.put_item({"unit": 1})
    job = q.get_item("relay-1")
    assert job is not None
    before = q.get_job(job_id)
    for wrong in ("done", "QUEUED", 3, ""):
        with pytest.raises(InvalidInput, match=r"agent_status: must be an agent status \(queued, processing\)"):
            q.heartbeat(job_id, job.lease_id, agent_status=wrong)  # type: ignore[arg-type]
    assert q.get_job(job_id) == before
