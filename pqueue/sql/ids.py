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
and 8191 timelines before an id passes 2**53, the largest integer JSON readers keep exactly.
"""

from __future__ import annotations

# Each timeline's ids start at (timeline - 1) * 2**TIMELINE_SHIFT.
TIMELINE_SHIFT = 40
SEQUENCE_MAX = 2**TIMELINE_SHIFT - 1

# The timeline the server writes WAL on now (an error on a standby, which takes no INSERT anyway).
CURRENT_TIMELINE = "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint"

SERIAL_SEQUENCE = "SELECT pg_get_serial_sequence('pq_jobs', 'id')"


def _literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def timeline_ids(sequence: str) -> list[str]:
    """DDL: pq_jobs.id takes the timeline into its high bits; the sequence stops below the next one's."""
    default = f"(({CURRENT_TIMELINE} - 1) << {TIMELINE_SHIFT}) + nextval({_literal(sequence)}::regclass)"
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
