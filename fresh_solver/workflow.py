"""The source document's "Complete Production Workflow", over the project's parts.

    from fresh_solver.workflow import production_solve_workflow
    solution = production_solve_workflow("bracket", problem)   # a SolutionResult

Steps, as the document lists them, and what each is here:

1. **Parameters**: :meth:`ParameterManager.get_solver_parameters`, i.e. the production loader
   (Production set, cached, falls back, never fails for the registry).
2. **Monitoring**: the operations store's :class:`PerformanceMonitor`.
3. **Health gate**: the checks that can make the service critical (the *required* ones:
   OR-Tools, the CP-SAT canary, system resources, error rate), combined by the project's rule;
   critical refuses the solve with :class:`SystemError`, as the document does. The document
   refuses on *any* critical check; that would refuse every solve while the registry is down,
   which the production loader exists to survive, so optional checks never block. The verdict
   is kept for ``FRESH_SOLVER_HEALTH_GATE_TTL`` seconds (default 60) per process: the canary
   is a real solve, and running it before every solve would double small solves' latency.
4. **Solve**: :func:`create_solver_with_parameters` with the served set, template model.
5. **Recording**: ``record_solve_performance`` with the solve's wall time (the document's
   clock also counts the health gate; a regression check on that would see the gate's cost),
   the job count (``problem_data.job_instances``: the problem's jobs), the status, the
   process's RSS (:func:`get_memory_usage`) and what served the parameters.
6. **Regression detection**: :meth:`RegressionDetector.check_regression` against the template's
   latest stored baseline, with this solve's time as the seed's single number. No baseline, or
   one per instance (a benchmark's, which a single solve cannot be matched to), means no
   check; that is logged, not raised.
7. **Alerting**: on a significant regression, ``create_performance_alert(template_id,
   solve_time, baseline_time, 50.0)`` through the configured channels (deduplicated).

A failure of the solve itself is recorded as ``FAILED`` and re-raised.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.templates.solving import (
    ProblemData,
    SolutionResult,
    as_problem,
    create_solver_with_parameters,
)

log = logging.getLogger("fresh_solver.workflow")

__all__ = ["ProblemData", "SolutionResult", "get_memory_usage", "production_solve_workflow"]

GATE_CHECKS = ("ortools", "cp_sat_canary", "system_resources", "error_rate")
_gate: dict[str, Any] = {}  # {"at": monotonic time, "results": [...]}
_gate_lock = threading.Lock()


def get_memory_usage() -> float:
    """This process's resident set size now, in MB (psutil): CP-SAT's C++ memory included."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def gate_ttl_seconds() -> float:
    """How long a health-gate verdict is reused (``FRESH_SOLVER_HEALTH_GATE_TTL``)."""
    return float(os.environ.get("FRESH_SOLVER_HEALTH_GATE_TTL", "60"))


def health_gate(monitor=None) -> list:
    """The required checks' results, run at most once per TTL per process (module doc)."""
    from fresh_solver.operations.checks import HealthChecker

    with _gate_lock:
        fresh = _gate and time.monotonic() - _gate["at"] < gate_ttl_seconds()
        if fresh:
            return _gate["results"]
        results = HealthChecker(monitor).run_all_checks(list(GATE_CHECKS))
        _gate.update(at=time.monotonic(), results=results)
        return results


def reset_health_gate() -> None:
    """Forget the cached verdict (tests; after fixing what made it critical)."""
    with _gate_lock:
        _gate.clear()


def production_solve_workflow(template_id: str, problem_data: Any, *,
                              time_limit: float = 10.0, seed: int = 0) -> SolutionResult:
    """Solve ``problem_data`` with the Production parameters of ``template_id``, monitored,
    gated on health, checked for regression and alerted on (module docstring)."""
    from fresh_solver.operations.checks import overall_status
    from fresh_solver.operations.monitor import HealthStatus, PerformanceMonitor
    from fresh_solver.templates.manager import ParameterManager

    problem = as_problem(problem_data)
    solver_params = ParameterManager().get_solver_parameters(template_id)
    perf_monitor = PerformanceMonitor()
    health_results = health_gate(perf_monitor)
    if overall_status(health_results) is HealthStatus.CRITICAL:
        failed = [f"{r.name}: {r.message}" for r in health_results if r.is_critical]
        raise SystemError("Critical health check failure: " + "; ".join(failed))
    start = time.perf_counter()
    try:
        solver = create_solver_with_parameters(solver_params)
        solver.template_id = template_id
        solution = solver.solve(problem, time_limit=time_limit, seed=seed)
    except Exception:  # every failure is recorded, then re-raised unchanged
        perf_monitor.record_solve_performance(
            template_id=template_id, solve_time=time.perf_counter() - start,
            instance_count=len(problem.jobs), solver_status="FAILED",
            params_source=solver_params.source, tasks=problem.num_tasks)
        raise
    _record(perf_monitor, template_id, problem, solution)
    regression = _regression(template_id, solution.solve_time)
    if regression is not None and regression.is_significant:
        from fresh_solver.operations.alerts import AlertManager

        AlertManager().create_performance_alert(template_id, solution.solve_time,
                                                regression.baseline_time, 50.0)
    return solution


def _record(perf_monitor, template_id: str, problem, solution: SolutionResult) -> None:
    import ortools

    result = solution.result
    source = solution.params_source
    perf_monitor.record_solve_performance(
        template_id=template_id, solve_time=solution.solve_time,
        instance_count=len(problem.jobs), solver_status=solution.status,
        memory_usage_mb=get_memory_usage(), params_source=source,
        version=source.rsplit("/", 1)[1] if source.startswith("registry:") else None,
        tasks=problem.num_tasks, objective=result.objective, best_bound=result.best_bound,
        build_time_s=result.build_time_s, fallback=source.startswith("fallback:"),
        ortools_version=ortools.__version__)


def _regression(template_id: str, solve_time: float):
    """The detector's verdict on this solve, or None when there is nothing to compare with."""
    from fresh_solver.performance.regression import RegressionDetector
    from fresh_solver.registry.errors import registry_errors

    try:
        return RegressionDetector().check_regression(template_id, solve_time)
    except InputError as exc:
        log.debug("no regression check for %s: %s", template_id, exc.problems[0])
    except registry_errors() as exc:  # the solve is done: a registry fault only skips this
        log.warning("no regression check for %s: MLflow unreachable (%s)", template_id,
                    type(exc).__name__)
    return None
