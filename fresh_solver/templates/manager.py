"""ParameterManager: the source document's validate → promote → serve, over the real parts.

    manager = ParameterManager()
    result = manager.validate_parameters("bracket", {"num_workers": 2,
                                                      "search_branching": "FIXED_SEARCH"})
    if result.is_valid:
        manager.promote_parameters("bracket", result)            # -> Staging, says how on
        manager.promote_parameters("bracket", result, approved_by="carol")  # -> Production
    params = manager.get_solver_parameters("bracket")  # setattr-ready (see .parameters)

- :meth:`~ParameterManager.validate_parameters` is the *statistical* validation the document
  means (``fresh_solver.params.validate_parameters`` stays the structural check): structural
  errors first (unknown names, bad values, a known-unsound combination: ``is_valid`` False at
  once, nothing solved), then
  :func:`fresh_solver.validation.validator.validate` against the CP-SAT defaults and the
  served Production set on held-out instances (defaults: :mod:`fresh_solver.templates.instances`),
  recorded in MLflow with the verdict as run params. ``is_valid`` is that verdict,
  ``validation_errors`` its reasons.
- :meth:`~ParameterManager.promote_parameters` never registers a set that did not pass, and
  never makes one Production without a named reviewer. The document's call has no approver:
  it then registers the version to **Staging** and says (log line and the returned
  :class:`PromotionOutcome`'s ``next_step``) how a reviewer promotes it. No approver is read
  from configuration: a name in a config file would approve every call made with it, which is
  no review at all. ``approved_by="carol"`` promotes at once, recorded as carol's.
- :meth:`~ParameterManager.get_solver_parameters` serves what the production loader serves
  (``fresh_solver.production``: cached, falls back, never fails for the registry), as a
  :class:`SolverParameters` dict the document's ``setattr`` loop accepts.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from fresh_solver.choices import AUTO_METRIC, validation_metric
from fresh_solver.cores import usable_cores
from fresh_solver.errors import InputError
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.unsound import refuse_known_unsound
from fresh_solver.templates.parameters import BlessedParameters, SolverParameters, to_config

log = logging.getLogger("fresh_solver.templates")


@dataclass
class ParameterValidationResult:
    """The document's validation result. ``speedup_factor`` is the geometric-mean speedup in
    time to target over the CP-SAT defaults on the held-out pairs (None when the set failed
    the structural check and nothing was solved); ``report`` is the full
    :class:`~fresh_solver.validation.validator.ValidationReport` (its MLflow run holds the
    verdict the registry trusts)."""

    template_id: str
    parameters: dict[str, Any]
    is_valid: bool
    speedup_factor: float | None
    validation_errors: list[str] = field(default_factory=list)
    validation_warnings: list[str] = field(default_factory=list)
    config: SolverConfig | None = None
    report: Any = None  # ValidationReport

    @property
    def run_id(self) -> str | None:
        """The validation's MLflow run (None when nothing was solved)."""
        return self.report.run_id if self.report is not None else None


@dataclass(frozen=True)
class PromotionOutcome:
    """What :meth:`ParameterManager.promote_parameters` did: the registered version, the stage
    it is in now (``Staging`` or ``Production``), who approved it, and what comes next."""

    template_id: str
    version: str
    stage: str
    approved_by: str | None
    next_step: str


