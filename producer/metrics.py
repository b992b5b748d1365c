"""Prometheus metrics: the queue as the database sees it at scrape time, and the intake's own counters.

An admin key (and an open intake) sees every job. A partner's key sees its own jobs, in the
queues it has jobs in, and the other partners' jobs there only as one total per queue and status
(`pq_other_partners_jobs`): never their ids, payloads or names.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from pqueue import CLAIMABLE, DeliveryStatus, Insights, Status


class QueueCollector(Collector):
    """Reads store.stats() on every scrape, so the numbers are the database's, not this process's;
    with a partner, that partner's view (see the module's docstring)."""

    def __init__(self, store: Insights, partner: str | None = None) -> None:
        self.store = store
        self.partner = partner

    def describe(self) -> Iterator[Metric]:
        # Without describe(), registering would run a scrape (and a query) at once.
        yield from self._families()
        yield from self._policy_families()
        yield from self._replication_families()
        yield from self._calibration_families()
        if self.partner is not None:
            yield self._others_family()

    def collect(self) -> Iterator[Metric]:
        stats = self.store.stats(partner=self.partner)
        jobs, waiting, held, running, manual, seats, paused, oldest, callbacks = self._families()
        if self.partner is None:
            queue_names = sorted(set(stats.counts) | {info.name for info in stats.queues})
        else:
            queue_names = sorted(stats.counts)
        queues = [info for info in stats.queues if info.name in set(queue_names)]
        for queue in queue_names:
            by_status = stats.counts.get(queue, {})
            for status in Status:
                jobs.add_metric([queue, status.value], by_status.get(status.value, 0))
            waiting.add_metric([queue], sum(by_status.get(s.value, 0) for s in CLAIMABLE))
            held.add_metric([queue], stats.held.get(queue, 0))
            running.add_metric([queue], by_status.get(Status.UNDER_PROCESS.value, 0))
            failed = stats.operator_failed.get(queue, 0)
            manual.add_metric(
                [queue, "waiting_for_a_person"], by_status.get(Status.MANUAL_INTERVENTION.value, 0) - failed
            )
            manual.add_metric([queue, "failed_by_an_operator"], failed)
        for info in queues:
            seats.add_metric([info.name], info.seats)
            paused.add_metric([info.name], 1 if info.paused else 0)
        oldest.add_metric([], stats.oldest_waiting_seconds or 0.0)
        for delivery_status in DeliveryStatus:
            callbacks.add_metric([delivery_status.value], stats.deliveries.get(delivery_status.value, 0))
        yield from (jobs, waiting, held, running, manual, seats, paused, oldest, callbacks)
        policies = self._policy_families()
        for info in queues:
            values = (info.max_attempts, info.job_timeout, info.lease_seconds, info.retry_backoff_seconds)
            for family, value in zip(policies, values, strict=True):
                family.add_metric([info.name], value)
        yield from policies
        replication = stats.replication
        mode, standbys, synchronous = self._replication_families()
        mode.add_metric([replication.mode, replication.synchronous_commit], 1)
        standbys.add_metric([], replication.standbys)
        yield from (mode, standbys)
        if replication.synchronous_standbys is not None:
            synchronous.add_metric([], replication.synchronous_standbys)
            yield synchronous
        yield from self._calibration(set(queue_names))
        if self.partner is not None:
            yield self._others(queue_names, stats.counts)

    def _calibration(self, queue_names: set[str]) -> Iterator[GaugeMetricFamily]:
        """How the start predictions recorded at submission fared, per queue (shares, no names)."""
        before_p90, before_latest, started = self._calibration_families()
        for calibration in self.store.calibration():
            if calibration.queue in queue_names and calibration.started:
                before_p90.add_metric([calibration.queue], calibration.before_p90)
                before_latest.add_metric([calibration.queue], calibration.before_latest)
                started.add_metric([calibration.queue], calibration.started)
        yield from (before_p90, before_latest, started)

    @staticmethod
    def _calibration_families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "pq_wait_started_before_p90_ratio",
                "Share of jobs that started by the p90 predicted when they were submitted (goal about 0.9)",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                "pq_wait_started_before_latest_ratio",
                "Share of jobs that started by the latest start predicted when they were submitted (goal 1)",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                "pq_wait_predictions_started",
                "Jobs with a recorded start prediction that have started (of the latest 1,000 predictions)",
                labels=["queue"],
            ),
        )

    def _others(self, queue_names: list[str], own: dict[str, dict[str, int]]) -> GaugeMetricFamily:
        """Every other partner's jobs together, per queue the partner uses and status."""
        everyone = self.store.stats().counts
        others = self._others_family()
        for queue in queue_names:
            for status in Status:
                total = everyone.get(queue, {}).get(status.value, 0) - own.get(queue, {}).get(status.value, 0)
                others.add_metric([queue, status.value], max(total, 0))
        return others

    @staticmethod
    def _others_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "pq_other_partners_jobs",
            "Jobs of all other partners together, by queue and status (a partner key's view only)",
            labels=["queue", "status"],
        )

    @staticmethod
    def _replication_families() -> tuple[GaugeMetricFamily, ...]:
        """The replication guarantee in force: what an acknowledged job survives."""
        return (
            GaugeMetricFamily(
                "pq_replication",
                "1, labelled with the replication mode in force (none, asynchronous: a failover loses what the "
                "standby had not received, synchronous) and the commit level of pqueue's sessions",
                labels=["mode", "synchronous_commit"],
            ),
            GaugeMetricFamily("pq_replication_standbys", "Standbys streaming from the database"),
            GaugeMetricFamily(
                "pq_replication_synchronous_standbys", "Standbys a commit waits for (absent when not visible)"
            ),
        )

    @staticmethod
    def _policy_families() -> tuple[GaugeMetricFamily, ...]:
        """Each queue's policy as stored in the database (else this process's PQ_ default)."""
        return (
            GaugeMetricFamily("pq_queue_max_attempts", "Attempts before manual_intervention", labels=["queue"]),
            GaugeMetricFamily(
                "pq_queue_job_timeout_seconds", "Seconds before a running algorithm is killed", labels=["queue"]
            ),
            GaugeMetricFamily("pq_queue_lease_seconds", "Lease length of a claim", labels=["queue"]),
            GaugeMetricFamily(
                "pq_queue_retry_backoff_seconds",
                "Base of the backoff before a crashed job is retried",
                labels=["queue"],
            ),
        )

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("pq_jobs", "Jobs by queue and status", labels=["queue", "status"]),
            GaugeMetricFamily("pq_waiting_jobs", "Jobs waiting to run (unprocessed or crashed)", labels=["queue"]),
            GaugeMetricFamily(
                "pq_held_jobs",
                "Waiting jobs a consumer holds to start next in its seat, right after its running job "
                "(PQ_CLAIM_AHEAD); counted in pq_waiting_jobs too",
                labels=["queue"],
            ),
            GaugeMetricFamily("pq_running_jobs", "Jobs under_process", labels=["queue"]),
            GaugeMetricFamily(
                "pq_manual_intervention_jobs",
                "Jobs in manual_intervention: waiting_for_a_person (out of attempts, refused, timed out) or "
                "failed_by_an_operator (pq fail: decided, nothing to do)",
                labels=["queue", "kind"],
            ),
            GaugeMetricFamily("pq_queue_seats", "Jobs of the queue allowed under_process at once", labels=["queue"]),
            GaugeMetricFamily("pq_queue_paused", "1 when consumers do not claim from the queue", labels=["queue"]),
            GaugeMetricFamily("pq_oldest_waiting_seconds", "Age of the oldest waiting job (0 when none waits)"),
            GaugeMetricFamily("pq_callbacks", "Callback deliveries by status", labels=["status"]),
        )


class IntakeMetrics:
    """The registry one app exposes: its counters plus the queue collector."""

    def __init__(self, store: Insights) -> None:
        # No *_created series: they double the output and nobody graphs them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "pq_intake_accepted",
            "Jobs accepted (outcome: created, or duplicate: an earlier job with the same idempotency key)",
            ["outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "pq_intake_rejected", "Requests answered with an error, by reason", ["reason"], registry=self.registry
        )
        self.store = store
        self.registry.register(QueueCollector(store))

    def exposition(self, partner: str | None = None) -> bytes:
        """The Prometheus text format of everything registered; with a partner, its view of the queue."""
        if partner is None:
            return generate_latest(self.registry)
        view = CollectorRegistry()
        for collector in (self.accepted, self.rejected, QueueCollector(self.store, partner)):
            view.register(collector)
        return generate_latest(view)
