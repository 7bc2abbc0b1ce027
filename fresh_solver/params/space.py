"""Search spaces: which configuration values tuning may choose, read from a TOML file.

Each table ``[cp_sat.<parameter>]`` or ``[model.<switch>]`` declares one dimension. The file is
checked before any tuning starts: every name must exist, every bound and value must be valid
for its parameter on the installed OR-Tools, so a bad space fails fast with every problem named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.inputs import read_toml
from fresh_solver.params.config import SECTIONS, SolverConfig
from fresh_solver.params.sat import normalize_parameters

DEFAULT_SPACE = Path(__file__).with_name("default_space.toml")
# The shipped spaces by name: the default, and the demo's three knobs that mattered on the
# demo template (README: "The main job").
SHIPPED_SPACES = {"default": DEFAULT_SPACE, "demo": DEFAULT_SPACE.with_name("demo_space.toml")}
KINDS = ("integer", "real", "categorical")
# CP-SAT fields whose unset value means something other than the proto's default: an unset
# num_violation_ls runs one local-search (ls) worker when there are several workers, as 1 does,
# while an explicit 0 runs none (OR-Tools 9.15, its log's subsolver list).
UNSET_MEANS = {"num_violation_ls": 1}
# The tuner sets these itself: seeds pair the runs, the trial time limit bounds them.
RESERVED = {"random_seed": "seeds are set by --seeds", "num_search_workers": "use num_workers",
            "max_time_in_seconds": "the run time is set by --trial-time-limit"}


def _kind_mismatch(section: str, name: str, kind: str) -> str | None:
    """A range dimension must suit the field: integer ranges for integer fields (not enums,
    whose numbers have gaps), real ranges for floating-point fields."""
    if section != "cp_sat" or kind == "categorical":
        return None
    from google.protobuf.descriptor import FieldDescriptor
    from ortools.sat import sat_parameters_pb2

    field = sat_parameters_pb2.SatParameters.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        return None  # reported as an unknown name
    integer = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64,
               FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64}
    real = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}
    if kind == "integer" and field.type not in integer:
        return "an integer range needs an integer parameter; use a categorical dimension"
    if kind == "real" and field.type not in real:
        return "a real range needs a floating-point parameter"
    return None


@dataclass(frozen=True)
class Dimension:
    section: str  # "cp_sat" or "model"
    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    prior: str = "uniform"
    values: tuple[Any, ...] = ()

    @property
    def key(self) -> str:
        """The dimension's name in skopt and MLflow: ``cp_sat.num_workers``."""
        return f"{self.section}.{self.name}"

    def to_skopt(self):
        from skopt.space import Categorical, Integer, Real

        if self.kind == "integer":
            return Integer(int(self.low), int(self.high), name=self.key)
        if self.kind == "real":
            return Real(self.low, self.high, prior=self.prior, name=self.key)
        return Categorical(list(self.values), name=self.key)

    def candidates(self) -> list[Any]:
        """Values that must each be valid: the ends of a range, or every category."""
        return [self.low, self.high] if self.kind != "categorical" else list(self.values)


@dataclass(frozen=True)
class SearchSpace:
    """What a tuning session may change: one dimension per CP-SAT parameter or model option,
    with its range or values, read from a TOML file (``source``)."""

    dimensions: tuple[Dimension, ...]
    source: str

    def to_skopt(self) -> list:
        return [d.to_skopt() for d in self.dimensions]

    def config(self, point: list[Any], base: SolverConfig | None = None) -> SolverConfig:
        """The configuration at a point of the space, over ``base`` (defaults otherwise)."""
        data = (base or SolverConfig()).to_dict()
        for dim, value in zip(self.dimensions, point):
            data[dim.section][dim.name] = plain_value(value)
        return SolverConfig.from_dict(data)

    def point_of(self, config: SolverConfig, objective: str) -> list[Any] | None:
        """The point of the space that runs exactly as ``config`` does on the template model
        of problems with ``objective`` (CP-SAT parameters it leaves unset at their defaults,
        ``num_workers`` unset as the count the problem's shape gets here), or None when one of
        its values lies outside the space. The tuner tells the optimiser the
        reference's score there, so the search starts from the defaults instead of from
        nothing."""
        from ortools.sat import sat_parameters_pb2

        from fresh_solver.params.workers import effective_workers

        defaults = sat_parameters_pb2.SatParameters()
        switches = config.model.to_dict()
        point: list[Any] = []
        for dim in self.dimensions:
            if dim.section == "model":
                value = switches[dim.name]
            elif dim.name == "num_workers":
                value = effective_workers(config.cp_sat, "template", objective)
            elif dim.name in config.cp_sat:
                value = config.cp_sat[dim.name]
            elif dim.name in UNSET_MEANS:
                value = UNSET_MEANS[dim.name]
            else:
                field = defaults.DESCRIPTOR.fields_by_name[dim.name]
                value = getattr(defaults, dim.name)
                if field.enum_type is not None:
                    value = field.enum_type.values_by_number[value].name
            if dim.kind == "categorical":
                # compared in normalised form: a space may list an enum by number
                inside = any(value == v and type(value) is type(v)
                             for v in (_normalized(dim, v) for v in dim.values))
            else:
                inside = dim.low <= value <= dim.high
            if not inside:
                return None
            point.append(value)
        return point

    def as_dict(self) -> dict[str, Any]:
        return {d.key: {"kind": d.kind, "low": d.low, "high": d.high, "prior": d.prior,
                        "values": list(d.values)} for d in self.dimensions}


