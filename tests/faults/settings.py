"""What every program of the fault suite runs with: short leases keep the tests quick."""

from __future__ import annotations

from tests.programs import CLAIM_AHEAD_ENV

# Renewals every ~1.3 s, margin 1 s, rescue after ~5 s.
LEASE_SECONDS = 4
BASE_ENV = {
    "PQ_LEASE_SECONDS": str(LEASE_SECONDS),
    "PQ_ALGORITHM": "tests.faults.ledger:run",
    "PQ_RETRY_BACKOFF_SECONDS": "0",
    "PQ_LOG_LEVEL": "INFO",
    **CLAIM_AHEAD_ENV,
}
