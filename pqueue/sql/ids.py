"""Job ids that name one job for ever: never given to another job after a failover or a restore.

PostgreSQL: an id is its server's timeline less one, times 2**40, plus the next value of the jobs'
sequence. An asynchronous standby promoted after the primary died holds the sequence as it was
when the standby last heard from the primary, so the sequence rewinds and would hand the ids of the
lost jobs to new ones (`GET /jobs/67` then answers another partner's job). Every promotion and
every point-in-time restore starts a new, higher timeline, so the ids given after it lie above all
ids given before, whatever the sequence says. On a server that never failed over (timeline 1) ids
stay the small numbers operators type: 1, 2, 3, …

The timeline is the one the server writes WAL on now, read from the name of the WAL file
pg_current_wal_lsn() falls in (its first 8 hex digits); a primary is the only server that takes
an INSERT, and the only one where pg_current_wal_lsn() answers. The sequence stops at 2**40 - 1
(MAXVALUE), so it can never run into the next timeline's ids: that is a trillion jobs per timeline,
and 8192 timelines before an id reaches 2**53, the largest integer JSON readers keep exactly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, literal_column
from sqlalchemy.sql.elements import ColumnElement

# Each timeline's ids start at (timeline - 1) * 2**TIMELINE_SHIFT.
TIMELINE_SHIFT = 40
SEQUENCE_MAX = 2**TIMELINE_SHIFT - 1

# The timeline the server writes WAL on now (an error on a standby, which takes no INSERT anyway).
CURRENT_TIMELINE = "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint"

# The first id (and lease id) of the current timeline, less one.
TIMELINE_BASE = f"(({CURRENT_TIMELINE} - 1) << {TIMELINE_SHIFT})"

SERIAL_SEQUENCE = "SELECT pg_get_serial_sequence('pq_jobs', 'id')"


def _literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def timeline_ids(sequence: str) -> list[str]:
    """DDL: pq_jobs.id takes the timeline into its high bits; the sequence stops below the next one's."""
    default = f"{TIMELINE_BASE} + nextval({_literal(sequence)}::regclass)"
    return [
        f"ALTER SEQUENCE {sequence} MAXVALUE {SEQUENCE_MAX}",
        f"ALTER TABLE pq_jobs ALTER COLUMN id SET DEFAULT {default}",
    ]


def sequence_ids(sequence: str) -> list[str]:
    """DDL: back to the plain sequence (the downgrade)."""
    return [
        f"ALTER TABLE pq_jobs ALTER COLUMN id SET DEFAULT nextval({_literal(sequence)}::regclass)",
        f"ALTER SEQUENCE {sequence} NO MAXVALUE",
    ]


def next_lease_id(backend: str, current: ColumnElement[Any]) -> ColumnElement[Any]:
    """A claim's lease id, the fencing token: one more than the job's last. On PostgreSQL also
    above every lease id of an earlier timeline: a claim lost at a failover had taken the job's
    next number, and a claim on the promoted server taking it again would let the lost claim's
    worker, still running, renew and record as if it held the new one."""
    following = current + 1
    if backend != "postgresql":
        return following
    return func.greatest(following, literal_column(TIMELINE_BASE) + 1)
