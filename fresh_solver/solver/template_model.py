"""The template model: the plain formulation plus what identical jobs allow.

Variables are stamped from each template (`variables`), the scheduling rules and the optional
strengths are added (`constraints`), then the objective (`objective`). Each strength is switched
by :class:`ModelOptions` so its effect can be measured alone.
"""

from __future__ import annotations

import time

from ortools.sat.python import cp_model

from fresh_solver.model import Problem
from fresh_solver.params.options import ModelOptions
from fresh_solver.solver.built import BuiltModel, TaskVars
from fresh_solver.solver.constraints import (
    add_machine_resources,
    add_precedences,
    add_redundant_makespan_bounds,
    add_redundant_tardiness_bound,
    add_search_strategy,
    add_symmetry_breaking,
    interchangeable_groups,
    ordering_task,
)
from fresh_solver.solver.heuristic import Placement, greedy_schedule, placement_objective
from fresh_solver.solver.objective import add_makespan, add_weighted_tardiness
from fresh_solver.solver.tardiness_dispatch import tardiness_dispatch
from fresh_solver.solver.variables import add_task_variables


def build_template_model(problem: Problem, options: ModelOptions | None = None) -> BuiltModel:
    """The template model of ``problem`` with the strengths ``options`` switch on."""
    options = options or ModelOptions()
    t0 = time.perf_counter()
    model = cp_model.CpModel()
    horizon = problem.horizon
    warm = warm_start(problem, options) if uses_hint(problem, options) else None
    warm_makespan = (placement_objective(problem, warm)
                     if warm is not None and problem.objective == "makespan" else None)
    if warm_makespan is not None:
        horizon = min(horizon, warm_makespan)

    tasks = add_task_variables(model, problem, horizon)
    add_precedences(model, problem, tasks)
    add_machine_resources(model, problem, tasks)
    if options.symmetry_breaking:
        add_symmetry_breaking(model, problem, tasks)

    if problem.objective == "makespan":
        lower = max(job.release + problem.template_of(job).critical_path for job in problem.jobs)
        makespan = add_makespan(model, problem, tasks, lower, horizon)
        if options.redundant_bounds:
            add_redundant_makespan_bounds(model, problem, tasks, makespan)
        if warm_makespan is not None:
            model.add_hint(makespan, warm_makespan)
    else:
        weighted_tardiness = add_weighted_tardiness(model, problem, tasks, horizon)
        if options.redundant_bounds and weighted_tardiness is not None:
            add_redundant_tardiness_bound(model, problem, weighted_tardiness)
    if options.search_strategy:
        add_search_strategy(model, problem, tasks)
    if warm is not None:
        add_hints(model, tasks, warm)
    return BuiltModel("template", problem, model, tasks, time.perf_counter() - t0)


def uses_hint(problem: Problem, options: ModelOptions) -> bool:
    """Whether the model is hinted: ``warm_start`` on makespan, ``tardiness_hint`` on
    weighted tardiness."""
    return options.warm_start if problem.objective == "makespan" else options.tardiness_hint


def warm_start(problem: Problem, options: ModelOptions) -> dict[tuple[int, int], Placement]:
    """The hint: the dispatching schedule by weighted tardiness index when that is the
    objective, else the makespan greedy; its interchangeable jobs relabelled to satisfy
    symmetry breaking."""
    if problem.objective == "weighted_tardiness":
        placements = tardiness_dispatch(problem)
    else:
        placements = greedy_schedule(problem)
    if not options.symmetry_breaking:
        return placements
    for group in interchangeable_groups(problem):
        t = ordering_task(problem, group[0])
        if t is None:
            continue
        n_tasks = len(problem.template_of(problem.jobs[group[0]]).tasks)
        by_start = sorted(group, key=lambda j: (placements[(j, t)].start, j))
        rows = {j: [placements[(j, k)] for k in range(n_tasks)] for j in group}
        for target, source in zip(group, by_start):
            for k in range(n_tasks):
                placements[(target, k)] = rows[source][k]
    return placements


def add_hints(model: cp_model.CpModel, tasks: dict[tuple[int, int], TaskVars],
               placements: dict[tuple[int, int], Placement]) -> None:
    """Hint every task's start and mode from a placement (CP-SAT's solution hint)."""
    for key, task in tasks.items():
        placement = placements[key]
        model.add_hint(task.start, placement.start)
        if len(task.presences) > 1:
            for k, presence in enumerate(task.presences):
                model.add_hint(presence, k == placement.mode)
