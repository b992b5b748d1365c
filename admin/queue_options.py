"""The `pq queue set` options, by the queue policy value each changes, and the sentence that tells
an operator which PQ_ setting a queue's stored policy overrules and which command changes it.

The library says what is overruled (pqueue.overruled); how to change it is the pq command's to
say. The consumer's log and `make run`'s briefing say it in these words too (the one import of
admin from another program, allowed in pyproject.toml's "programs do not import each other").
"""

from __future__ import annotations

from pqueue import Overruled

# Each queue policy value (pq_queues' column) and the `pq queue set` option that changes it.
QUEUE_SET_OPTIONS = {
    "seats": "--seats",
    "max_attempts": "--max-attempts",
    "job_timeout": "--timeout",
    "lease_seconds": "--lease",
    "retry_backoff_seconds": "--backoff",
    "timeout_retries": "--timeout-retries",
}


def overruled_line(overruled: Overruled) -> str:
    """'PQ_JOB_TIMEOUT=5 is overruled by queue 'default''s stored job_timeout 3600 (`pq queue set
    default --timeout 5` changes it for every host)'."""
    queue, name, given = overruled.queue, overruled.name, overruled.given
    return (
        f"PQ_{overruled.setting.upper()}={given:g} is overruled by queue {queue!r}'s stored {name} {overruled.stored:g}"
        f" (`pq queue set {queue} {QUEUE_SET_OPTIONS[name]} {given:g}` changes it for every host)"
    )
