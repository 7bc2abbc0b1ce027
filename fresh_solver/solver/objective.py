"""Template model objectives: makespan, or weighted tardiness over jobs with a due date."""

from __future__ import annotations

from ortools.sat.python import cp_model

from fresh_solver.model import Problem
from fresh_solver.solver.built import TaskVars, sink_tasks


def add_makespan(model: cp_model.CpModel, problem: Problem,
                 tasks: dict[tuple[int, int], TaskVars], lower: int, upper: int) -> cp_model.IntVar:
    """makespan >= every job's sink ends; minimisation makes it tight (no max-equality needed)."""
    makespan = model.new_int_var(lower, max(lower, upper), "makespan")
    for j in range(len(problem.jobs)):
        for t in sink_tasks(problem, j):
            model.add(makespan >= tasks[(j, t)].end)
    model.minimize(makespan)
    return makespan


def add_weighted_tardiness(model: cp_model.CpModel, problem: Problem,
                           tasks: dict[tuple[int, int], TaskVars],
                           horizon: int) -> cp_model.LinearExprT | None:
    """Sum of weight x tardiness over jobs with a due date (None when no job has one).

    Tardiness is bounded from below only: minimisation makes it tight at an optimum, and the
    solve loop values every schedule from its task ends. Stating it exactly (a max-equality,
    as the baseline does) was tried and ended worse more often than better on generated
    weighted-tardiness mixes (issue 13's note), so it is not an option.
    """
    terms = []
    for j, job in enumerate(problem.jobs):
        if job.due is None:
            continue
        tardiness = model.new_int_var(0, horizon, f"tardiness_{j}")
        for t in sink_tasks(problem, j):
            model.add(tardiness >= tasks[(j, t)].end - job.due)
        terms.append(job.weight * tardiness)
    if not terms:  # no due dates: a feasibility problem, any schedule is optimal
        return None
    objective = sum(terms)
    model.minimize(objective)
    return objective
