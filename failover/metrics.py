"""Prometheus metrics of one daemon (``/metrics``), in a registry of its own.

Two kinds of series:

* **state** — site health (a state set), check results, readiness, replication lag, backup age,
  the active site, lease, epoch, the current run and the last run's RTO and data loss — is
  computed at scrape time from the last controller snapshot and the store, so a series for a
  check that no longer exists disappears instead of going stale;
* **events** — probe latencies (a histogram), decisions by verdict, task restarts and
  notification deliveries — are counted as they happen.

Names follow Prometheus conventions: ``failover_`` prefix, base units (``_seconds``), ``_total``
for counters. A per-daemon :class:`~prometheus_client.CollectorRegistry` (not the global one)
keeps two daemons in one process (tests) apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, StateSetMetricFamily
from prometheus_client.registry import Collector

from failover import controller
from failover.core import errors
from failover.health.model import Health

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HEALTH_STATES = [h.value for h in Health]


class Metrics:
    """The daemon's metrics; ``observe_*`` are called by the daemon, ``render`` by ``/metrics``."""

    def __init__(self, *, store: Any, clock: Callable[[], datetime]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.store = store
        self.clock = clock
        self.snapshot: controller.Snapshot | None = None
        self.probe_seconds = Histogram(
            "failover_probe_duration_seconds", "Duration of one probe, by site and check kind",
            ["site", "kind"], buckets=PROBE_BUCKETS, registry=self.registry)
        self.decisions = Counter("failover_decisions", "Controller decisions (one per cycle), by verdict",
                                 ["verdict"], registry=self.registry)
        self.notifications = Counter("failover_notifications", "Notification delivery attempts, by channel "
                                     "and outcome", ["channel", "outcome"], registry=self.registry)
        self.alerts_received = Counter("failover_alerts_received", "Alertmanager alerts received, by status",
                                       ["status"], registry=self.registry)
        for verdict in controller.Verdict:
            self.decisions.labels(verdict.value)
        self.registry.register(_StateCollector(self))
        self.outbox_pending: Callable[[], int] = lambda: 0
        self.alerts_firing: Callable[[], dict[str, int]] = dict
        self.task_restarts: Callable[[], dict[str, int]] = dict  #: the daemon's supervisor: restarts by task

    def observe_cycle(self, snap: controller.Snapshot, decision: controller.Decision) -> None:
        self.snapshot = snap
        self.decisions.labels(decision.verdict.value).inc()

    def observe_probe(self, site: str, kind: str, seconds: float) -> None:
        self.probe_seconds.labels(site, kind).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(())  # generated per scrape

    def collect(self) -> Iterator[Metric]:
        yield from self._sites()
        up = GaugeMetricFamily("failover_store_up", "1 when the store (SQLite or etcd) answered this scrape")
        try:
            families = [*self._control(), *self._runs()]
        except errors.FailoverError:  # etcd unreachable: the site series still tell what is known
            families = []
        up.add_metric([], 1.0 if families else 0.0)
        yield from (*families, up)

    def _sites(self) -> Iterator[Metric]:
        snap = self.m.snapshot
        health = StateSetMetricFamily("failover_site_health", "Health of each site (one state is 1)", labels=["site"])
        check = GaugeMetricFamily("failover_check_passing", "1 when a check passes, 0 when it fails "
                                  "(absent until it has a verdict)", labels=["site", "check", "kind"])
        ready = GaugeMetricFamily("failover_site_ready", "1 when a standby could take over now", labels=["site"])
        role = GaugeMetricFamily("failover_site_role", "The site's role (1 for its role)", labels=["site", "role"])
        lag = GaugeMetricFamily("failover_replication_lag_seconds", "Age of the newest backup on the active "
                                "site not yet replicated to this standby (0: up to date)", labels=["site"])
        age = GaugeMetricFamily("failover_newest_backup_age_seconds", "Age of the newest complete backup in "
                                "the site's bucket", labels=["site"])
        alerts = GaugeMetricFamily("failover_site_alerts_firing", "Firing Alertmanager alerts per site",
                                   labels=["site"])
        firing = self.m.alerts_firing()
        if snap is not None:
            for name, v in snap.sites.items():
                health.add_metric([name], {s: s == v.health.value for s in HEALTH_STATES})
                ready.add_metric([name], 1.0 if v.ready else 0.0)
                role.add_metric([name, v.role], 1.0)
                alerts.add_metric([name], float(firing.get(name, 0)))
                for c in v.checks:
                    if c.passing is not None:
                        check.add_metric([name, c.name, c.kind.value], 1.0 if c.passing else 0.0)
                if v.replication_lag_s is not None:
                    lag.add_metric([name], v.replication_lag_s)
                if v.newest_backup is not None:
                    age.add_metric([name], max(0.0, (snap.now - v.newest_backup.completed_at).total_seconds()))
        yield from (health, check, ready, role, lag, age, alerts)

    def _control(self) -> Iterator[Metric]:
        store, snap = self.m.store, self.m.snapshot
        active = GaugeMetricFamily("failover_active_site", "1 for the site that serves the workplace",
                                   labels=["site"])
        stored = store.get_state("active")  # the store first: mark-active may be newer than the last snapshot
        name_active = str(stored) if stored else (snap.active if snap is not None else None)
        if name_active:
            active.add_metric([name_active], 1.0)
        holder = GaugeMetricFamily("failover_lease_holder", "1 for the daemon holding the lease", labels=["holder"])
        name = store.lease_holder()
        if name:
            holder.add_metric([str(name)], 1.0)
        epoch = GaugeMetricFamily("failover_fencing_epoch", "The current fencing epoch")
        epoch.add_metric([], float(store.current_epoch()))
        paused = GaugeMetricFamily("failover_paused", "1 while automatic failover is paused")
        paused.add_metric([], 1.0 if store.get_state("paused") else 0.0)
        pending = GaugeMetricFamily("failover_notifications_pending", "Notices waiting in the outbox")
        pending.add_metric([], float(self.m.outbox_pending()))
        restarts = CounterMetricFamily("failover_task_restarts", "Restarts of the daemon's supervised tasks",
                                       labels=["task"])
        for task, count in self.m.task_restarts().items():
            restarts.add_metric([task], float(count))
        yield from (active, holder, epoch, paused, pending, restarts)

    def _runs(self) -> Iterator[Metric]:
        from failover import daemon as daemon_mod  # the run document lives with the daemon

        store = self.m.store
        current = GaugeMetricFamily("failover_run_in_progress", "1 while a run is not terminal, with its phase and "
                                    "current step", labels=["run", "playbook", "phase", "step"])
        run = daemon_mod.current_run(store)
        if run is not None:
            step = next((s.key for s in reversed(store.step_records(run.id)) if str(s.status) == "running"), "")
            current.add_metric([str(run.id), str(run.playbook), str(run.phase), str(step)], 1.0)
        rto = GaugeMetricFamily("failover_last_run_rto_seconds", "RTO of the newest finished failover: outage "
                                "start (or detection) to verified service", labels=["run", "since"])
        loss = GaugeMetricFamily("failover_last_run_data_loss_seconds", "Data-loss window of the newest finished "
                                 "failover (outage start minus the restored backup's completion)", labels=["run"])
        finished = GaugeMetricFamily("failover_last_run_finished_timestamp_seconds", "When the newest finished "
                                     "run ended", labels=["run", "phase"])
        last = next((r for r in store.list_runs(limit=20) if str(r.phase) in daemon_mod.TERMINAL), None)
        if last is not None:
            doc = daemon_mod.run_document(store, str(last.id))
            if doc.get("rto_s") is not None:
                rto.add_metric([str(last.id), "outage"], float(doc["rto_s"]))
            if doc.get("rto_from_detection_s") is not None:
                rto.add_metric([str(last.id), "detection"], float(doc["rto_from_detection_s"]))
            if doc.get("data_loss_window_s") is not None:
                loss.add_metric([str(last.id)], float(doc["data_loss_window_s"]))
            if last.finished_at is not None:
                finished.add_metric([str(last.id), str(last.phase)], last.finished_at.timestamp())
        yield from (current, rto, loss, finished)
