"""Validate a CP-SAT parameter dict on the installed `SatParameters` and apply it.

OR-Tools 9.15's ``solver.parameters`` is not a protobuf message, and its ``merge_text_format``
returns False instead of raising. So a dict is first parsed into the real protobuf message
(which rejects unknown names and bad enum values), then merged as text, and the return value
is checked.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format, text_format
from ortools.sat import sat_parameters_pb2

from fresh_solver.errors import InputError

if TYPE_CHECKING:  # only for annotations: cp_model loads the solver (seconds)
    from ortools.sat.python import cp_model

DEPRECATED_NAMES = {"num_search_workers": "num_workers"}


def max_workers() -> int:
    """Most workers a parameter set may ask for (FRESH_SOLVER_MAX_WORKERS, default 64)."""
    return int(os.environ.get("FRESH_SOLVER_MAX_WORKERS", "64"))


# Bounds the field's meaning implies (inclusive; None = open). The protobuf schema only knows
# types, so e.g. a negative worker count would otherwise pass.
def _bounds() -> dict[str, tuple[float | None, float | None]]:
    return {
        "num_workers": (0, max_workers()),
        "linearization_level": (0, 2),
        "symmetry_level": (0, 4),
        "cp_model_probing_level": (0, 3),
        "max_time_in_seconds": (0, None),
        "random_seed": (0, None),
    }


def _out_of_bounds(name: str, value: Any) -> str | None:
    """Checked on the parsed value, so numbers written as strings ("-1") are caught too."""
    low, high = _bounds().get(name, (0, None) if name.startswith(("num_", "max_")) else
                              (None, None))
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isnan(value):
        return "must be a number, got NaN"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # report 0, not 0.0, for what the user wrote as 0
    if name == "max_time_in_seconds" and value <= 0:
        return f"must be > 0, got {value}"
    if low is not None and value < low:
        return f"must be >= {low}, got {value}"
    if high is not None and value > high:
        return f"must be <= {high}, got {value}"
    return None


def validate_parameters(params: dict[str, Any]) -> sat_parameters_pb2.SatParameters:
    """The protobuf message for ``params``; InputError listing every bad key otherwise."""
    if not isinstance(params, dict):
        raise InputError(f"parameters must be an object, got {type(params).__name__}")
    fields = sat_parameters_pb2.SatParameters.DESCRIPTOR.fields_by_name
    renamed: dict[str, Any] = {}
    problems = [f"{old} and {new}: both given; use only {new!r}"
                for old, new in DEPRECATED_NAMES.items() if old in params and new in params]
    for name, value in params.items():
        if name in DEPRECATED_NAMES:
            warnings.warn(f"CP-SAT parameter {name!r} is deprecated, using "
                          f"{DEPRECATED_NAMES[name]!r}", UserWarning, stacklevel=2)
            name = DEPRECATED_NAMES[name]
        if name not in fields:
            problems.append(f"{name}: unknown CP-SAT parameter")
            continue
        try:
            single = json_format.ParseDict({name: value}, sat_parameters_pb2.SatParameters())
        except json_format.ParseError as exc:
            problems.append(f"{name}: {exc}")
            continue
        parsed = getattr(single, name)
        if fields[name].enum_type is None and (why := _out_of_bounds(name, parsed)) is not None:
            problems.append(f"{name}: {why}")
            continue
        renamed[name] = value
    if problems:
        raise InputError(problems)
    return json_format.ParseDict(renamed, sat_parameters_pb2.SatParameters())


def normalize_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Validated, deprecated names mapped, in the protobuf's JSON form (enums as names)."""
    message = validate_parameters(params)
    # Read the values back from the message: protobuf's JSON form writes int64 as strings.
    return {f.name: (v if f.enum_type is None else f.enum_type.values_by_number[v].name)
            for f, v in message.ListFields()}


def apply_parameters(solver: cp_model.CpSolver, params: dict[str, Any]) -> None:
    message = validate_parameters(params)
    text = text_format.MessageToString(message)
    if text and not solver.parameters.merge_text_format(text):
        raise InputError(f"OR-Tools refused the parameters: {text.strip()}")
