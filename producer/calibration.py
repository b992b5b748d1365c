"""What the submitter's view predicted for each new job, recorded a few seconds after it was
submitted, so that `/metrics` and `pq stats` can say how often jobs started before their p90.

A thread of the intake, outside the submission path: POST /jobs never waits for a prediction.
Each round records at most a handful of the newest jobs that have none (several intake replicas
may record the same job: the first record stays); calibration is a share, so a sample of the
jobs is enough.
"""

from __future__ import annotations

import logging
import threading

from pqueue import PersistentQInterface, PQError

log = logging.getLogger("producer.calibration")

ROUND_SECONDS = 5.0
JOBS_PER_ROUND = 20


class PredictionRecorder:
    """Records predictions for new jobs every ROUND_SECONDS until closed."""

    def __init__(self, store: PersistentQInterface, every: float = ROUND_SECONDS) -> None:
        self.store = store
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pq-predictions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.store.record_predictions(limit=JOBS_PER_ROUND)
            except PQError as exc:  # the database away or read-only: the next round tries again
                log.warning("recording predictions failed: %s", exc)
