"""Prometheus metrics of production solving, read from the operations store.

Solving processes write to the store, not to an in-process registry: the `serve` process
exposes what *every* process recorded. The figures cover the solves still stored (the
retention window), so a counter can drop when retention deletes old rows; Prometheus treats
that as a counter reset.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import generate_latest

from fresh_solver.operations import store
from fresh_solver.operations.monitor import ANSWERED, PerformanceMonitor

BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STATUS_VALUE = {"healthy": 0, "warning": 1, "critical": 2, "unknown": 3}


class StoreCollector:
    """A prometheus-client collector over the store (one aggregate query per table)."""

    def __init__(self, monitor: PerformanceMonitor, health=None):
        self.monitor = monitor
        self.health = health  # () -> the latest health report (dict) or None

    def collect(self):
        """Yield the metric families (called by prometheus-client per scrape)."""
        yield from self._solve_metrics()
        yield from self._event_metrics()
        yield from self._health_metrics()

    def _solve_metrics(self):
        c = store.solves.c
        bucket_columns = [sa.func.sum(sa.case((c.solve_time_s <= le, 1), else_=0))
                          for le in BUCKETS_S]
        query = (sa.select(c.template_id, c.status, sa.func.count(), sa.func.sum(c.solve_time_s),
                           *bucket_columns)
                 .group_by(c.template_id, c.status))
        histogram = HistogramMetricFamily(
            "fresh_solver_solve_duration_seconds", "Production solve wall time",
            labels=["template", "status"])
        with store.engine(self.monitor.url).connect() as conn:
            rows = conn.execute(query).all()
            last_use = conn.execute(sa.select(c.template_id, c.version, sa.func.max(c.at))
                                    .group_by(c.template_id, c.version)).all()
            recent = conn.execute(
                sa.select(c.template_id, c.status, sa.func.count())
                .where(c.at >= time.time() - self.monitor.window_minutes * 60)
                .group_by(c.template_id, c.status)).all()
        for template_id, status, count, total, *cumulative in rows:
            buckets = [(str(le), int(n or 0)) for le, n in zip(BUCKETS_S, cumulative)]
            buckets.append(("+Inf", int(count)))
            histogram.add_metric([template_id, status], buckets, float(total or 0.0))
        yield histogram
        served = GaugeMetricFamily("fresh_solver_version_served",
                                   "Registry version of the latest solve per template "
                                   "(1; version 'none' for defaults or fallback)",
                                   labels=["template", "version"])
        latest: dict[str, tuple[float, str | None]] = {}
        for template_id, version, at in last_use:
            if template_id not in latest or at > latest[template_id][0]:
                latest[template_id] = (at, version)
        for template_id, (_, version) in sorted(latest.items()):
            served.add_metric([template_id, version or "none"], 1)
        yield served
        error_rate = GaugeMetricFamily("fresh_solver_error_rate",
                                       "Share of the window's solves without an answer",
                                       labels=["template"])
        per_template: dict[str, list[int]] = {}
        for template_id, status, count in recent:
            totals = per_template.setdefault(template_id, [0, 0])
            totals[0] += count
            totals[1] += 0 if status in ANSWERED else count
        for template_id, (count, errors) in per_template.items():
            error_rate.add_metric([template_id], errors / count)
        yield error_rate

    def _event_metrics(self):
        e = store.events.c
        with store.engine(self.monitor.url).connect() as conn:
            rows = conn.execute(sa.select(e.kind, e.template_id, sa.func.count())
                                .group_by(e.kind, e.template_id)).all()
        families = {kind: CounterMetricFamily(name, help_text, labels=["template"])
                    for kind, (name, help_text) in EVENT_COUNTERS.items()}
        for kind, template_id, count in rows:
            if kind in families:
                families[kind].add_metric([template_id or ""], count)
        yield from families.values()

    def _health_metrics(self):
        report = self.health() if self.health else None
        if not report:
            return
        status = GaugeMetricFamily("fresh_solver_health_status",
                                   "Overall health: 0 healthy, 1 warning, 2 critical, "
                                   "3 unknown")
        status.add_metric([], STATUS_VALUE[report["status"]])
        yield status
        checks = GaugeMetricFamily("fresh_solver_check_status",
                                   "Health check status (same coding)", labels=["check"])
        for check in report["checks"]:
            checks.add_metric([check["name"]], STATUS_VALUE[check["status"]])
        yield checks
        score = report.get("production", {}).get("overall_health_score")
        if score is not None:
            gauge = GaugeMetricFamily("fresh_solver_health_score",
                                      "Production health score (0-100) of the window")
            gauge.add_metric([], score)
            yield gauge


# event kind -> (counter name, without the _total prometheus-client adds; help)
EVENT_COUNTERS = {
    "fallback": ("fresh_solver_fallbacks", "Production solves served a fallback set"),
    "refusal": ("fresh_solver_refusals", "Versions the production loader refused"),
    "dropped": ("fresh_solver_dropped_records",
                "Times solve records were dropped because the store was unreachable"),
}


def render(monitor: PerformanceMonitor, health=None) -> bytes:
    """The Prometheus text exposition of the store's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(monitor, health))
    return generate_latest(registry)