def _normalized(dim: Dimension, value: Any) -> Any:
    """A category as configurations hold it (enum names, protobuf's number types)."""
    return normalize_parameters({dim.name: value})[dim.name] if dim.section == "cp_sat" else value


def plain_value(value: Any) -> Any:
    """numpy scalars from skopt into plain Python values (JSON, protobuf)."""
    return value.item() if hasattr(value, "item") else value


def _dimension(path: str, section: str, name: str, raw: Any, problems: list[str]):
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a table with 'kind'")
        return None
    kind = raw.get("kind")
    if kind not in KINDS:
        problems.append(f"{path}.kind: must be one of {', '.join(KINDS)}, got {kind!r}")
        return None
    allowed = {"kind", "values"} if kind == "categorical" else {"kind", "low", "high", "prior"}
    problems += [f"{path}.{k}: not used by a {kind} dimension" for k in sorted(set(raw) - allowed)]
    if kind == "categorical":
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            problems.append(f"{path}.values: must be a non-empty list")
            return None
        return Dimension(section, name, kind, values=tuple(values))
    low, high = raw.get("low"), raw.get("high")
    number = int if kind == "integer" else (int, float)
    for key, value in (("low", low), ("high", high)):
        if not isinstance(value, number) or isinstance(value, bool):
            what = "an integer" if kind == "integer" else "a number"
            problems.append(f"{path}.{key}: must be {what}")
            return None
    if low >= high:
        problems.append(f"{path}: low ({low}) must be below high ({high})")
        return None
    prior = raw.get("prior", "uniform")
    if kind == "real" and prior not in ("uniform", "log-uniform"):
        problems.append(f"{path}.prior: must be 'uniform' or 'log-uniform', got {prior!r}")
        return None
    if prior == "log-uniform" and low <= 0:
        problems.append(f"{path}: a log-uniform range needs low > 0")
        return None
    return Dimension(section, name, kind, float(low) if kind == "real" else low,
                     float(high) if kind == "real" else high, prior)


def load_space(path: str | Path | None = None) -> SearchSpace:
    """A search space from a TOML file, or a shipped one by name (``default``, ``demo``);
    every bad dimension is named at once."""
    path = SHIPPED_SPACES.get(str(path), Path(path)) if path else DEFAULT_SPACE
    data = read_toml(path)
    problems: list[str] = []
    dims: list[Dimension] = []
    for section in sorted(set(data) - set(SECTIONS)):
        problems.append(f"{section}: unknown section (expected cp_sat and/or model)")
    for section in SECTIONS:
        for name, raw in data.get(section, {}).items():
            path_ = f"{section}.{name}"
            if section == "cp_sat" and name in RESERVED:
                problems.append(f"{path_}: not tunable ({RESERVED[name]})")
                continue
            dim = _dimension(path_, section, name, raw, problems)
            if dim is None:
                continue
            if (why := _kind_mismatch(section, name, dim.kind)) is not None:
                problems.append(f"{path_}: {why}")
                continue
            for value in dim.candidates():  # every end and category must be a valid setting
                try:
                    SolverConfig.from_dict({section: {name: value}})
                except InputError as exc:
                    problems += exc.problems
                    break
            dims.append(dim)
    if not dims and not problems:
        problems.append("the space has no dimensions")
    if problems:
        raise InputError([f"{path}: {p}" for p in problems])
    return SearchSpace(tuple(dims), str(path))
