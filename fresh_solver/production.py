"""The production solve: parameters from the registry's Production version, never a failure
because of the registry.

    from fresh_solver import production
    params = production.get_solver_parameters("bracket")      # CP-SAT parameters (a dict)
    result = production.solve(problem, template_id="bracket")  # result.params_source says why

Resolution: the version the registry serves (`ParameterRegistry.serving`: the latest promotion
by either UI path, validated), checked structurally against the installed OR-Tools, cached in
memory for ``FRESH_SOLVER_PARAMS_TTL`` seconds (default 300) and on disk as the last good set.
When the registry is unreachable or the set is invalid: the last good set (memory, then disk),
then the CP-SAT defaults; ``params_source`` is ``fallback:<why>``, a warning is logged and the
event goes to the operations store, where every process's health checks see it
(:func:`recent_fallbacks`). Every :func:`solve` is recorded there too (``FRESH_SOLVER_MONITOR=0``
switches recording off); recording is buffered and never delays or fails the solve.

The registry's health never becomes the caller's latency. Once a set has been served, an
expired entry is served at once while one background refresh per template runs
(stale-while-revalidate); its result replaces the entry, a failure keeps serving the last good
set. The first resolution of a template in a process waits for a registry *server* at most
``FRESH_SOLVER_REGISTRY_BUDGET_S`` (default 0.9 s, so a first solve waits under a second;
counted after MLflow's import, paid once per process) and then serves the disk copy or the
defaults while the refresh goes on. An embedded or
database store is read directly. No lock is held while the registry is asked, so threads and
templates never wait on each other; only the errors a registry or network raises become
fallbacks, our own bugs are raised.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fresh_solver.background import DaemonExecutor
from fresh_solver.errors import InputError
from fresh_solver.model import Problem
from fresh_solver.params.config import SolverConfig
from fresh_solver.registry.errors import registry_errors

log = logging.getLogger("fresh_solver.production")

# A registry that is down must not stall a solve for MLflow's default retry schedule.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@dataclass(frozen=True)
class Resolved:
    config: SolverConfig
    source: str  # registry:<model>/<version>, fallback:<why>, defaults
    fetched_at: float

    @property
    def expired(self) -> bool:
        # A fallback is retried sooner than a good answer is refreshed.
        ttl = ttl_seconds() if not self.source.startswith("fallback:") else min(
            ttl_seconds(), float(os.environ.get("FRESH_SOLVER_FALLBACK_RETRY", "30")))
        return time.time() - self.fetched_at >= ttl


_cache: dict[str, Resolved] = {}  # what to serve (until it expires, then while refreshing)
_last_good: dict[str, Resolved] = {}  # the last set the registry served, per template
_refreshing: dict[str, Future] = {}  # at most one registry query in flight per template
_lock = threading.Lock()  # guards the dicts above; never held while the registry is asked
# Daemon threads: a one-shot command exits without waiting for a registry that hangs.
_refresher = DaemonExecutor(max_workers=4, name="fresh-solver-registry")
_observer = DaemonExecutor(max_workers=1, name="fresh-solver-observe")
_observations: list[Future] = []  # registry observations queued by resolutions


def ttl_seconds() -> float:
    """How long a served answer is fresh (``FRESH_SOLVER_PARAMS_TTL``, default 300 s)."""
    return float(os.environ.get("FRESH_SOLVER_PARAMS_TTL", "300"))


def budget_seconds() -> float | None:
    """How long a first resolution waits for a registry server; None for an embedded or
    database store, which is read directly."""
    from fresh_solver import tracking

    if not tracking.tracking_uri().startswith(("http://", "https://")):
        return None
    return float(os.environ.get("FRESH_SOLVER_REGISTRY_BUDGET_S", "0.9"))


def _disk_cache(template_id: str) -> Path:
    from fresh_solver import tracking

    return tracking.home() / "production_cache" / f"{template_id}.json"


_monitors: dict[tuple[str | None, ...], Any] = {}  # by the settings that choose the store


def _monitor():
    """The operations monitor, or None when recording is off or misconfigured (a bad
    operations config must not stop production solves; it is logged). One per store
    settings, so a solve does not re-read the config file."""
    from fresh_solver.operations.monitor import PerformanceMonitor, recording_enabled

    if not recording_enabled():
        return None
    key = tuple(os.environ.get(name) for name in (
        "FRESH_SOLVER_CONFIG", "FRESH_SOLVER_DB_URL", "FRESH_SOLVER_HOME"))
    monitor = _monitors.get(key)
    if monitor is None:
        try:
            monitor = _monitors[key] = PerformanceMonitor()
        except InputError as exc:
            log.error("production solves are not recorded: %s", exc.problems[0])
            return None
    return monitor


def _note(kind: str, template_id: str, why: str) -> None:
    """A fallback or refusal, for every process's health checks (through the store)."""
    monitor = _monitor()
    if monitor is not None:
        monitor.record_event(kind, template_id, why)


