"""Known-unsound combinations: CP-SAT settings that proved a wrong optimum, kept as data.

CP-SAT itself can be wrong under some parameter combinations (DESIGN §9): OR-Tools 9.15.6755
proves makespan 108 on a family whose optimum is 105 with ``symmetry_level: 4`` and
``use_strong_propagation_in_disjunctive: true`` on the template model without its own symmetry
breaking. An answer labelled OPTIMAL is a promise to the caller, so a configuration holding a
known combination is refused wherever parameters are applied — ``solve --params``,
validation, the registry's serving decision (and so the production loader) and the tuner's
search space — with the combination and its case named.

The combinations live in ``known_unsound.toml`` beside this module, each with the OR-Tools
versions it was seen on and a case (``unsound_cases/``) that reproduces it; the soundness sweep
(``benchmarks.soundness_sweep``) finds new ones.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fresh_solver.errors import InputError
from fresh_solver.inputs import read_toml

if TYPE_CHECKING:
    from fresh_solver.params.config import SolverConfig

KNOWN_UNSOUND = Path(__file__).with_name("known_unsound.toml")
CASES = Path(__file__).with_name("unsound_cases")


@dataclass(frozen=True)
class UnsoundCombination:
    """Settings that together made CP-SAT prove a wrong optimum on ``case``."""

    id: str
    cp_sat: dict[str, Any]  # normalised (enum names), as configurations hold them
    model: dict[str, bool]  # template-model switches; empty: any model
    seen_on: tuple[str, ...]
    fixed_in: tuple[str, ...]
    case: str
    shows: str

    def matches(self, config: SolverConfig, model: str = "template") -> bool:
        """Whether ``config`` runs with every setting of the combination. Model switches
        only exist on the template model, so a combination that names some cannot match a
        baseline solve."""
        if self.model and model != "template":
            return False
        switches = config.model.to_dict()
        return (all(switches.get(k) == v for k, v in self.model.items())
                and all(_effective(config.cp_sat, k) == v for k, v in self.cp_sat.items()))

    def describe(self) -> str:
        settings = [f"{k}={_text(v)}" for k, v in self.cp_sat.items()]
        settings += [f"model.{k}={_text(v)}" for k, v in self.model.items()]
        return (f"known unsound combination {self.id!r} ({', '.join(settings)}): "
                f"{self.shows} on OR-Tools {', '.join(self.seen_on)}")

    def load_case(self) -> dict[str, Any]:
        """The case that shows it: ``problem``, ``config``, ``feasible``, ``claimed``, ``seed``."""
        return json.loads((CASES / self.case).read_text())


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _effective(cp_sat: dict[str, Any], name: str) -> Any:
    """The value a CP-SAT parameter runs with: the set one, else the installed default."""
    from ortools.sat import sat_parameters_pb2

    from fresh_solver.params.space import UNSET_MEANS

    if name in cp_sat:
        return cp_sat[name]
    if name in UNSET_MEANS:
        return UNSET_MEANS[name]
    defaults = sat_parameters_pb2.SatParameters()
    field = defaults.DESCRIPTOR.fields_by_name[name]
    value = getattr(defaults, name)
    return field.enum_type.values_by_number[value].name if field.enum_type else value


def ortools_version() -> str:
    return importlib.metadata.version("ortools")


def known_unsound() -> tuple[UnsoundCombination, ...]:
    """Every recorded combination: the shipped list, or the file ``FRESH_SOLVER_KNOWN_UNSOUND``
    names instead (a copy with combinations a local sweep found, before they ship)."""
    return _load(Path(os.environ.get("FRESH_SOLVER_KNOWN_UNSOUND") or KNOWN_UNSOUND))


@cache
def _load(path: Path) -> tuple[UnsoundCombination, ...]:
    from fresh_solver.params.sat import normalize_parameters

    entries = read_toml(path, f"known-unsound list {path}").get("combination", [])
    return tuple(UnsoundCombination(
        id=e["id"], cp_sat=normalize_parameters(e.get("cp_sat", {})),
        model=dict(e.get("model", {})), seen_on=tuple(e["seen_on"]),
        fixed_in=tuple(e.get("fixed_in", ())), case=e["case"], shows=e["shows"])
        for e in entries)


def unsound_match(config: SolverConfig, model: str = "template") -> UnsoundCombination | None:
    """The first known combination ``config`` holds on the installed OR-Tools, or None."""
    installed = ortools_version()
    return next((c for c in known_unsound() if installed not in c.fixed_in
                 and c.matches(config, model)), None)


def refuse_known_unsound(config: SolverConfig, model: str = "template",
                         where: str = "the parameter set") -> None:
    """InputError naming the combination when ``config`` holds a known-unsound one."""
    found = unsound_match(config, model)
    if found is not None:
        raise InputError(f"{where}: refused, {found.describe()} (case "
                         f"fresh_solver/params/unsound_cases/{found.case})")
