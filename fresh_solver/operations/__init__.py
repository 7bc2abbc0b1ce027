"""Production operations: the solve monitor, health checks, alerting and the health endpoint.

Everything here shares the operations store (:mod:`fresh_solver.operations.store`), so a
solving process, the `health` command, the `serve` endpoint and the health DAG see the same
solves, fallbacks and alerts. Nothing here imports Airflow.

The source document's names: ``PerformanceMonitor`` (monitor.py), ``HealthChecker``
(checks.py), ``AlertManager`` (alerts.py) with ``AlertChannel``, ``AlertRule`` and
``AlertSeverity`` (seed_alerting.py). They are imported on first use (the monitor pulls in
SQLAlchemy), so importing this package stays cheap.
"""

from fresh_solver.lazy import lazy_exports

_EXPORTS = {
    "PerformanceMonitor": "fresh_solver.operations.monitor",
    "HealthChecker": "fresh_solver.operations.checks",
    "AlertManager": "fresh_solver.operations.alerts",
    "AlertChannel": "fresh_solver.operations.seed_alerting",
    "AlertRule": "fresh_solver.operations.seed_alerting",
    "AlertSeverity": "fresh_solver.operations.seed_alerting",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
