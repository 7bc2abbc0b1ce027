"""``create_solver_with_parameters``: a solver configured with a parameter set, as the source
document's workflow uses it (``solver = create_solver_with_parameters(params);
solution = solver.solve(problem_data)``).

It accepts a template id (the served Production set, through the production loader) or a set
(the dict :meth:`ParameterManager.get_solver_parameters` returns, a flat dict of CP-SAT
parameters, a ``{"cp_sat", "model"}`` dict or a :class:`SolverConfig`). The returned
:class:`ConfiguredSolver` solves a problem with the project's solve loop
(:func:`fresh_solver.solver.solve`: template model with the set's switches, the checker, the
improvement trace) and returns a :class:`SolutionResult`; its ``cp_solver`` is a plain
``CpSolver`` with the CP-SAT parameters applied, for callers with their own ``CpModel``.

``problem_data`` is a :class:`~fresh_solver.model.Problem`, a problem-v1 dict, a problem file
path, or the document's object with ``job_instances``: a :class:`ProblemData`, whose
``job_instances`` are the problem's jobs (each job an instance of a template).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ortools.sat.python import cp_model

from fresh_solver.errors import InputError
from fresh_solver.model import Problem, load_problem, problem_from_dict
from fresh_solver.templates.parameters import SolverParameters, to_config


@dataclass(frozen=True)
class ProblemData:
    """The document's ``problem_data``: a problem whose ``job_instances`` are its jobs."""

    problem: Problem

    @property
    def job_instances(self) -> tuple:
        return self.problem.jobs


def as_problem(problem_data: Any, what: str = "problem_data") -> Problem:
    """The :class:`Problem` behind any accepted form of ``problem_data`` (module docstring);
    ``what`` names the argument in the error."""
    if isinstance(problem_data, Problem):
        return problem_data
    if isinstance(problem_data, ProblemData):
        return problem_data.problem
    if isinstance(problem_data, dict):
        return problem_from_dict(problem_data)
    if isinstance(problem_data, str | Path):
        return load_problem(problem_data)
    raise InputError(f"{what}: expected a Problem, ProblemData, problem dict or file, "
                     f"got {type(problem_data).__name__}")


@dataclass(frozen=True)
class SolutionResult:
    """The document's solution: ``status`` (CP-SAT's status name), the schedule and its
    objective, what served the parameters, and the project's full
    :class:`~fresh_solver.solver.SolveResult` as ``result``."""

    template_id: str | None
    status: str
    objective: int | None
    schedule: Any
    solve_time: float
    params_source: str
    result: Any

    @property
    def is_solved(self) -> bool:
        return self.result.solved


class ConfiguredSolver:
    """A parameter set bound to the solve loop (module docstring)."""

    def __init__(self, parameters: SolverParameters, template_id: str | None = None):
        self.parameters = parameters
        self.template_id = template_id

    @property
    def cp_solver(self) -> cp_model.CpSolver:
        """A fresh ``CpSolver`` with the set's CP-SAT parameters set the document's way."""
        solver = cp_model.CpSolver()
        for name, value in self.parameters.items():
            setattr(solver.parameters, name, value)
        return solver

    def solve(self, problem_data: Any, *, time_limit: float = 10.0,
              seed: int = 0) -> SolutionResult:
        """Solve with the set (template model, its switches), checked by the checker."""
        from fresh_solver.solver import solve

        problem = as_problem(problem_data)
        config = to_config(self.parameters)  # with any edit made to the dict since
        result = solve(problem, model="template", options=config.model, params=config.cp_sat,
                       time_limit=time_limit, seed=seed, params_source=self.parameters.source)
        return SolutionResult(self.template_id, result.status, result.objective,
                              result.schedule, result.wall_time_s, result.params_source, result)


def create_solver_with_parameters(template_id_or_params: Any) -> ConfiguredSolver:
    """A :class:`ConfiguredSolver` for a template's served set (a template id) or for a given
    set (module docstring); a bad set raises :class:`InputError` naming every bad key."""
    if isinstance(template_id_or_params, str):
        from fresh_solver import production

        resolved = production.get_solver_config(template_id_or_params)
        return ConfiguredSolver(SolverParameters(resolved.config, resolved.source),
                                template_id_or_params)
    if isinstance(template_id_or_params, SolverParameters):
        return ConfiguredSolver(template_id_or_params)
    return ConfiguredSolver(SolverParameters(to_config(template_id_or_params), "given"))
