"""CP-SAT's search log (``log_search_progress``), parsed into figures (OR-Tools 9.15 format).

What the log says and the response does not: the model before and after presolve (variables
and constraints per kind), how long presolve took and which rules it applied, which subsolver
found each improving solution (``#3  0.49s best:254 next:[214,253]  graph_var_lns ...``), and
how the lower bound moved (``#Bound`` lines). Lines it does not know are ignored, so a newer
OR-Tools that adds lines still parses; one that renames these gives empty figures, which the
profiler's tests would show.
"""

from __future__ import annotations

import re
from typing import Any

_SOLUTION = re.compile(r"^#(\d+)\s+([\d.]+)s\s+best:(\S+)\s+next:\[([^\]]*)\]\s+([^\s(]+)")
_BOUND = re.compile(r"^#Bound\s+([\d.]+)s\s+best:(\S+)\s+next:\[([^\]]*)\]\s+([^\s(]+)")
_DONE = re.compile(r"^#Done\s+([\d.]+)s\s+(\S+)")
_VARIABLES = re.compile(r"^#Variables:\s+(\d+)")
_CONSTRAINT_KIND = re.compile(r"^#(k\w+):\s+(\d+)")
_RULE = re.compile(r"^\s+- rule '(.+)' was applied (\d+) times?\.?")
_AFFINE = re.compile(r"^\s+- (\d+) affine relations were detected")
_PRESOLVE_START = re.compile(r"^Starting presolve at ([\d.]+)s")
_SEARCH_START = re.compile(r"^Starting search at ([\d.]+)s with (\d+) workers")
_SUBSOLVERS = re.compile(r"^\d+ (.+?) subsolvers?: \[(.*)\]")
_PRESOLVE_STEP = re.compile(r"^\s+([\d.]+(?:e[+-]\d+)?)s\s+[\d.]+(?:e[+-]\d+)?d\s+\[(\w+)\]")


def _number(text: str) -> float | None:
    """A log number (``inf`` and friends become None)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value not in (float("inf"), float("-inf")) else None


def _lower_bound(next_range: str, best: float | None) -> float | None:
    """``next:[lb,ub]`` gives the bound; ``next:[]`` means the search closed at ``best``."""
    if not next_range.strip():
        return best
    return _number(next_range.split(",")[0])


def parse_search_log(text: str) -> dict[str, Any]:
    """The figures of one solve's log: ``initial_model`` and ``presolved_model`` (variables,
    constraints, per kind), ``presolve`` (``time_s`` on the log's clock, which ticks in 10 ms;
    ``steps_time_s``, the sum of its timed steps; the slowest steps; rules applied),
    ``solutions`` (time, objective, subsolver), ``bound_progress``, ``finished_by`` (the
    ``#Done`` worker, or on an optimal search that logged none — a solution meeting the bound or
    a bound meeting the solution ends it silently — the subsolver of that last event),
    ``num_workers``, ``subsolvers`` and the ``response`` summary lines (status, walltime...)."""
    models: dict[str, dict[str, Any]] = {}
    section: str | None = None
    rules: dict[str, int] = {}
    steps: dict[str, float] = {}
    out: dict[str, Any] = {"solutions": [], "bound_progress": [], "finished_by": None,
                           "num_workers": None, "subsolvers": {}, "response": {}}
    presolve_start = search_start = done_at = last_event_by = None
    affine = 0
    in_response = False
    for line in text.splitlines():
        if line.startswith("Initial optimization model"):
            section = "initial_model"
        elif line.startswith("Presolved optimization model"):
            section = "presolved_model"
        elif line.startswith(("Starting presolve", "Preloading model", "Starting search")):
            section = None
        if line.startswith("CpSolverResponse summary"):
            in_response = True
            continue
        if in_response:
            key, sep, value = line.partition(":")
            if sep and key.strip():
                out["response"][key.strip()] = value.strip()
            continue
        if section and (m := _VARIABLES.match(line)):
            models.setdefault(section, {"constraints_by_kind": {}})["variables"] = int(m[1])
        elif section and (m := _CONSTRAINT_KIND.match(line)):
            models.setdefault(section, {"constraints_by_kind": {}})[
                "constraints_by_kind"][m[1]] = int(m[2])
        elif m := _PRESOLVE_START.match(line):
            presolve_start = float(m[1])
        elif m := _SEARCH_START.match(line):
            search_start, out["num_workers"] = float(m[1]), int(m[2])
        elif m := _SUBSOLVERS.match(line):
            out["subsolvers"][m[1]] = [s.strip() for s in m[2].split(",") if s.strip()]
        elif m := _PRESOLVE_STEP.match(line):
            steps[m[2]] = steps.get(m[2], 0.0) + float(m[1])
        elif m := _RULE.match(line):
            rules[m[1]] = rules.get(m[1], 0) + int(m[2])
        elif m := _AFFINE.match(line):
            affine += int(m[1])
        elif m := _SOLUTION.match(line):
            best = _number(m[3])
            out["solutions"].append({"index": int(m[1]), "time_s": float(m[2]),
                                     "objective": best, "subsolver": m[5]})
            _record_bound(out["bound_progress"], float(m[2]), _lower_bound(m[4], best), m[5])
            last_event_by = m[5]
        elif m := _BOUND.match(line):
            _record_bound(out["bound_progress"], float(m[1]),
                          _lower_bound(m[3], _number(m[2])), m[4])
            last_event_by = m[4]
        elif m := _DONE.match(line):
            out["finished_by"] = m[2]
            done_at = float(m[1])
    if out["finished_by"] is None and out["response"].get("status") == "OPTIMAL":
        out["finished_by"] = last_event_by
    final = _number(out["response"].get("best_bound", ""))
    end = done_at if done_at is not None else _number(out["response"].get("walltime", ""))
    if end is not None:  # the bound the search ended with (closing it logs no #Bound line)
        _record_bound(out["bound_progress"], end, final, out["finished_by"] or "final")
    for model in models.values():
        model["constraints"] = sum(model["constraints_by_kind"].values())
    out["initial_model"] = models.get("initial_model")
    out["presolved_model"] = models.get("presolved_model")
    out["presolve"] = {
        "time_s": (None if presolve_start is None or search_start is None
                   else round(search_start - presolve_start, 6)),
        "steps_time_s": round(sum(steps.values()), 6),
        "slowest_steps": [[name, round(t, 6)] for name, t in
                          sorted(steps.items(), key=lambda kv: -kv[1])[:5]],
        "affine_relations": affine,
        "rules_applied": sum(rules.values()),
        "top_rules": sorted(rules.items(), key=lambda kv: -kv[1])[:10],
    }
    by_subsolver: dict[str, int] = {}
    for s in out["solutions"]:
        by_subsolver[s["subsolver"]] = by_subsolver.get(s["subsolver"], 0) + 1
    out["solutions_by_subsolver"] = by_subsolver
    out["time_to_first_s"] = out["solutions"][0]["time_s"] if out["solutions"] else None
    return out


def _record_bound(progress: list[dict[str, Any]], time_s: float, bound: float | None,
                  source: str) -> None:
    """Append a bound only when it moved: the log repeats it on every solution line."""
    if bound is not None and (not progress or bound != progress[-1]["bound"]):
        progress.append({"time_s": time_s, "bound": bound, "subsolver": source})