def recent_fallbacks(since: float = 0.0) -> list[dict[str, Any]]:
    """Fallback and refusal events of every process since ``since`` (epoch s), oldest first,
    as ``{"template_id", "at", "kind", "why", "host"}``; waits for this process's buffered
    events to reach the store first."""
    monitor = _monitor()
    if monitor is None:
        return []
    monitor.flush()
    return [{"template_id": e["template_id"], "at": e["at"], "kind": e["kind"],
             "why": e["detail"], "host": e["host"]}
            for e in monitor.events(since) if e["kind"] in ("fallback", "refusal")]


def clear_cache() -> None:
    """Forget everything in memory (the disk copy of the last good set stays); a refresh
    still running finishes into the emptied cache."""
    with _lock:
        _cache.clear()
        _last_good.clear()


def _from_registry(template_id: str) -> Resolved:
    import ortools

    from fresh_solver.registry.registry import ParameterRegistry, model_name

    registry = ParameterRegistry()
    decision = registry.serving(template_id)
    future = _observer.submit(_observe, registry, template_id)
    with _lock:  # only the pending ones are kept, for wait_for_refreshes
        _observations[:] = [f for f in _observations if not f.done()] + [future]
    for refusal in decision.refused:
        log.error("refusing to serve %s %s; serving the previous good version",
                  model_name(template_id), refusal)
        _note("refusal", template_id, f"refused {refusal}")
    if decision.version is None:
        if decision.refused:
            # The promotion history names no earlier servable version (a UI promotion writes
            # none): the set this loader served last, from memory or disk, not the defaults.
            return _fallback(template_id, f"refused {decision.refused[0]}")
        return Resolved(SolverConfig(), "defaults", time.time())
    version = registry.version(template_id, decision.version)
    config = registry.load_config(template_id, decision.version)  # validates on OR-Tools
    tagged = version.tags.get("ortools_version")
    if tagged and tagged != ortools.__version__:
        log.warning("%s v%s was validated on OR-Tools %s, this is %s",
                    model_name(template_id), decision.version, tagged, ortools.__version__)
    source = f"registry:{model_name(template_id)}/{decision.version}"
    return Resolved(config, source, time.time())


def _observe(registry, template_id: str) -> None:
    """Record what the registry looks like, so that a reviewer's later stage move is ordered
    against an alias move seen now (see the registry's docstring). In the background, off
    the solve's path, and best effort: a read-only account (the loader's, on a shared
    server) may not write, and that is no reason to serve anything else; the health DAG
    observes too."""
    try:
        registry.observe(template_id)
    except registry_errors() as exc:
        log.debug("not recording the registry observation for %s: %s", template_id, exc)


def _fallback(template_id: str, why: str) -> Resolved:
    """The last good set (memory, then disk), else the CP-SAT defaults."""
    _note("fallback", template_id, why)
    last = _last_good.get(template_id)
    if last is not None:
        log.warning("registry unusable for %s (%s): serving the cached %s", template_id, why,
                    last.source)
        return Resolved(last.config, f"fallback:{why}; cached {last.source}", time.time())
    path = _disk_cache(template_id)
    try:
        stored = json.loads(path.read_text())
        config = SolverConfig.from_dict(stored["config"])
        log.warning("registry unusable for %s (%s): serving the last good set on disk, %s",
                    template_id, why, stored["source"])
        return Resolved(config, f"fallback:{why}; disk {stored['source']}", time.time())
    except (OSError, ValueError, KeyError, InputError):
        log.warning("registry unusable for %s (%s): serving CP-SAT defaults", template_id, why)
        return Resolved(SolverConfig(), f"fallback:{why}; defaults", time.time())


def _remember(template_id: str, resolved: Resolved) -> None:
    path = _disk_cache(template_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"source": resolved.source,
                                   "config": resolved.config.to_dict()}))
        tmp.replace(path)
    except OSError as exc:  # a read-only disk must not fail the solve
        log.warning("cannot write the last-good cache %s: %s", path, exc)


def get_solver_config(template_id: str) -> Resolved:
    """The configuration to solve ``template_id`` with, and where it came from."""
    with _lock:
        cached = _cache.get(template_id)
        if cached is not None and not cached.expired:
            return cached
    if cached is None:
        import mlflow  # noqa: F401 - seconds, once per process: not the registry's wait
    with _lock:
        cached = _cache.get(template_id)
        if cached is not None and not cached.expired:
            return cached
        future = _refresh_in_flight(template_id)
    if cached is not None:
        return cached  # stale while the refresh runs
    budget = budget_seconds()
    try:
        return future.result(timeout=budget)
    except FutureTimeout:
        resolved = _fallback(template_id, f"registry slow (no answer within {budget:g} s)")
        with _lock:  # unless the refresh has landed meanwhile
            return _cache.setdefault(template_id, resolved)


def refresh(template_id: str) -> Resolved:
    """Ask the registry now and wait for the answer (health checks, tests); what it finds
    is served from then on."""
    with _lock:
        future = _refresh_in_flight(template_id)
    return future.result()


