"""Validate a CP-SAT parameter dict on the installed `SatParameters` and apply it.

OR-Tools 9.15's ``solver.parameters`` is not a protobuf message, and its ``merge_text_format``
returns False instead of raising. So a dict is first parsed into the real protobuf message
(which rejects unknown names and bad enum values), then merged as text, and the return value
is checked.
"""

from __future__ import annotations

import warnings
from typing import Any

from google.protobuf import json_format, text_format
from ortools.sat import sat_parameters_pb2
from ortools.sat.python import cp_model

from fresh_solver.errors import InputError

DEPRECATED_NAMES = {"num_search_workers": "num_workers"}


def validate_parameters(params: dict[str, Any]) -> sat_parameters_pb2.SatParameters:
    """The protobuf message for ``params``; InputError listing every bad key otherwise."""
    if not isinstance(params, dict):
        raise InputError(f"parameters must be an object, got {type(params).__name__}")
    fields = sat_parameters_pb2.SatParameters.DESCRIPTOR.fields_by_name
    renamed: dict[str, Any] = {}
    problems = []
    for name, value in params.items():
        if name in DEPRECATED_NAMES:
            warnings.warn(f"CP-SAT parameter {name!r} is deprecated, using "
                          f"{DEPRECATED_NAMES[name]!r}", UserWarning, stacklevel=2)
            name = DEPRECATED_NAMES[name]
        if name not in fields:
            problems.append(f"{name}: unknown CP-SAT parameter")
            continue
        try:
            json_format.ParseDict({name: value}, sat_parameters_pb2.SatParameters())
        except json_format.ParseError as exc:
            problems.append(f"{name}: {exc}")
            continue
        renamed[name] = value
    if problems:
        raise InputError(problems)
    return json_format.ParseDict(renamed, sat_parameters_pb2.SatParameters())


def apply_parameters(solver: cp_model.CpSolver, params: dict[str, Any]) -> None:
    message = validate_parameters(params)
    text = text_format.MessageToString(message)
    if text and not solver.parameters.merge_text_format(text):
        raise InputError(f"OR-Tools refused the parameters: {text.strip()}")
