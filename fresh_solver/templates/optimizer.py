"""TemplateOptimizer: the source document's optimisation calls over the real tuner and the
template model's own symmetry breaking.

``optimize_parameters(template_id, instance_counts, time_limit_seconds)`` tunes on the template
with each job count (``instance_counts=[3, 5, 10]``: the template with 3, 5 and 10 jobs, as the
benchmark reads the same words), built from the template's problem
(:func:`fresh_solver.templates.instances.template_source`: a given ``template_file``, its
retune entry, else its generated small family). ``time_limit_seconds`` is the cap of each
solve, as in the document's benchmark definition (not a total budget: the tuner's budget is
its trial count). Default budget: :data:`DEFAULT_TRIALS` (8) trials besides the CP-SAT
defaults, 1 solver seed, the project's default search space and final race (2 best trials on
2 fresh seeds; only a confirmed gain replaces the defaults). Eight trials is what an
interactive call can afford on small instances; the weekly retune runs 20.

``add_symmetry_breaking_constraints(model, variables, SymmetryBreakingConfig(...))`` adds the
template model's sound ordering of interchangeable jobs
(:func:`fresh_solver.solver.constraints.add_symmetry_breaking`) to a model built without it.
``variables`` is a :class:`~fresh_solver.solver.built.BuiltModel` (which knows its problem and
task variables), or the task-variable dict of one with ``SymmetryBreakingConfig(problem=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.model import Problem
from fresh_solver.params.config import SolverConfig
from fresh_solver.templates.parameters import SolverParameters

DEFAULT_TRIALS = 8


@dataclass(frozen=True)
class OptimizationResult:
    """A finished tuning session: the winning set (``config``; its CP-SAT part setattr-ready
    as ``parameters``), whether it beat the defaults (``tuned``), the session's MLflow run and
    summary, and the instances it tuned on. Not validated: promote it through
    :meth:`ParameterManager.promote_parameters`, which validates it on held-out instances."""

    template_id: str
    config: SolverConfig
    tuned: bool
    run_id: str
    instances: tuple[str, ...]
    summary: dict[str, Any]
    validation: Any = None  # never set here: tuning instances are not held out

    @property
    def parameters(self) -> SolverParameters:
        return SolverParameters(self.config, f"tuning:{self.run_id}")


@dataclass(frozen=True)
class SymmetryBreakingConfig:
    """How to break symmetry. ``enabled`` False adds nothing (the ablation's switch).
    ``problem`` is needed only when ``variables`` is a bare task-variable dict. The one
    strategy is the template model's (sound: it orders only jobs that are identical in
    template, release, due and weight)."""

    enabled: bool = True
    problem: Problem | None = None


class TemplateOptimizer:
    """The document's optimiser (module docstring for the defaults)."""

    def __init__(self, *, trials: int = DEFAULT_TRIALS, seeds: int = 1,
                 space: str | None = None, template_file: str | Path | None = None):
        self.trials, self.seeds, self.space = trials, seeds, space
        self.template_file = template_file

    def optimize_parameters(self, template_id: str, instance_counts: list[int],
                            time_limit_seconds: float = 60.0) -> OptimizationResult:
        """Tune ``template_id`` on the template with each of ``instance_counts`` jobs, each
        solve capped at ``time_limit_seconds``; every trial is an MLflow run."""
        from fresh_solver.templates import instances
        from fresh_solver.tuning.tuner import TuningSpec, tune

        source = instances.template_source(template_id, self.template_file)
        paths = instances.instantiate(template_id, list(instance_counts), source)
        spec = TuningSpec(template_id=template_id, instance_paths=tuple(paths),
                          trials=self.trials, trial_time_limit=float(time_limit_seconds),
                          seeds=self.seeds, space_path=self.space)
        spec.check()
        summary = tune(spec)
        return OptimizationResult(template_id, SolverConfig.from_dict(summary["best_params"]),
                                  bool(summary["tuned"]), summary["run_id"], tuple(paths),
                                  summary)

    def add_symmetry_breaking_constraints(self, model, variables,
                                          config: SymmetryBreakingConfig | None = None) -> int:
        """Add the sound ordering of interchangeable jobs to ``model``; returns the number of
        constraints added. Build the model without it (``ModelOptions(symmetry_breaking=
        False)``): ordering twice is sound, but twice the constraints."""
        from fresh_solver.solver.constraints import add_symmetry_breaking

        config = config or SymmetryBreakingConfig()
        problem, tasks = _problem_and_tasks(variables, config)
        if not config.enabled:
            return 0
        before = len(model.proto.constraints)
        add_symmetry_breaking(model, problem, tasks)
        return len(model.proto.constraints) - before


def _problem_and_tasks(variables, config: SymmetryBreakingConfig):
    if hasattr(variables, "tasks") and hasattr(variables, "problem"):
        return variables.problem, variables.tasks
    if isinstance(variables, dict) and config.problem is not None:
        return config.problem, variables
    raise InputError("variables: give the BuiltModel (build_model(...)), or its tasks dict "
                     "with SymmetryBreakingConfig(problem=...)")
