"""One round of operations, as the health DAG (or `fresh-solver alert run`) performs it.

Each step takes and returns plain JSON-able values, is safe to repeat, and does not need the
others to have succeeded: a registry that is down fails ``reconcile`` softly (reported, not
raised) so that the checks and alerts of the same round still run and say so.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fresh_solver.operations.monitor import PerformanceMonitor

log = logging.getLogger("fresh_solver.operations")


def reconcile_all(by: str = "health-dag") -> dict[str, Any]:
    """`registry reconcile` for every registered template: one Production version with the
    alias. Returns per template what was found and changed, or ``unreachable``."""
    from fresh_solver import tracking
    from fresh_solver.registry.errors import registry_errors
    from fresh_solver.registry.registry import ParameterRegistry

    try:
        registry = ParameterRegistry(tracking.client())
        templates = registry.templates()
    except registry_errors() as exc:
        log.warning("reconcile skipped, registry unreachable: %s", exc)
        return {"unreachable": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return {"templates": {t: _reconcile_one(registry, t, by) for t in templates}}


def _reconcile_one(registry, template_id: str, by: str) -> dict[str, Any]:
    """One template's reconcile; a refusal or failure is reported for it alone, and the
    registry is still observed (the alias-move window depends on it). On a server with access
    control the service account may not make a version Production that no reviewer marked
    (e.g. a decision from the history): that needs a reviewer's reconcile."""
    from fresh_solver.registry.errors import registry_errors

    try:
        return registry.reconcile(template_id, by=by)
    except registry_errors() as exc:
        needs_reviewer = getattr(exc, "error_code", None) == "PERMISSION_DENIED"
        log.warning("reconcile of %s %s: %s", template_id,
                    "needs a reviewer" if needs_reviewer else "failed", exc)
        try:
            registry.observe(template_id)
        except registry_errors() as again:
            log.warning("observing %s failed too: %s", template_id, again)
        return {"needs_reviewer" if needs_reviewer else "failed":
                f"{type(exc).__name__}: {str(exc)[:300]}"}


def check(names: list[str] | None = None) -> dict[str, Any]:
    """Run the health checks; the JSON-able report."""
    from fresh_solver.operations.checks import HealthChecker

    checker = HealthChecker()  # one: the report reads the baselines its registry check found
    report = checker.generate_health_report(checker.run_all_checks(names))
    return json.loads(json.dumps(report, default=str))


def alert(report: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the alert rules on ``report`` and the window's events, then send what is due
    (new, repeated and resolved notifications, and earlier ones that failed)."""
    from fresh_solver.operations.alerts import AlertManager, build_contexts

    manager = AlertManager()
    monitor = PerformanceMonitor()
    events = monitor.events(time.time() - monitor.window_minutes * 60)
    transitions = manager.evaluate(build_contexts(report, events))
    sent = manager.dispatch()
    return {"transitions": [{"event": t["event"], "name": t["alert"]["name"],
                             "template_id": t["alert"]["template_id"],
                             "notified": t["notified"]} for t in transitions],
            "deliveries": sent}


def retention() -> dict[str, int]:
    """Delete what is older than ``retention_hours``: solves, events, old alerts."""
    from fresh_solver.operations.alerts import AlertManager

    monitor = PerformanceMonitor()
    return {"solves_and_events": monitor.enforce_retention(),
            "alerts_and_deliveries": AlertManager().enforce_retention(monitor.retention_hours)}


def rollup(interval_minutes: float = 15.0, lookback: int = 4,
           now: float | None = None) -> list[dict[str, Any]]:
    """One MLflow run per template in ``fresh-solver/production`` for each of the last
    ``lookback`` whole intervals that has solves and no roll-up yet (so a missed or late
    round loses nothing): counts, time quantiles, error rate, versions served."""
    from fresh_solver.operations.rollup import write_rollups

    width = interval_minutes * 60
    last_end = ((now or time.time()) // width) * width
    monitor = PerformanceMonitor()
    written = []
    for k in range(lookback, 0, -1):
        end = last_end - (k - 1) * width
        written += write_rollups(monitor, end - width, end)
    return written
