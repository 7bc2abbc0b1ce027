"""A solver configuration: CP-SAT parameters plus the template model's switches.

Tuning chooses both together, and the registry stores both, so they travel as one value with
one canonical JSON form and one stable hash (its identity in MLflow):

    {"cp_sat": {"num_workers": 2, "search_branching": "FIXED_SEARCH"},
     "model": {"symmetry_breaking": true, "warm_start": false}}

A flat object of CP-SAT parameters (the `--params` file of the core) is read as ``cp_sat``
alone, with the model's default switches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.inputs import read_json
from fresh_solver.params.options import ModelOptions
from fresh_solver.params.sat import normalize_parameters

SECTIONS = ("cp_sat", "model")


@dataclass(frozen=True)
class SolverConfig:
    """A parameter set: the CP-SAT parameters it sets (the rest stay CP-SAT's defaults) and the
    template model's options. What a tuning session tries, validation judges, the registry
    versions and the loader serves; its :attr:`hash` identifies it across all of them."""

    cp_sat: dict[str, Any] = field(default_factory=dict)
    model: ModelOptions = field(default_factory=ModelOptions)

    @classmethod
    def from_dict(cls, data: Any) -> SolverConfig:
        if not isinstance(data, dict):
            raise InputError(f"a parameter set must be a JSON object, got {type(data).__name__}")
        if not set(data) & set(SECTIONS):
            return cls(normalize_parameters(data), ModelOptions())
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise InputError([f"{k}: unknown section (expected cp_sat and/or model)"
                              for k in unknown])
        problems, cp_sat, model = [], {}, ModelOptions()
        try:
            cp_sat = normalize_parameters(data.get("cp_sat", {}))
        except InputError as exc:
            problems += [f"cp_sat.{p}" for p in exc.problems]
        try:
            model = ModelOptions.from_dict(data.get("model", {}))
        except InputError as exc:
            problems += [f"model.{p}" for p in exc.problems]
        if problems:
            raise InputError(problems)
        return cls(cp_sat, model)

    @classmethod
    def from_file(cls, path: str | Path, label: str | None = None) -> SolverConfig:
        """The parameter set in a JSON file the user named; every problem is prefixed with
        ``label`` (e.g. ``--params p.json``; the path by default)."""
        label = label or str(path)
        data = read_json(path, label)
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise InputError([f"{label}: {p}" for p in exc.problems]) from None

    def to_dict(self) -> dict[str, Any]:
        return {"cp_sat": dict(sorted(self.cp_sat.items())), "model": self.model.to_dict()}

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace: equal configurations give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]
