"""A go resumes the queue a relay waits on, names it, and never creates one."""

from __future__ import annotations

import pytest

from pqueue import AmbiguousQueue, PersistentQ, QueueNotFound


def relay_waits_on(q: PersistentQ, queue: str) -> None:
    """What `pq-relay --wait-for-go --queue QUEUE` does at its first start."""
    q.pause(queue, actor="relay")
    q.register_worker(f"relay-{queue}", kind="relay", queue=queue, host="h", pid=1)


def test_relay_go__without_a_name_resumes_the_one_queue_a_relay_waits_on(q: PersistentQ) -> None:
    relay_waits_on(q, "nc4orders")
    q.pause("held")  # paused by an operator, no relay on it: not what a go means

    info = q.relay_go()

    assert (info.name, info.paused) == ("nc4orders", False)
    assert {queue.name: queue.paused for queue in q.queues()} == {"nc4orders": False, "held": True}
    assert q.relay_go().name == "nc4orders", "again: the relay's queue, already feeding"


def test_relay_go__an_unknown_queue_is_refused_and_nothing_is_created(q: PersistentQ) -> None:
    relay_waits_on(q, "nc4orders")
    with pytest.raises(
        QueueNotFound, match="queue 'remote' does not exist; a go resumes a queue, it never creates one"
    ):
        q.relay_go("remote")
    assert [queue.name for queue in q.queues()] == ["nc4orders"]
    assert q.queue_settings("nc4orders") is not None and q.queue_settings("nc4orders").paused  # type: ignore[union-attr]


def test_relay_go__no_relay_or_several_waiting_need_a_name(q: PersistentQ) -> None:
    with pytest.raises(QueueNotFound, match="no relay is registered"):
        q.relay_go()
    relay_waits_on(q, "a")
    relay_waits_on(q, "b")
    with pytest.raises(AmbiguousQueue, match=r"several queues wait for a go \(a, b\); name the one to go"):
        q.relay_go()
    assert q.relay_go("b").paused is False
    assert q.relay_go().name == "a", "one left waiting: that one"
