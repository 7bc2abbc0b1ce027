"""HealthChecker: the source document's check categories, each a real check with a timeout.

Every check returns a :class:`CheckResult` (name, status, message, details, duration) and runs
in its own daemon thread with a timeout counted from its start; a check that does not answer in
time is ``unknown`` ("timed out") and its thread is abandoned, so one hung dependency (or
several) cannot hang the report, nor keep the process from exiting.

How the results combine (:func:`overall_status`), in this order:

1. ``critical`` if a *required* check is critical. Required are the checks without which no
   production solve can be right: OR-Tools, the CP-SAT canary, system resources, error rate.
2. ``unknown`` if a required check is unknown (it timed out or could not judge), except a
   check that judges recorded solves (:data:`JUDGES_SOLVES`, e.g. the error rate): its
   ``unknown`` means there is no solve to judge — none in the window, or the store is down or
   slow, which the ``monitor_store`` check reports — not that the service is unfit. A quiet
   hour is not an outage, and solves go on without the store (a ``warning`` by rule 3, not
   ``unknown`` and a 503).
3. ``warning`` if any check is warning, or an optional check is critical: the registry, the
   store or a regression degrade the service (solves go on with fallbacks) but do not stop it.
4. ``healthy`` otherwise (optional checks that are ``unknown`` — e.g. no solves yet — do not
   lower it).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from fresh_solver.operations.monitor import HealthStatus, PerformanceMonitor

log = logging.getLogger("fresh_solver.health")

HEALTHY, WARNING, CRITICAL, UNKNOWN = (HealthStatus.HEALTHY, HealthStatus.WARNING,
                                       HealthStatus.CRITICAL, HealthStatus.UNKNOWN)
CANARY = Path(__file__).with_name("data") / "ft06.txt"  # Fisher & Thompson 6x6 (JSPLIB)
CANARY_OPTIMUM = 55  # proven optimum of ft06 (../shared/benchmarks/bounds.json)
# Checks that judge the solves recorded in the store (rule 2 of the module docstring).
JUDGES_SOLVES = frozenset({"monitoring_freshness", "performance_regression", "memory_usage",
                           "error_rate"})
# What reading the store raises when it is down: the driver's errors, or OSError for an SQLite
# path that cannot be opened (its folder cannot be created, the lock file cannot be written).
STORE_ERRORS = (SQLAlchemyError, OSError)


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict. ``required`` checks decide ``critical`` for the whole report."""

    name: str
    status: HealthStatus
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    required: bool = False

    @property
    def is_critical(self) -> bool:
        """The seed's test: this check found a critical problem."""
        return self.status is CRITICAL

    @property
    def is_healthy(self) -> bool:
        """The seed's test: this check found nothing wrong."""
        return self.status is HEALTHY

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the `health --json` and `/health` entries)."""
        return {"name": self.name, "status": self.status.value, "message": self.message,
                "details": self.details, "duration_s": round(self.duration_s, 4),
                "required": self.required}


@dataclass(frozen=True)
class _Verdict:
    status: HealthStatus
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def overall_status(results: list[CheckResult]) -> HealthStatus:
    """The documented rule (module docstring) combining check results."""
    if any(r.required and r.status is CRITICAL for r in results):
        return CRITICAL
    if any(r.required and r.status is UNKNOWN and r.name not in JUDGES_SOLVES
           for r in results):
        return UNKNOWN
    if any(r.status in (WARNING, CRITICAL) for r in results):
        return WARNING
    return HEALTHY


def _level(value: float, warn: float, crit: float) -> HealthStatus:
    return CRITICAL if value >= crit else WARNING if value >= warn else HEALTHY


class HealthChecker:
    """Runs every check (or some, by name) with a per-check timeout."""

    def __init__(self, monitor: PerformanceMonitor | None = None, *,
                 timeout_s: float | None = None, canary_budget_s: float = 5.0):
        self.monitor = monitor or PerformanceMonitor()
        self.timeout_s = timeout_s or float(os.environ.get("FRESH_SOLVER_CHECK_TIMEOUT_S",
                                                           "20"))
        self.canary_budget_s = canary_budget_s
        self._baselines: dict[str, float] = {}
        self._templates: dict[str, dict[str, Any]] | None = None  # the registry check's
        self._registry_ran = False  # this round: then compliance reuses it, never asks again
        self.checks: dict[str, tuple[Callable[[], _Verdict], bool]] = {
            "ortools": (self.check_ortools, True),
            "cp_sat_canary": (self.check_canary, True),
            "registry": (self.check_registry, False),
            "monitor_store": (self.check_store, False),
            "system_resources": (self.check_system_resources, True),
            "monitoring_freshness": (self.check_freshness, False),
            "performance_regression": (self.check_regression, False),
            "memory_usage": (self.check_memory_usage, False),
            "baseline_compliance": (self.check_baseline_compliance, False),
            "error_rate": (self.check_error_rate, True),
            "resource_utilization": (self.check_utilization, False),
        }

    # ---- running ----------------------------------------------------------------------------
    def run_all_checks(self, names: list[str] | None = None) -> list[CheckResult]:
        """Every check (or those named), each in its own thread with the timeout; the
        registry runs first because the performance checks use its baselines."""
        names = names or list(self.checks)
        unknown = [n for n in names if n not in self.checks]
        if unknown:
            from fresh_solver.errors import InputError

            raise InputError(f"unknown health check(s) {unknown}; known: {list(self.checks)}")
        results = {}
        self._registry_ran = "registry" in names
        if "registry" in names:  # first: it fills the baselines
            import mlflow  # noqa: F401 - seconds on a cold process: not the registry's time

            results["registry"] = self._collect("registry", self._start("registry"),
                                                time.monotonic() + self.timeout_s)
        deadline = time.monotonic() + self.timeout_s  # the others run at once: one deadline
        started = {n: self._start(n) for n in names if n != "registry"}
        for name, future in started.items():
            results[name] = self._collect(name, future, deadline)
        return [results[n] for n in names]

    def _start(self, name: str) -> Future:
        """Run one check in a daemon thread: one that never returns is abandoned and does not
        hold up the process's exit (a ThreadPoolExecutor's threads are joined at exit)."""
        future: Future = Future()

        def run() -> None:
            try:
                future.set_result(self._timed(name))
            except BaseException as exc:  # handed to the caller, as ThreadPoolExecutor does
                future.set_exception(exc)

        threading.Thread(target=run, name=f"health-check-{name}", daemon=True).start()
        return future

    def _collect(self, name: str, future: Future, deadline: float) -> CheckResult:
        check, required = self.checks[name]
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            log.warning("health check %s timed out after %g s", name, self.timeout_s)
            return CheckResult(name, UNKNOWN, f"timed out after {self.timeout_s:g} s",
                               {}, self.timeout_s, required)

    def _timed(self, name: str) -> CheckResult:
        check, required = self.checks[name]
        start = time.perf_counter()
        try:
            verdict = check()
        except STORE_ERRORS as exc:  # the checks that read solves from the store
            verdict = _Verdict(UNKNOWN, f"operations store unreachable: {type(exc).__name__}")
        return CheckResult(name, verdict.status, verdict.message, verdict.details,
                           time.perf_counter() - start, required)

    def get_overall_health_status(self, results: list[CheckResult]) -> str:
        """The seed's call: the combined status word of ``results``."""
        return overall_status(results).value

    def generate_health_report(self, results: list[CheckResult] | None = None
                               ) -> dict[str, Any]:
        """Everything in one JSON-able report: overall status, the production health
        snapshot and every check."""
        results = results if results is not None else self.run_all_checks()
        try:
            snapshot = self.monitor.get_current_health(self._baselines).to_dict()
        except STORE_ERRORS as exc:
            snapshot = {"status": UNKNOWN.value, "error": f"store unreachable: {exc}"}
        return {"status": overall_status(results).value, "generated_at": time.time(),
                "production": snapshot, "checks": [r.to_dict() for r in results]}

    # ---- the checks -------------------------------------------------------------------------
    def check_ortools(self) -> _Verdict:
        """OR-Tools imports and builds a CP-SAT model."""
        try:
            import ortools
            from ortools.sat.python import cp_model
        except ImportError as exc:
            return _Verdict(CRITICAL, f"OR-Tools cannot be imported: {exc}")
        model = cp_model.CpModel()
        model.new_int_var(0, 1, "x")
        return _Verdict(HEALTHY, f"OR-Tools {ortools.__version__}",
                        {"version": ortools.__version__})

    def check_canary(self) -> _Verdict:
        """CP-SAT proves the known optimum of a shipped instance within the budget."""
        from fresh_solver.model import load_problem
        from fresh_solver.solver import solve

        result = solve(load_problem(str(CANARY)), time_limit=self.canary_budget_s, seed=0)
        details = {"instance": "ft06", "status": result.status, "objective": result.objective,
                   "optimum": CANARY_OPTIMUM, "wall_time_s": round(result.wall_time_s, 4),
                   "budget_s": self.canary_budget_s}
        if result.valid is False or (result.objective is not None
                                     and result.objective < CANARY_OPTIMUM):
            return _Verdict(CRITICAL, "CP-SAT returned a wrong answer on the canary", details)
        if not result.optimal:
            return _Verdict(CRITICAL, f"CP-SAT did not prove the canary's optimum in "
                            f"{self.canary_budget_s:g} s ({result.status})", details)
        if result.objective != CANARY_OPTIMUM:
            return _Verdict(CRITICAL, f"CP-SAT proved {result.objective}, the optimum is "
                            f"{CANARY_OPTIMUM}", details)
        return _Verdict(HEALTHY, f"canary ft06 optimal in {result.wall_time_s:.3f} s", details)

    def check_registry(self) -> _Verdict:
        """Per registered template: reachable, one Production version with the alias, the
        served set loads and applies here, validated, validated on this OR-Tools and machine."""
        from fresh_solver.operations.registry_check import registry_verdicts
        from fresh_solver.registry.errors import registry_errors

        self._templates, self._baselines = None, {}  # nothing from an earlier run is reused
        try:
            templates = registry_verdicts()
        except registry_errors() as exc:
            from fresh_solver.registry.registry import registry_failure

            return _Verdict(CRITICAL, f"{registry_failure(exc)}: {str(exc)[:200]}")
        self._templates = templates
        self._baselines = {t: v["performance_baseline_s"] for t, v in templates.items()
                           if v.get("performance_baseline_s")}
        from fresh_solver.registry.evidence import KEY_ENV, signing_key

        signed = signing_key() is not None
        # Without a key a run anyone may write, in the validation experiment with the right
        # params, passes as a verdict: said in every answer, not only on the day it happens.
        guard = "" if signed else (f"; evidence unsigned ({KEY_ENV} not set): a fabricated "
                                   "verdict run in the validation experiment would be served")
        if not templates:
            return _Verdict(HEALTHY, f"registry reachable; no template registered yet{guard}",
                            {"evidence_signed": signed})
        worst = max((HealthStatus(v["status"]) for v in templates.values()), key=_rank)
        problems = [f"{t}: {m}" for t, v in templates.items() for m in v["problems"]]
        message = "; ".join(problems) if problems else \
            f"{len(templates)} template(s) serve validated Production sets"
        return _Verdict(worst, message + guard,
                        {"templates": templates, "evidence_signed": signed})

    def check_store(self) -> _Verdict:
        """The operations store answers and its schema is at the newest migration; what this
        machine's processes kept on disk for it, and whether they still can."""
        from fresh_solver.operations import spool, store

        kept = spool.state(self.monitor.url)
        try:
            current, head = store.schema_revision(store.engine(self.monitor.url))
        except STORE_ERRORS as exc:
            return _Verdict(CRITICAL, f"operations store unreachable: {type(exc).__name__}"
                            f"; {kept['spool_records']} records kept on disk for it",
                            {"url": store.safe_url(self.monitor.url), **kept})
        details = {"url": store.safe_url(self.monitor.url), "revision": current, "head": head,
                   **self.monitor.buffer_state(), **kept}
        if current != head:
            return _Verdict(CRITICAL, f"schema at {current}, code expects {head}", details)
        if details["dropped"]:
            return _Verdict(WARNING, f"{details['dropped']} records dropped by this process "
                            "while the store was unreachable", details)
        if kept["spool_problem"]:
            return _Verdict(WARNING, f"the spool folder cannot be written "
                            f"({kept['spool_problem']}): records a process cannot write "
                            "before it exits would be lost", details)
        if kept["spool_files"]:
            return _Verdict(WARNING, f"{kept['spool_records']} records kept on disk by "
                            "processes that could not reach the store; the next production "
                            "solve on this machine writes them", details)
        return _Verdict(HEALTHY, f"store reachable, schema at head ({head})", details)

    def check_system_resources(self) -> _Verdict:
        """Memory and disk left for solves and for the data folder (psutil)."""
        import psutil

        from fresh_solver import tracking

        memory = psutil.virtual_memory()
        home = tracking.home()
        home.mkdir(parents=True, exist_ok=True)
        disk = shutil.disk_usage(home)
        memory_used = memory.percent / 100
        disk_used = 1 - disk.free / disk.total
        details = {"memory_available_mb": round(memory.available / 2**20),
                   "memory_used": round(memory_used, 3), "disk_free_mb": disk.free // 2**20,
                   "disk_used": round(disk_used, 3), "cpu_count": psutil.cpu_count()}
        status = max(_level(memory_used, 0.90, 0.97), _level(disk_used, 0.90, 0.98), key=_rank)
        return _Verdict(status, f"memory {memory_used:.0%} used, disk {disk_used:.0%} used "
                        f"({home})", details)

    def check_freshness(self) -> _Verdict:
        """Solves reach the store: none for a while, or records dropped, is worth a look."""
        window = self.monitor.window_minutes
        latest = self.monitor.latest_solve_at()
        if latest is None:
            return _Verdict(UNKNOWN, "no production solve recorded yet")
        age_min = (time.time() - latest) / 60
        details = {"last_solve_age_minutes": round(age_min, 2), "window_minutes": window}
        dropped = self.monitor.events(time.time() - window * 60, kind="dropped")
        if dropped:
            details["dropped_events"] = [e["detail"] for e in dropped]
            return _Verdict(WARNING, "records were dropped while the store was unreachable",
                            details)
        if age_min > window:
            return _Verdict(WARNING, f"no production solve recorded for {age_min:.0f} min",
                            details)
        return _Verdict(HEALTHY, f"last solve recorded {age_min:.1f} min ago", details)

    def _snapshot(self):
        return self.monitor.get_current_health(self._baselines)

    def check_regression(self) -> _Verdict:
        """Recent median solve time per template against its validated baseline."""
        snapshot = self._snapshot()
        rows = {t: {"median_solve_s": h.median_solve_s, "baseline_s": h.baseline_s,
                    "slowdown": h.slowdown} for t, h in snapshot.templates.items()}
        judged = {t: r for t, r in rows.items() if r["slowdown"] is not None}
        if not judged:
            return _Verdict(UNKNOWN, "no recent solve of a template with a validated baseline",
                            {"templates": rows})
        worst_t, worst = max(judged.items(), key=lambda item: item[1]["slowdown"])
        status = _level(worst["slowdown"], 1.5, 2.0)
        return _Verdict(status, f"slowest vs baseline: {worst_t} at {worst['slowdown']:.2f}x "
                        "its validated time (production instances differ from validation's)",
                        {"templates": rows})

    def check_memory_usage(self) -> _Verdict:
        """Peak memory of recent production solves against the machine's memory."""
        import psutil

        rows = self.monitor.solves(time.time() - self.monitor.window_minutes * 60)
        peaks = [r["peak_rss_mb"] for r in rows if r["peak_rss_mb"]]
        if not peaks:
            return _Verdict(UNKNOWN, "no recent solve with a memory figure")
        total_mb = psutil.virtual_memory().total / 2**20
        share = max(peaks) / total_mb
        return _Verdict(_level(share, 0.5, 0.8), f"largest solving process peaked at "
                        f"{max(peaks):.0f} MB ({share:.0%} of memory)",
                        {"max_peak_rss_mb": max(peaks), "total_memory_mb": round(total_mb),
                         "solves": len(peaks)})

    def check_baseline_compliance(self) -> _Verdict:
        """Every served set was validated at least as fast as its baseline (speedup ≥ 1)."""
        from fresh_solver.operations.registry_check import registry_verdicts
        from fresh_solver.registry.errors import registry_errors

        try:
            if self._templates is None and self._registry_ran:
                return _Verdict(UNKNOWN, "the registry check found nothing to judge")
            templates = self._templates if self._templates is not None \
                else registry_verdicts()
        except registry_errors() as exc:
            from fresh_solver.registry.registry import registry_failure

            return _Verdict(UNKNOWN, registry_failure(exc))
        slow = {t: v["speedup_factor"] for t, v in templates.items()
                if v.get("speedup_factor") is not None and v["speedup_factor"] < 1.0}
        unvalidated = [t for t, v in templates.items() if v.get("serving")
                       and v.get("speedup_factor") is None]
        details = {"below_baseline": slow, "without_validation": unvalidated}
        if slow or unvalidated:
            return _Verdict(WARNING, f"served without a validated speedup ≥ 1: "
                            f"{sorted(slow) + unvalidated}", details)
        served = sorted(t for t, v in templates.items() if v.get("serving"))
        if not served:
            return _Verdict(HEALTHY, "no template serves a registered set (the CP-SAT defaults "
                            "serve): nothing to judge", details)
        return _Verdict(HEALTHY, f"the {len(served)} served set(s) ({', '.join(served)}) were "
                        "validated at least as fast as their baseline", details)

    def check_error_rate(self) -> _Verdict:
        """Share of recent solves that ended without an answer."""
        snapshot = self._snapshot()
        if snapshot.solves == 0:  # no data: rule 2 keeps a quiet hour from being an outage
            return _Verdict(UNKNOWN, "no production solve in the window",
                            {"window_minutes": snapshot.window_minutes})
        status = _level(snapshot.error_rate, 0.05, 0.20)
        return _Verdict(status, f"{snapshot.error_rate:.1%} of {snapshot.solves} recent "
                        "solves ended without an answer",
                        {"error_rate": snapshot.error_rate, "solves": snapshot.solves})

    def check_utilization(self) -> _Verdict:
        """CPU busy share and load per core; solves measured on a saturated host are slow."""
        import psutil

        busy = psutil.cpu_percent(interval=0.5) / 100
        load = os.getloadavg()[0] / (psutil.cpu_count() or 1)
        status = max(_level(busy, 0.90, 2.0), _level(load, 2.0, 4.0), key=_rank)
        return _Verdict(status, f"CPU {busy:.0%} busy, load {load:.2f} per core",
                        {"cpu_busy": busy, "load_per_core": round(load, 3)})


def _rank(status: HealthStatus) -> int:
    return {HEALTHY: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3}[status]
