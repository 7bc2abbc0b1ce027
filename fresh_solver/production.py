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
event is kept for the health checks (:func:`recent_fallbacks`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.model import Problem
from fresh_solver.params.config import SolverConfig

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


_cache: dict[str, Resolved] = {}  # what to serve until it expires
_last_good: dict[str, Resolved] = {}  # the last set the registry served, per template
_lock = threading.Lock()
_fallbacks: deque[dict[str, Any]] = deque(maxlen=100)


def ttl_seconds() -> float:
    return float(os.environ.get("FRESH_SOLVER_PARAMS_TTL", "300"))


def _disk_cache(template_id: str) -> Path:
    from fresh_solver import tracking

    return tracking.home() / "production_cache" / f"{template_id}.json"


def recent_fallbacks() -> list[dict[str, Any]]:
    """Fallbacks of this process, newest last (for health checks)."""
    return list(_fallbacks)


def clear_cache() -> None:
    """Forget everything in memory (the disk copy of the last good set stays)."""
    with _lock:
        _cache.clear()
        _last_good.clear()


def _from_registry(template_id: str) -> Resolved:
    import ortools

    from fresh_solver.registry.registry import ParameterRegistry, model_name

    registry = ParameterRegistry()
    decision = registry.serving(template_id)
    for refusal in decision.refused:
        log.error("refusing to serve %s %s; serving the previous good version",
                  model_name(template_id), refusal)
        _fallbacks.append({"template_id": template_id, "at": time.time(),
                           "why": f"refused {refusal}"})
    if decision.version is None:
        return Resolved(SolverConfig(), "defaults", time.time())
    version = registry.version(template_id, decision.version)
    config = registry.load_config(template_id, decision.version)  # validates on OR-Tools
    tagged = version.tags.get("ortools_version")
    if tagged and tagged != ortools.__version__:
        log.warning("%s v%s was validated on OR-Tools %s, this is %s",
                    model_name(template_id), decision.version, tagged, ortools.__version__)
    source = f"registry:{model_name(template_id)}/{decision.version}"
    return Resolved(config, source, time.time())


def _fallback(template_id: str, why: str) -> Resolved:
    """The last good set (memory, then disk), else the CP-SAT defaults."""
    _fallbacks.append({"template_id": template_id, "at": time.time(), "why": why})
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
        try:
            resolved = _from_registry(template_id)
        except InputError as exc:
            resolved = _fallback(template_id, f"invalid parameter set ({exc.problems[0]})")
        except Exception as exc:  # noqa: BLE001 - any registry failure falls back
            resolved = _fallback(template_id, f"registry unreachable ({type(exc).__name__})")
        else:
            if resolved.source.startswith("registry:"):
                _last_good[template_id] = resolved
                _remember(template_id, resolved)
        _cache[template_id] = resolved
        return resolved


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
    return solve_problem(problem, model=model, options=resolved.config.model,
                         params=resolved.config.cp_sat, time_limit=time_limit, seed=seed,
                         params_source=resolved.source)
