"""What the health checks ask the registry, per registered template: is what Production
serves one consistent, loadable, validated version that was validated here?"""

from __future__ import annotations

from typing import Any

from fresh_solver.errors import InputError


def registry_verdicts() -> dict[str, dict[str, Any]]:
    """Per template: ``status`` (a health word), ``problems`` (sentences), and the served
    version's facts (``serving``, ``performance_baseline_s``, ``speedup_factor``, ...).
    Raises what the registry raises when it is unreachable."""
    from fresh_solver import tracking
    from fresh_solver.registry.registry import ParameterRegistry

    registry = ParameterRegistry(tracking.client())
    return {t: template_verdict(registry, t) for t in registry.templates()}


def template_verdict(registry, template_id: str) -> dict[str, Any]:
    """One template's verdict (see :func:`registry_verdicts`)."""
    import ortools
    from ortools.sat.python import cp_model

    from fresh_solver.fingerprint import fingerprint_id
    from fresh_solver.params.sat import apply_parameters

    decision = registry.serving(template_id)
    production = registry.production_versions(template_id)
    alias = registry.alias_version(template_id)
    facts: dict[str, Any] = {"serving": decision.version, "production_stage": production,
                             "alias": alias, "refused": list(decision.refused)}
    warnings, critical = [], []
    if decision.refused:
        warnings.append("promoted but not servable: " + "; ".join(decision.refused))
    if decision.version is None:
        (critical if decision.refused else warnings).append(
            "no servable Production version: solves use the CP-SAT defaults")
        return _verdict(facts, warnings, critical)
    if production != [decision.version] or alias != decision.version:
        warnings.append(f"Production stage {production} and alias {alias} disagree; "
                        "`fresh-solver registry reconcile` makes them one")
    version = registry.version(template_id, decision.version)
    tags = version.tags
    basis = registry.evidence(template_id, version)  # run params, not editable tags
    facts |= {"validation_status": "passed" if basis.basis == "validation" else "unvalidated",
              "override": basis.basis == "override", "evidence": basis.detail,
              "performance_baseline_s": _float(tags.get("performance_baseline_s")),
              "speedup_factor": _float(tags.get("speedup_factor")),
              "ortools_version": tags.get("ortools_version"),
              "machine_fingerprint": tags.get("machine_fingerprint")}
    try:
        config = registry.load_config(template_id, decision.version)
        apply_parameters(cp_model.CpSolver(), config.cp_sat)
    except InputError as exc:
        critical.append(f"v{decision.version} does not load on OR-Tools "
                        f"{ortools.__version__}: {exc.problems[0]}")
        return _verdict(facts, warnings, critical)
    if basis.basis == "override":
        warnings.append(f"v{decision.version} is served by an override, not a validation "
                        f"({basis.detail})")
    here = fingerprint_id()
    if _revalidated_here(tags, ortools.__version__, here):
        facts["revalidated_at"] = tags.get("revalidated_at")
        return _verdict(facts, warnings, critical)
    if tags.get("ortools_version") and tags["ortools_version"] != ortools.__version__:
        warnings.append(f"v{decision.version} was validated on OR-Tools "
                        f"{tags['ortools_version']}, this is {ortools.__version__}: re-validate")
    if tags.get("machine_fingerprint") and tags["machine_fingerprint"] != here:
        warnings.append(f"v{decision.version} was validated on machine "
                        f"{tags['machine_fingerprint']}, this is {here}: re-validate")
    return _verdict(facts, warnings, critical)


def _revalidated_here(tags: dict[str, str], ortools_version: str, machine: str) -> bool:
    """The benchmark DAG re-validated this version, passing, on this OR-Tools and machine."""
    return (tags.get("revalidation_status") == "passed"
            and tags.get("revalidated_ortools_version") == ortools_version
            and tags.get("revalidated_machine_fingerprint") == machine)


def _verdict(facts: dict[str, Any], warnings: list[str], critical: list[str]
             ) -> dict[str, Any]:
    status = "critical" if critical else "warning" if warnings else "healthy"
    return facts | {"status": status, "problems": critical + warnings}


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
