"""The peer tuner's driver, on the parts that run without cpsat-autotune: the parameter
message it builds, the project's cp_sat section it hands back, and loading a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import autotune_peer
from fresh_solver.model.generate import generate_family
from fresh_solver.params.config import SolverConfig
from fresh_solver.solver import solve
from fresh_solver.solver.solve import build_model


def test_enum_values_as_ints_become_the_projects_cp_sat_section() -> None:
    """cpsat-autotune samples enums as ints, which 9.15's solver.parameters refuses."""
    message = autotune_peer.sat_parameters(
        {"search_branching": 3, "minimization_algorithm": 0, "cp_model_presolve": False,
         "boolean_encoding_level": 3}, num_workers=4)
    assert message.num_workers == 4
    section = autotune_peer.as_cp_sat_section(autotune_peer.sat_parameters(
        {"search_branching": 3, "minimization_algorithm": 0, "cp_model_presolve": False}))
    assert section == {"search_branching": "LP_SEARCH", "minimization_algorithm": "NONE",
                       "cp_model_presolve": False}
    config = SolverConfig.from_dict({"cp_sat": section})
    result = solve(generate_family("small", 0), params=config.cp_sat, time_limit=5)
    assert result.status in ("OPTIMAL", "FEASIBLE") and not result.violations


def test_an_exported_template_model_loads_back(tmp_path: Path) -> None:
    built = build_model(generate_family("small", 0))
    path = tmp_path / "model.txt"
    built.model.export_to_file(str(path))
    loaded = autotune_peer.load_model(path)
    assert len(loaded.proto.constraints) == len(built.model.proto.constraints)
    (tmp_path / "bad.txt").write_text("not a model {")
    with pytest.raises(ValueError, match="bad.txt"):
        autotune_peer.load_model(tmp_path / "bad.txt")
