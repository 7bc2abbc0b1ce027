"""Parameter values the source document's code can hand to OR-Tools as written, and the
document's ``BlessedParameters`` read from the registry.

The document configures a solver with ``setattr(solver.parameters, name, value)``. On OR-Tools
9.15 ``solver.parameters`` is a pybind object: numbers and booleans set fine, but an enum field
accepts only its pybind enum member (``'FIXED_SEARCH'`` and the enum's number both raise
``TypeError``). :func:`setattr_ready` turns every enum value (name or number) into that member
(``SatParameters.SearchBranching.FIXED_SEARCH``), found by the protobuf descriptor's enum name
on ``cp_model_helper.SatParameters``; :func:`plain_parameters` turns such a dict back into the
JSON form the rest of the project stores. :class:`SolverParameters` is the dict the facade
returns: the CP-SAT parameters, setattr-ready, plus the model switches and where the set came
from (the switches configure the template model, not ``solver.parameters``, so they are not
keys of the dict).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ortools.sat import sat_parameters_pb2
from ortools.sat.python import cp_model_helper

from fresh_solver.params.config import SolverConfig
from fresh_solver.params.options import ModelOptions
from fresh_solver.params.sat import normalize_parameters

_FIELDS = sat_parameters_pb2.SatParameters.DESCRIPTOR.fields_by_name


def _pybind_enum(name: str):
    """The pybind enum class of the field ``name``, or None when it is not an enum field
    (or a repeated one, which setattr cannot set anyway)."""
    field = _FIELDS.get(name)
    if field is None or field.enum_type is None:
        return None
    return getattr(cp_model_helper.SatParameters, field.enum_type.name, None)


_ENUM_TYPES = tuple({kind for kind in map(_pybind_enum, _FIELDS) if kind is not None})


def setattr_ready(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` (validated, deprecated names mapped) with enum values as the pybind enum
    members that ``setattr(solver.parameters, name, value)`` accepts on OR-Tools 9.15."""
    ready = {}
    for name, value in normalize_parameters(plain_parameters(params)).items():
        kind = _pybind_enum(name)
        ready[name] = value if kind is None else kind.__members__[value]
    return ready


def plain_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Enum members back to their names: the JSON form the registry and validation read."""
    return {name: value.name if isinstance(value, _ENUM_TYPES) else value
            for name, value in params.items()}


class SolverParameters(dict):
    """The CP-SAT parameters of a set, setattr-ready (see the module docstring), with the
    set's model switches (``model_options``), its :class:`SolverConfig` and its ``source``
    (``registry:<model>/<version>``, ``fallback:<why>``, ``defaults``, ``given``)."""

    def __init__(self, config: SolverConfig, source: str = "given"):
        super().__init__(setattr_ready(config.cp_sat))
        self.config = config
        self.model_options: ModelOptions = config.model
        self.source = source


def to_config(params: Any) -> SolverConfig:
    """A :class:`SolverConfig` from what a user may hold: a :class:`SolverParameters`, a
    config, ``{"cp_sat": ..., "model": ...}`` or a flat dict of CP-SAT parameters (enum
    members or names)."""
    if isinstance(params, SolverParameters):  # as edited since (the document edits dicts)
        return SolverConfig.from_dict({"cp_sat": plain_parameters(dict(params)),
                                       "model": params.model_options.to_dict()})
    if isinstance(params, SolverConfig):
        return params
    if isinstance(params, dict) and "cp_sat" in params:
        return SolverConfig.from_dict({**params, "cp_sat": plain_parameters(params["cp_sat"])})
    return SolverConfig.from_dict(plain_parameters(params) if isinstance(params, dict)
                                  else params)


@dataclass(frozen=True)
class BlessedParameters:
    """The document's blessed set, read from a registry version (its tags are strings there,
    parsed here). ``approved_by`` is None until a reviewer promotes the version;
    ``performance_baseline`` (seconds, geometric mean of the validated time to target) and
    ``validation_date`` are None for a version registered without validation."""

    template_id: str
    parameters: dict[str, Any]
    performance_baseline: float | None
    validation_date: datetime | None
    approved_by: str | None
    speedup_factor: float = 1.0
    version: str | None = None
    stage: str | None = None
    model_options: dict[str, bool] | None = None

    @classmethod
    def from_version(cls, template_id: str, mv, config: SolverConfig) -> BlessedParameters:
        """From an MLflow ``ModelVersion`` and the set its ``parameters.json`` holds."""
        tags = mv.tags or {}
        return cls(template_id=template_id, parameters=dict(config.cp_sat),
                   performance_baseline=_number(tags.get("performance_baseline_s")),
                   validation_date=_date(tags.get("validated_at")),
                   approved_by=tags.get("approved_by") or None,
                   speedup_factor=_number(tags.get("speedup_factor")) or 1.0,
                   version=str(mv.version), stage=mv.current_stage,
                   model_options=config.model.to_dict())


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:  # a tag edited by hand in the UI: readable, not trusted
        return None


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
