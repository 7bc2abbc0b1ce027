"""The `fresh-solver/schedule-v1` schedule: one assignment per (job, task)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.inputs import read_json

FORMAT = "fresh-solver/schedule-v1"


@dataclass(frozen=True)
class Assignment:
    job: str
    task: str
    machine: str
    start: int
    end: int


@dataclass(frozen=True)
class Schedule:
    """A solution as the `fresh-solver/schedule-v1` file holds it: each task's mode, start and
    end, and the objective the solver claims for them (the checker recomputes it)."""

    problem: str
    objective_kind: str
    objective_value: int
    assignments: tuple[Assignment, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "problem": self.problem,
            "objective": {"kind": self.objective_kind, "value": self.objective_value},
            "assignments": [asdict(a) for a in self.assignments],
        }

    def write(self, path: str | Path) -> None:
        """Write atomically: a crash never leaves half a schedule behind."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)

    @classmethod
    def from_dict(cls, data: Any) -> Schedule:
        """Parse structurally; whether it is a *valid* schedule is the checker's job."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"format: must be {FORMAT!r}")
        objective = data.get("objective")
        if not isinstance(objective, dict) or not isinstance(objective.get("kind"), str):
            raise InputError("objective: must be an object with 'kind' and 'value'")
        value = objective.get("value")
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"objective.value: must be an integer, got {value!r}")
        raw = data.get("assignments")
        if not isinstance(raw, list):
            raise InputError("assignments: must be a list")
        assignments = []
        for i, a in enumerate(raw):
            if not isinstance(a, dict):
                raise InputError(f"assignments[{i}]: must be an object")
            for key, kind in (("job", str), ("task", str), ("machine", str),
                              ("start", int), ("end", int)):
                if not isinstance(a.get(key), kind) or isinstance(a.get(key), bool):
                    raise InputError(f"assignments[{i}].{key}: must be {kind.__name__}")
            assignments.append(Assignment(a["job"], a["task"], a["machine"], a["start"], a["end"]))
        return cls(str(data.get("problem", "")), objective["kind"], value, tuple(assignments))


def load_schedule(path: str | Path) -> Schedule:
    path = Path(path)
    data = read_json(path)
    try:
        return Schedule.from_dict(data)
    except InputError as exc:
        raise InputError([f"{path}: {p}" for p in exc.problems]) from None
