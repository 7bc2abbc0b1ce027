"""Build a model, solve it with CP-SAT, and report what happened and when.

Times are measured from before the model is built, for both models, so the template model's
extra work (analysing templates, the greedy warm start) is paid for in every figure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ortools.sat.python import cp_model

from fresh_solver.choices import MODELS
from fresh_solver.model import Assignment, Problem, Schedule
from fresh_solver.params import apply_parameters
from fresh_solver.params.options import ModelOptions
from fresh_solver.params.workers import effective_workers
from fresh_solver.solver.baseline import build_baseline_model
from fresh_solver.solver.built import BuiltModel
from fresh_solver.solver.checker import check_schedule
from fresh_solver.solver.template_model import build_template_model

log = logging.getLogger("fresh_solver.solver")


@dataclass
class SolveResult:
    """Everything one solve tells us. ``improvements`` lists (seconds, objective) pairs."""

    status: str
    objective: int | None
    best_bound: float | None
    wall_time_s: float
    build_time_s: float
    time_to_first_s: float | None
    time_to_best_s: float | None
    improvements: list[tuple[float, int]]
    num_workers: int
    model: str
    model_size: dict[str, int]
    stats: dict[str, float]
    schedule: Schedule | None
    violations: list[str] | None = None
    params_source: str = "defaults"
    options: dict[str, bool] = field(default_factory=dict)
    # CP-SAT's own objective value; above ``objective`` when a FEASIBLE stop left slack in an
    # objective variable (weighted tardiness), else equal.
    cp_sat_objective: int | None = None

    @property
    def solved(self) -> bool:
        return self.status in ("OPTIMAL", "FEASIBLE")

    @property
    def optimal(self) -> bool:
        return self.status == "OPTIMAL"

    @property
    def gap(self) -> float | None:
        if self.objective is None or self.best_bound is None:
            return None
        return abs(self.objective - self.best_bound) / max(1.0, abs(self.objective))

    @property
    def valid(self) -> bool | None:
        """The independent checker's verdict; None when there is no schedule to check."""
        return None if self.violations is None else not self.violations

    def time_to(self, target: int) -> float | None:
        """When the incumbent first reached ``target`` (minimisation), or None."""
        return next((t for t, obj in self.improvements if obj <= target), None)

    def summary(self) -> dict[str, Any]:
        """The `solve --json` object (DESIGN §5) plus the measurement context."""
        return {
            "status": self.status,
            "objective": self.objective,
            "cp_sat_objective": self.cp_sat_objective,
            "best_bound": self.best_bound,
            "gap": self.gap,
            "wall_time_s": round(self.wall_time_s, 4),
            "time_to_first_s": _round(self.time_to_first_s),
            "time_to_best_s": _round(self.time_to_best_s),
            "params_source": self.params_source,
            "valid": self.valid,
            "model": self.model,
            "options": self.options,
            "num_workers": self.num_workers,
            "build_time_s": round(self.build_time_s, 4),
            "model_size": self.model_size,
            "stats": self.stats,
            "improvements": [[round(t, 4), obj] for t, obj in self.improvements],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class _Recorder(cp_model.CpSolverSolutionCallback):
    """Records every improving solution, valued by what its schedule scores (not CP-SAT's
    objective value, which may carry slack); optionally stops once a target is reached."""

    def __init__(self, t0: float, built: BuiltModel, stop_at: int | None,
                 on_improvement: Callable[[float, int], None] | None):
        super().__init__()
        self.built = built
        self.t0 = t0
        self.stop_at = stop_at
        self.on_improvement = on_improvement
        self.improvements: list[tuple[float, int]] = []

    def on_solution_callback(self) -> None:
        value = self.built.solution_objective(self.value)
        if not self.improvements or value < self.improvements[-1][1]:
            self.improvements.append((time.perf_counter() - self.t0, value))
            if self.on_improvement:
                self.on_improvement(*self.improvements[-1])
        if self.stop_at is not None and value <= self.stop_at:
            self.stop_search()


def build_model(problem: Problem, model: str = "template",
                options: ModelOptions | None = None) -> BuiltModel:
    if model == "baseline":
        return build_baseline_model(problem)
    if model == "template":
        return build_template_model(problem, options)
    raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")


def solve(
    problem: Problem,
    *,
    model: str = "template",
    options: ModelOptions | None = None,
    params: dict[str, Any] | None = None,
    time_limit: float = 10.0,
    seed: int = 0,
    stop_at: int | None = None,
    params_source: str = "defaults",
    check: bool = True,
    on_improvement: Callable[[float, int], None] | None = None,
) -> SolveResult:
    """Solve ``problem`` within ``time_limit`` seconds (build time included).

    ``params`` are CP-SAT parameters (validated; unknown names are refused); ``stop_at`` ends
    the search as soon as an incumbent reaches that objective (time-to-target runs);
    ``on_improvement(seconds, objective)`` is called for every better solution (progress).
    Without a ``num_workers`` in ``params`` the worker count follows the problem's shape
    (:mod:`fresh_solver.params.workers`).
    """
    params = dict(params or {})
    workers = effective_workers(params, model, problem.objective)
    options = options or ModelOptions()
    solver = cp_model.CpSolver()
    apply_parameters(solver, params)  # validates: bad parameters fail before any work
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    t0 = time.perf_counter()
    built = build_model(problem, model, options)

    def set_time_limit() -> None:
        remaining = time_limit - (time.perf_counter() - t0)
        solver.parameters.max_time_in_seconds = max(0.01, min(
            remaining, params.get("max_time_in_seconds", remaining)))

    set_time_limit()
    recorder = _Recorder(t0, built, stop_at, on_improvement)
    try:
        status = solver.solve(built.model, recorder)
    except IndexError:
        # OR-Tools 9.15 crashes ("absl::btree_map::at") on some models with a solution hint
        # (seen on tiny problems with releases). A hint is only a warm start: drop it, retry.
        if not built.model.proto.solution_hint.vars:
            raise
        log.warning("CP-SAT failed on the hinted model of %s; solving without the hint",
                    problem.name)
        built.model.clear_hints()
        set_time_limit()
        recorder = _Recorder(t0, built, stop_at, on_improvement)
        status = solver.solve(built.model, recorder)
    wall = time.perf_counter() - t0

    status_name = solver.status_name(status)
    schedule = None
    objective = best_bound = cp_sat_objective = None
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        objective = built.solution_objective(solver.value)
        cp_sat_objective = round(solver.objective_value)
        best_bound = solver.best_objective_bound
        schedule = extract_schedule(built, solver, objective)
    improvements = recorder.improvements
    stats = {
        "conflicts": solver.num_conflicts,
        "branches": solver.num_branches,
        "booleans": solver.num_booleans,
        "deterministic_time": round(solver.deterministic_time, 4),
        "solver_wall_time_s": round(solver.wall_time, 4),
        "solver_user_time_s": round(solver.user_time, 4),
    }
    return SolveResult(
        status=status_name,
        objective=objective,
        best_bound=best_bound,
        wall_time_s=wall,
        build_time_s=built.build_time_s,
        time_to_first_s=improvements[0][0] if improvements else None,
        time_to_best_s=improvements[-1][0] if improvements else None,
        improvements=improvements,
        num_workers=workers,
        model=model,
        model_size=built.size,
        stats=stats,
        schedule=schedule,
        violations=check_schedule(problem, schedule) if check and schedule else None,
        params_source=params_source,
        options=options.to_dict() if model == "template" else {},
        cp_sat_objective=cp_sat_objective,
    )


def extract_schedule(built: BuiltModel, solver: cp_model.CpSolver, objective: int) -> Schedule:
    problem = built.problem
    assignments = []
    for (j, t), task in sorted(built.tasks.items()):
        job = problem.jobs[j]
        mode = next(k for k, p in enumerate(task.presences) if solver.boolean_value(p))
        start = solver.value(task.start)
        assignments.append(Assignment(
            job=job.id,
            task=problem.template_of(job).tasks[t].id,
            machine=task.modes[mode].machine,
            start=start,
            end=start + task.modes[mode].duration,
        ))
    return Schedule(problem.name, problem.objective, objective, tuple(assignments))