def wait_for_refreshes(timeout: float | None = None) -> None:
    """Wait until the background refreshes running now, and the registry observations they
    queued, have landed (tests, benchmarks)."""
    with _lock:
        running = list(_refreshing.values())
    for future in running:
        future.result(timeout=timeout)
    with _lock:
        pending = list(_observations)
    for future in pending:
        future.result(timeout=timeout)


def _refresh_in_flight(template_id: str) -> Future:
    """The template's running refresh, or a new one (call with ``_lock`` held): at most one
    registry query per template at a time."""
    future = _refreshing.get(template_id)
    if future is None:
        future = _refreshing[template_id] = _refresher.submit(_refresh, template_id)
        future.add_done_callback(_report_bug)
    return future


def _refresh(template_id: str) -> Resolved:
    """One registry query for the template; its answer (or fallback) becomes the entry."""
    try:
        try:
            resolved = _from_registry(template_id)
        except InputError as exc:
            resolved = _fallback(template_id, f"invalid parameter set ({exc.problems[0]})")
        except registry_errors() as exc:
            from fresh_solver.registry.registry import registry_failure

            resolved = _fallback(template_id, registry_failure(exc))
        else:
            if resolved.source.startswith("registry:"):
                _remember(template_id, resolved)
        with _lock:
            if resolved.source.startswith("registry:"):
                _last_good[template_id] = resolved
            _cache[template_id] = resolved
        return resolved
    finally:
        with _lock:
            _refreshing.pop(template_id, None)


def _report_bug(future: Future) -> None:
    """A refresh that raised is a bug of ours (registry faults become fallbacks): say so even
    when nobody waits for it; a waiting caller gets the exception as well."""
    exc = future.exception()
    if exc is not None:
        log.error("refreshing production parameters failed", exc_info=exc)


def get_solver_parameters(template_id: str) -> dict[str, Any]:
    """The seed document's API: the CP-SAT parameters of the served set, as a dict."""
    return dict(get_solver_config(template_id).config.cp_sat)


def solve(problem: Problem, template_id: str | None = None, *, time_limit: float = 10.0,
          seed: int = 0, model: str = "template"):
    """Solve with the Production parameters of ``template_id`` (default: the problem's only
    template). Never fails because of the registry."""
    from fresh_solver.solver import solve as solve_problem

    if template_id is None:
        if len(problem.templates) != 1:
            raise InputError("this problem has several templates: name one with template_id")
        template_id = problem.templates[0].id
    resolved = get_solver_config(template_id)
    result = solve_problem(problem, model=model, options=resolved.config.model,
                           params=resolved.config.cp_sat, time_limit=time_limit, seed=seed,
                           params_source=resolved.source)
    record_solve(problem, template_id, result)
    return result


_ORTOOLS_VERSION = importlib.metadata.version("ortools")


def record_solve(problem: Problem, template_id: str, result) -> None:
    """Buffer one production solve for the operations store (returns at once)."""
    import resource

    from fresh_solver.operations.monitor import SolveRecord

    monitor = _monitor()
    if monitor is None:
        return
    source = result.params_source
    version = source.rsplit("/", 1)[1] if "registry:" in source else None
    record = SolveRecord(
        template_id=template_id, status=result.status, solve_time_s=result.wall_time_s,
        params_source=source, version=version, jobs=len(problem.jobs),
        tasks=problem.num_tasks, objective=result.objective, best_bound=result.best_bound,
        build_time_s=result.build_time_s, fallback=source.startswith("fallback:"),
        # The process's peak so far (Linux: KiB): what the host had to provide.
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        ortools_version=_ORTOOLS_VERSION)
    monitor.record(record)
    if os.environ.get("FRESH_SOLVER_MLFLOW_PER_SOLVE") == "1":
        _log_solve_run(record)


_mlflow_logger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fresh-solver-mlflow")
_mlflow_backlog = [0]  # runs queued, not yet logged
MAX_MLFLOW_BACKLOG = 1000


def _log_solve_run(record) -> None:
    """Per-solve MLflow run (``FRESH_SOLVER_MLFLOW_PER_SOLVE=1``), logged in the background;
    beyond a backlog of MAX_MLFLOW_BACKLOG runs, solves are not logged (the store has them)."""
    from fresh_solver.operations.rollup import log_solve_run

    with _lock:
        if _mlflow_backlog[0] >= MAX_MLFLOW_BACKLOG:
            return
        _mlflow_backlog[0] += 1

    def log_one() -> None:
        try:
            log_solve_run(record)
        except registry_errors() as exc:
            log.warning("per-solve MLflow run not logged: %s", exc)
        finally:
            with _lock:
                _mlflow_backlog[0] -= 1

    _mlflow_logger.submit(log_one)


def wait_for_solve_runs(timeout: float = 60.0) -> bool:
    """Wait until the per-solve MLflow runs queued so far are logged (tests, benchmarks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _lock:
            if _mlflow_backlog[0] == 0:
                return True
        time.sleep(0.01)
    return False
