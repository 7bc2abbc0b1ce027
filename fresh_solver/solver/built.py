"""What a model builder hands to the solve loop: the CP-SAT model and its handles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from ortools.sat.python import cp_model

from fresh_solver.model import Mode, Problem


@dataclass(frozen=True)
class TaskVars:
    """The variables of one (job, task). ``presences[k]`` is True when mode ``k`` is chosen
    (the constant True for a single-mode task)."""

    start: cp_model.IntVar
    end: cp_model.LinearExprT
    modes: tuple[Mode, ...]
    presences: tuple[cp_model.LiteralT, ...]
    intervals: tuple[cp_model.IntervalVar, ...]


@dataclass(frozen=True)
class BuiltModel:
    """A CP-SAT model built for a problem, with the variables of every (job, task), so that a
    solution can be read back as a :class:`~fresh_solver.model.schedule.Schedule` and the
    objective recomputed from it."""

    kind: str  # "template" or "baseline"
    problem: Problem
    model: cp_model.CpModel
    tasks: dict[tuple[int, int], TaskVars]  # keyed by (job index, task index)
    build_time_s: float

    @cached_property
    def job_ends(self) -> tuple[tuple[cp_model.LinearExprT, ...], ...]:
        """Per job, the end expressions of its sink tasks (the job ends with the last)."""
        return tuple(tuple(self.tasks[(j, t)].end for t in sink_tasks(self.problem, j))
                     for j in range(len(self.problem.jobs)))

    def solution_objective(self, value) -> int:
        """The objective of the solution ``value`` reads (a solver's or a callback's
        ``value``), from its task ends: what the returned schedule really scores. CP-SAT's
        objective value can be higher on a FEASIBLE stop (tardiness is only bounded from
        below), never lower."""
        return objective_of(self.problem, [max(value(end) for end in job)
                                           for job in self.job_ends])

    @property
    def size(self) -> dict[str, int]:
        proto = self.model.proto
        return {"variables": len(proto.variables), "constraints": len(proto.constraints)}


def objective_of(problem: Problem, job_ends: Sequence[int]) -> int:
    """The problem's objective when job ``j`` ends at ``job_ends[j]``: one definition for the
    solve loop and the warm starts (the independent checker keeps its own, on purpose)."""
    if problem.objective == "makespan":
        return max(job_ends, default=0)
    return sum(job.weight * max(0, end - job.due)
               for job, end in zip(problem.jobs, job_ends) if job.due is not None)


def sink_tasks(problem: Problem, job_index: int) -> list[int]:
    """Tasks of a job that nothing follows: the job ends when the last of them ends."""
    template = problem.template_of(problem.jobs[job_index])
    befores = {p.before for p in template.precedences}
    return [i for i, t in enumerate(template.tasks) if t.id not in befores]