class ParameterManager:
    """The document's parameter manager over the validator, registry and production loader.
    ``registry`` is a :class:`~fresh_solver.registry.registry.ParameterRegistry` (made on
    first use: MLflow's import costs seconds)."""

    def __init__(self, registry=None):
        self._registry = registry

    @property
    def registry(self):
        if self._registry is None:
            from fresh_solver.registry.registry import ParameterRegistry

            self._registry = ParameterRegistry()
        return self._registry

    # ---- validation -------------------------------------------------------------------------
    def validate_parameters(self, template_id: str, params: Any, *,
                            instances: list[str] | None = None, seeds: int | None = None,
                            time_limit: float | None = None, rule=None
                            ) -> ParameterValidationResult:
        """Structural check, then the statistical validation (module docstring).

        Defaults for what the document leaves out (:mod:`fresh_solver.templates.instances`):
        ``instances`` are the template's held-out files (its retune entry's, else 3 generated
        small instances), ``seeds`` and ``time_limit`` the entry's validation settings (else 2
        seeds, 2 s per solve), ``rule`` the entry's pass rule (else the project's
        :class:`~fresh_solver.validation.compare.PassRule`). The baseline besides the CP-SAT
        defaults is the served Production set, when one is served. The metric is the one the
        retune DAG would validate by: the entry's, or for ``auto`` chosen as the DAG chooses
        (whether the defaults prove these instances within the time limit; a note says so).
        """
        from fresh_solver.templates import instances as defaults
        from fresh_solver.validation.compare import PassRule
        from fresh_solver.validation.validator import validate

        given = dict(params) if isinstance(params, dict) else params
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                config = to_config(params)
            refuse_known_unsound(config)  # a wrong optimality claim: nothing to measure
        except InputError as exc:
            return ParameterValidationResult(template_id, given, False, None,
                                             list(exc.problems))
        notes = [str(w.message) for w in caught] + _warnings(config)
        paths, settings = (instances, defaults.settings_for(template_id)) if instances \
            else defaults.held_out(template_id)
        rule = rule or PassRule(**{k: settings[k] for k in (
            "min_speedup", "max_p_value", "min_speedup_vs_production", "quality_tolerance")})
        seed_count = seeds or settings["validation_seeds"]
        if len(paths) * seed_count < 6:
            notes.append(f"{len(paths)} instances x {seed_count} seeds: fewer than 6 pairs, "
                         "the Wilcoxon test may fail the set on its own")
        limit = time_limit or settings["validation_time_limit"]
        metric = settings["metric"]
        if metric == AUTO_METRIC:  # as the DAG chooses, on the instances this measures
            from fresh_solver.tuning.session import choose_metric

            metric, why = choose_metric(paths, limit)
            notes.append(f"metric auto (held-out instances): {why}")
        report = validate(template_id, config, tuple(paths), list(range(seed_count)),
                          limit, rule, production=self._production_config(template_id),
                          log=lambda message: log.info("validate %s: %s", template_id, message),
                          metric=validation_metric(metric))
        return ParameterValidationResult(template_id, given, report.passed,
                                         report.speedup_factor, list(report.reasons), notes,
                                         config, report)

    def _production_config(self, template_id: str) -> SolverConfig | None:
        version = self.registry.serving(template_id).version
        return self.registry.load_config(template_id, version) if version else None

    # ---- promotion --------------------------------------------------------------------------
    def promote_parameters(self, template_id: str, result: Any,
                           approved_by: str | None = None) -> PromotionOutcome:
        """Register a validated set (to Staging) and, with a named ``approved_by``, make it
        Production. ``result`` is a :class:`ParameterValidationResult`, a
        :class:`~fresh_solver.templates.validator.TemplateValidationReport` that validated a
        set, or an :class:`~fresh_solver.templates.optimizer.OptimizationResult` (validated
        here first, with :meth:`validate_parameters`' defaults). A set that did not pass is
        refused with :class:`InputError` and its reasons; nothing is registered."""
        validation = self._validation_of(template_id, result)
        if not validation.is_valid or validation.report is None:
            raise InputError([f"{template_id}: not promoting a parameter set that did not pass "
                              "validation", *validation.validation_errors])
        if validation.template_id != template_id:
            raise InputError(f"the validation is of template {validation.template_id!r}, "
                             f"not {template_id!r}")
        version = self._registered(template_id, validation)
        if approved_by is None:
            step = (f"a reviewer promotes it: fresh-solver registry promote {template_id} "
                    f"{version} --approved-by NAME (or promote_parameters(..., "
                    "approved_by=NAME), or the MLflow UI)")
            log.warning("%s v%s registered to Staging, not Production (no approver named); %s",
                        template_id, version, step)
            return PromotionOutcome(template_id, version, "Staging", None, step)
        self.registry.promote(template_id, version, approved_by, path="python")
        return PromotionOutcome(template_id, version, "Production", approved_by,
                                "served by production solves within FRESH_SOLVER_PARAMS_TTL")

    def _validation_of(self, template_id: str, result: Any) -> ParameterValidationResult:
        """The statistical validation ``result`` stands for; a template report that is not
        production-ready is refused whatever its validation says."""
        if isinstance(result, ParameterValidationResult):
            return result
        if getattr(result, "is_production_ready", True) is False:
            raise InputError([f"promote_parameters: {template_id} is not production-ready"]
                             + list(getattr(result, "errors", [])))
        validation = getattr(result, "validation", None)
        if isinstance(validation, ParameterValidationResult):
            return validation
        parameters = getattr(result, "config", None)
        if isinstance(parameters, SolverConfig):  # an optimisation result: validate it now
            return self.validate_parameters(template_id, parameters.to_dict())
        raise InputError(f"promote_parameters: expected a validation result, got "
                         f"{type(result).__name__}")

    def _registered(self, template_id: str, validation: ParameterValidationResult) -> str:
        """The version registered from this validation run (again: the same one), found by
        the version's own run id, which is fixed at creation (tags are editable)."""
        run_id = validation.report.run_id
        for mv in self.registry.versions(template_id):
            if mv.run_id == run_id:
                return str(mv.version)
        return self.registry.register(template_id, validation.config,
                                      validation.report.to_dict())

    # ---- serving ----------------------------------------------------------------------------
    def get_solver_parameters(self, template_id: str) -> SolverParameters:
        """The served set of ``template_id`` as a setattr-ready dict (module docstring)."""
        from fresh_solver import production

        resolved = production.get_solver_config(template_id)
        return SolverParameters(resolved.config, resolved.source)

    def get_blessed_parameters(self, template_id: str) -> BlessedParameters | None:
        """The served version as the document's :class:`BlessedParameters` (None when the
        registry serves no version of the template)."""
        version = self.registry.serving(template_id).version
        if version is None:
            return None
        mv = self.registry.version(template_id, version)
        return BlessedParameters.from_version(template_id, mv,
                                              self.registry.load_config(template_id, version))


def _warnings(config: SolverConfig) -> list[str]:
    """What is legal but likely not meant."""
    notes = []
    cores = usable_cores()
    workers = config.cp_sat.get("num_workers", 0)
    if workers > cores:
        notes.append(f"num_workers {workers} exceeds this machine's {cores} cores: workers "
                     "are time-sliced (measured that way here, too)")
    if "max_time_in_seconds" in config.cp_sat:
        notes.append("max_time_in_seconds is part of the set: a solve stops at the smaller of "
                     "it and the caller's time limit")
    return notes
