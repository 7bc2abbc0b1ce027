"""TemplateValidator: the source document's ``validate_template_comprehensive``.

    report = TemplateValidator().validate_template_comprehensive(
        template_id="bracket", job_template=problem_or_template, test_instances=10)
    report.is_production_ready   # report.errors / report.warnings say why not

The test instances are the template with 1, 2, ..., ``test_instances`` jobs (or the listed job
counts), built from ``job_template``: a :class:`~fresh_solver.model.Problem` that defines the
template, a :class:`~fresh_solver.model.Template` (its machines taken as unary), a problem file
or dict, or None (the template's default source, :mod:`fresh_solver.templates.instances`).

Checks, each on every test instance, one solve per model and seed 0, ``time_limit`` (2 s) each:

- the template model, with the set under test, returns a schedule the independent checker
  accepts, whenever the baseline model (CP-SAT defaults) finds one;
- where both models prove optimality, they agree on the objective (the template model's
  symmetry breaking and redundant bounds must not change the optimum);
- the set under test passes the statistical validation on these instances
  (:meth:`ParameterManager.validate_parameters`, 1 seed per instance), when there is a set:
  ``parameters`` (a dict, config or :class:`OptimizationResult`), else the served Production
  set; with neither, only the model checks run (a warning says so). A set tuned on some of
  these job counts is not held out from them: a warning names the overlap.

``is_production_ready`` is true when no check failed; the statistical result is kept as
``validation``, so :meth:`ParameterManager.promote_parameters` accepts the report itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fresh_solver.model import Problem, Template, load_problem, problem_from_dict
from fresh_solver.params.config import SolverConfig


@dataclass
class TemplateValidationReport:
    """What the comprehensive validation found (module docstring)."""

    template_id: str
    instances: list[str]
    is_production_ready: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    solves: list[dict[str, Any]] = field(default_factory=list)
    validation: Any = None  # ParameterValidationResult of the set under test, if any


class TemplateValidator:
    """The document's template validator (module docstring)."""

    def __init__(self, manager=None):
        from fresh_solver.templates.manager import ParameterManager

        self.manager = manager or ParameterManager()

    def validate_template_comprehensive(self, template_id: str, job_template: Any = None,
                                        test_instances: int | list[int] = 10, *,
                                        parameters: Any = None, time_limit: float = 2.0
                                        ) -> TemplateValidationReport:
        """Run every check (module docstring) and say whether the template is ready."""
        from fresh_solver.solver import solve
        from fresh_solver.templates import instances
        from fresh_solver.templates.parameters import to_config

        counts = list(range(1, test_instances + 1)) if isinstance(test_instances, int) \
            else list(test_instances)
        source = _source(template_id, job_template)
        paths = instances.instantiate(template_id, counts, source)
        errors, notes, solves = [], [], []
        config, tuned_on = self._set_under_test(template_id, parameters, notes)
        if tuned_on:
            overlap = sorted({Path(p).name for p in paths} & {Path(p).name for p in tuned_on})
            if overlap:
                notes.append(f"the set was tuned on {len(overlap)} of these instances "
                             f"({', '.join(overlap)}): they are not held out")
        check_config = config or SolverConfig()
        for path in paths:
            problem = load_problem(path)
            ours = solve(problem, model="template", options=check_config.model,
                         params=check_config.cp_sat, time_limit=time_limit)
            base = solve(problem, model="baseline", time_limit=time_limit)
            solves.append({"instance": problem.name, "template": ours.summary(),
                           "baseline": base.summary()})
            if ours.valid is False:
                errors.append(f"{problem.name}: the template model's schedule is invalid: "
                              f"{ours.violations[:2]}")
            if base.solved and not ours.solved:
                errors.append(f"{problem.name}: the baseline model found a schedule, the "
                              f"template model none ({ours.status})")
            if ours.optimal and base.optimal and ours.objective != base.objective:
                errors.append(f"{problem.name}: both models proved optimality but disagree "
                              f"({ours.objective} vs {base.objective})")
            if not ours.optimal:
                notes.append(f"{problem.name}: not proven optimal within {time_limit:g} s")
        validation = None
        if config is not None:
            validation = self.manager.validate_parameters(
                template_id, to_config(config).to_dict(), instances=paths, seeds=1,
                time_limit=time_limit)
            errors += [f"statistical validation: {e}" for e in validation.validation_errors]
            notes += validation.validation_warnings
        return TemplateValidationReport(template_id, paths, not errors, errors, notes,
                                        solves, validation)

    def _set_under_test(self, template_id: str, parameters: Any, notes: list[str]
                        ) -> tuple[SolverConfig | None, tuple[str, ...]]:
        from fresh_solver.templates.parameters import to_config

        if parameters is not None:
            config = getattr(parameters, "config", None)
            if isinstance(config, SolverConfig):  # an optimisation result
                return config, tuple(getattr(parameters, "instances", ()))
            return to_config(parameters), ()
        blessed = self.manager.registry.serving(template_id).version
        if blessed is None:
            notes.append(f"no parameter set given and none served for {template_id!r}: only "
                         "the model checks ran")
            return None, ()
        return self.manager.registry.load_config(template_id, blessed), ()


def _source(template_id: str, job_template: Any) -> Problem:
    from fresh_solver.templates import instances
    from fresh_solver.templates.solving import as_problem

    if job_template is None:
        return instances.template_source(template_id)
    if isinstance(job_template, Template):
        return _problem_of(job_template)
    return as_problem(job_template, "job_template")


def _problem_of(template: Template) -> Problem:
    """A one-job problem of ``template`` on unary machines named by its modes."""
    from fresh_solver.model.problem import FORMAT

    machines = sorted({m.machine for t in template.tasks for m in t.modes})
    return problem_from_dict({
        "format": FORMAT, "name": template.id, "machines": [{"id": m} for m in machines],
        "templates": [{"id": template.id,
                       "tasks": [{"id": t.id, "modes": [{"machine": m.machine,
                                                         "duration": m.duration}
                                                        for m in t.modes]}
                                 for t in template.tasks],
                       "precedences": [{"before": p.before, "after": p.after,
                                        "min_lag": p.min_lag} for p in template.precedences]}],
        "jobs": [{"template": template.id}]})
