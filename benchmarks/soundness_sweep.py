"""Soundness sweep: does CP-SAT keep its optimality claim across the tuning space?

    python -m benchmarks.soundness_sweep --points N --problems M \\
        [--space default] [--time-limit S] [--seed K] [--solver-seed 0] --out DIR

An answer labelled OPTIMAL is a promise, and tuning may pick any point of its search space, so
every point must keep it. This samples N points of the space (skopt, ``--seed``) and solves M
small generated problems whose optimum is known (CP-SAT's defaults prove the same objective on
the template and the baseline model, both schedules pass the checker) with each point's
configuration on the template model. A **disagreement** is an invalid schedule, a claim of
infeasibility, a proven optimum other than the known one, or any objective below it. Both
references agree and their schedules check, so a disagreement is evidence against the
configuration (CP-SAT under those settings), not against our model.

Every disagreeing point is reduced (:func:`reduce_combination`, on the first problem it
disagreed on) to a minimal combination: the CP-SAT parameters and model switches without which
the disagreement goes away. A combination that no entry of ``known_unsound.toml`` covers gets a
case file, ``DIR/cases/<id>.json`` in the format of ``fresh_solver/params/unsound_cases/``, to
be checked and added there. ``DIR/sweep.json`` holds everything (rewritten every 10 points
while the sweep runs, ``complete`` true at the end) and ``DIR/summary.md`` the totals.

Problems: about half makespan (identical-job families of the generator's medium scale and of
the known case's shape, and mixes, in turn), half weighted tardiness (medium mixes), walked in
seed order. The problems of the known cases (``fresh_solver/params/unsound_cases/``) are swept
as well, as *controls*: they show that the sweep finds what is known, and are counted apart.
A candidate counts when both references prove it within ``REFERENCE_LIMIT_S`` (capped by
``--time-limit``) with a positive optimum: a zero-tardiness mix is proved by its first
schedule, so it tests no proof. Selection is deterministic except for a candidate whose proof
time lies near the limit.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ortools

from benchmarks.record import rerun_command
from fresh_solver.errors import InputError
from fresh_solver.fingerprint import machine_fingerprint
from fresh_solver.model import Problem, problem_from_dict, problem_to_dict
from fresh_solver.model.generate import generate_family, generate_identical, generate_mix
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.space import SearchSpace, load_space, plain_value
from fresh_solver.params.unsound import known_unsound, unsound_match
from fresh_solver.solver import ModelOptions, SolveResult, solve

MODULE = "benchmarks.soundness_sweep"
SCALE = "medium"  # 20-50 tasks: most candidates are proved by the defaults in well under 1 s
REFERENCE_LIMIT_S = 2.0
REFERENCE_SEED = 0
# The bound on candidates tried, per problem wanted: about 1 in 12 medium tardiness mixes has a
# positive optimum both models prove within 2 s (1 in 2 makespan candidates).
CANDIDATES_PER_PROBLEM = 25
PROGRESS_EVERY = 10  # points
CASE_FORMAT = "fresh-solver/unsound-case-v1"
DEFAULT_SWITCHES = ModelOptions().to_dict()
OUTCOME_COLUMNS = ["point", "problem", "status", "objective", "valid", "wall_time_s",
                   "num_workers"]


@dataclass(frozen=True)
class Reference:
    """A problem and the optimum CP-SAT's defaults proved on both models."""

    problem: Problem
    source: str  # the generator call that makes it, or the known case it comes from
    optimum: int
    seconds: dict[str, float]  # per model, the reference solve's wall time
    control: bool = False  # a known case's problem, not one of the M generated

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.problem.name, "objective": self.problem.objective,
                "tasks": self.problem.num_tasks, "source": self.source,
                "optimum": self.optimum, "reference_s": self.seconds, "control": self.control}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def candidates(objective: str) -> Iterator[tuple[str, Problem]]:
    """Generated problems with ``objective`` in seed order, each with the call that makes it."""
    seed = 0
    while True:
        if objective == "makespan":
            yield f"generate_family({SCALE!r}, {seed})", generate_family(SCALE, seed)
            # 5-7 jobs x 5-7 tasks on 3-4 machines: the shape of the known case
            shape = (5 + seed % 3, 5 + seed // 3 % 3, 3 + seed % 2, seed)
            yield f"generate_identical{shape}", generate_identical(*shape)
        yield (f"generate_mix({SCALE!r}, {seed}, {objective!r})",
               generate_mix(SCALE, seed, objective))
        seed += 1


def reference_optimum(problem: Problem, time_limit: float) -> tuple[int, dict[str, float]] | None:
    """The positive optimum the defaults prove on the template and the baseline model, both
    schedules valid, with each proof's wall time; None when they do not agree so."""
    optimum, seconds = None, {}
    for model in ("template", "baseline"):
        result = solve(problem, model=model, time_limit=time_limit, seed=REFERENCE_SEED)
        if (not result.optimal or result.valid is not True or not result.objective
                or optimum not in (None, result.objective)):
            return None
        optimum, seconds[model] = result.objective, round(result.wall_time_s, 3)
    return optimum, seconds


def select_problems(count: int, time_limit: float) -> tuple[list[Reference], dict[str, Any]]:
    """``count`` references, ceil(count / 2) makespan and the rest weighted tardiness, and per
    objective how many were wanted, tried and found."""
    limit = min(time_limit, REFERENCE_LIMIT_S)
    wanted = {"makespan": -(-count // 2), "weighted_tardiness": count // 2}
    chosen: list[Reference] = []
    tried: dict[str, Any] = {}
    for objective, n in wanted.items():
        found, attempts = [], 0
        stream = candidates(objective)
        while len(found) < n and attempts < n * CANDIDATES_PER_PROBLEM:
            source, problem = next(stream)
            attempts += 1
            if (agreed := reference_optimum(problem, limit)) is not None:
                found.append(Reference(problem, source, *agreed))
                log(f"problem {problem.name} (candidate {attempts}): {problem.num_tasks} "
                    f"tasks, optimum {agreed[0]}")
        tried[objective] = {"wanted": n, "tried": attempts, "found": len(found)}
        if len(found) < n:
            log(f"only {len(found)} of {n} {objective} problems qualified in {attempts} "
                "candidates")
        chosen += found
    return chosen, tried


def control_problems(time_limit: float) -> list[Reference]:
    """The known cases' problems, with the optimum their case records, where CP-SAT's defaults
    prove it on the template model (the baseline model proves them too slowly to ask)."""
    controls = []
    for entry in known_unsound():
        case = entry.load_case()
        problem = problem_from_dict(case["problem"])
        result = solve(problem, model="template", time_limit=time_limit, seed=REFERENCE_SEED)
        if result.optimal and result.valid and result.objective == case["feasible"]:
            controls.append(Reference(problem, f"known case {entry.id}", case["feasible"],
                                      {"template": round(result.wall_time_s, 3)}, control=True))
        else:
            log(f"control {entry.id}: the defaults did not prove {case['feasible']} "
                f"({result.status} {result.objective}); left out")
    return controls


def sample_points(space: SearchSpace, count: int, seed: int) -> list[SolverConfig | str]:
    """``count`` configurations sampled from ``space``; for a point the configuration layer
    refuses, the reason instead."""
    from skopt.space import Space

    points: list[SolverConfig | str] = []
    for raw in Space(space.to_skopt()).rvs(n_samples=count, random_state=seed):
        try:
            points.append(space.config([plain_value(v) for v in raw]))
        except InputError as exc:
            points.append("; ".join(exc.problems))
    return points


def run_config(problem: Problem, config: SolverConfig, *, seed: int,
               time_limit: float) -> SolveResult:
    """One solve of ``problem`` on the template model with ``config``."""
    return solve(problem, model="template", options=config.model, params=config.cp_sat,
                 time_limit=time_limit, seed=seed)


def disagreement(result: SolveResult, optimum: int) -> str | None:
    """How ``result`` contradicts the known ``optimum``, or None when it does not."""
    if result.valid is False:
        return "invalid-schedule"
    if result.status == "INFEASIBLE":
        return "claimed-infeasible"
    if result.optimal and result.objective != optimum:
        return "wrong-optimum"
    if result.objective is not None and result.objective < optimum:
        return "below-optimum"
    return None


def combination(config: SolverConfig) -> dict[str, Any]:
    """What ``config`` sets: its CP-SAT parameters and the switches off their defaults."""
    return {"cp_sat": dict(sorted(config.cp_sat.items())),
            "model": {k: v for k, v in config.model.to_dict().items()
                      if v != DEFAULT_SWITCHES[k]}}


def _without(config: SolverConfig, section: str, name: str) -> SolverConfig:
    """``config`` with one CP-SAT parameter unset or one model switch at its default."""
    if section == "cp_sat":
        return SolverConfig({k: v for k, v in config.cp_sat.items() if k != name}, config.model)
    switches = replace(config.model, **{name: DEFAULT_SWITCHES[name]})
    return SolverConfig(dict(config.cp_sat), switches)


def reduce_combination(problem: Problem, config: SolverConfig, optimum: int, *, seed: int,
                       time_limit: float) -> SolverConfig:
    """Greedy reduction of a configuration that disagrees with ``optimum`` on ``problem``:
    drop one setting at a time (unset a CP-SAT parameter, reset a model switch), keep each
    drop after which the solve (same seed) still disagrees, and repeat passes until a pass
    drops nothing. ``combination`` of the result is the minimal combination."""
    current = config
    dropped = True
    while dropped:
        dropped = False
        settings = [(section, name) for section, names in combination(current).items()
                    for name in names]
        for section, name in settings:
            candidate = _without(current, section, name)
            result = run_config(problem, candidate, seed=seed, time_limit=time_limit)
            if disagreement(result, optimum) is not None:
                current, dropped = candidate, True
    return current


def reduce_disagreement(reference: Reference, index: int, config: SolverConfig, seed: int,
                        time_limit: float) -> dict[str, Any]:
    """The minimal combination behind point ``index``'s disagreement on ``reference``, checked
    by one more solve, and the known combination that covers it, if any."""
    started = time.perf_counter()
    reduced = reduce_combination(reference.problem, config, reference.optimum, seed=seed,
                                 time_limit=time_limit)
    check = run_config(reference.problem, reduced, seed=seed, time_limit=time_limit)
    kind = disagreement(check, reference.optimum)
    known = unsound_match(reduced)
    return {"point": index, "problem": reference.problem.name, "id": reduced.hash,
            "combination": combination(reduced), "confirmed": kind is not None, "kind": kind,
            "status": check.status,
            "claimed": check.objective, "feasible": reference.optimum,
            "known": known.id if known else None,
            "seconds": round(time.perf_counter() - started, 2)}


def case_file(reduction: dict[str, Any], reference: Reference, seed: int) -> dict[str, Any]:
    """A reproducing case in the format of ``fresh_solver/params/unsound_cases/``."""
    problem = reference.problem
    invalid = " whose schedule fails the checker" if reduction["kind"] == "invalid-schedule" \
        else ""
    return {
        "format": CASE_FORMAT,
        "what": (f"the template model of {problem.name} ({problem.num_tasks} tasks, "
                 f"{len(problem.machines)} machines, {problem.objective}; "
                 f"{reference.source}): CP-SAT's defaults prove {reference.optimum} (template "
                 "and baseline models agree, the schedules pass the checker); with the "
                 f"combination CP-SAT reports {reduction['status']} {reduction['claimed']}"
                 f"{invalid} at seed {seed} (soundness sweep, point {reduction['point']}, "
                 f"OR-Tools {ortools.__version__})"),
        "feasible": reference.optimum,
        "claimed": reduction["claimed"],
        "seed": seed,
        "config": reduction["combination"],
        "problem": problem_to_dict(problem),
    }


def distinct(reductions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One reduction per minimal combination (the first found)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in reductions:
        seen.setdefault(r["id"], r)
    return list(seen.values())


def totals(data: dict[str, Any]) -> dict[str, Any]:
    rows = data["outcomes"]["rows"]
    combos = distinct(data["reductions"])
    controls = {p["name"] for p in data["problems"] if p["control"]}
    return {
        "points": len(data["points"]),
        "invalid_points": sum("invalid" in p for p in data["points"]),
        "points_holding_known": sum(p.get("known") is not None for p in data["points"]),
        "problems": {o: sum(p["objective"] == o and not p["control"]
                            for p in data["problems"])
                     for o in ("makespan", "weighted_tardiness")},
        "controls": sum(p["control"] for p in data["problems"]),
        "control_disagreements": sum(d["problem"] in controls for d in data["disagreements"]),
        "solves": len(rows),
        "solve_seconds": round(sum(r[5] for r in rows), 1),
        "worker_counts": sorted({r[6] for r in rows}),
        "disagreements": len(data["disagreements"]),
        "disagreeing_points": len({d["point"] for d in data["disagreements"]}),
        "distinct_combinations": len(combos),
        "known_combinations": sum(c["known"] is not None for c in combos),
        "new_combinations": sum(c["known"] is None for c in combos),
        "reduction_seconds": round(sum(r["seconds"] for r in data["reductions"]), 1),
    }


def summary_markdown(data: dict[str, Any]) -> str:
    t = data["totals"]
    problems = ", ".join(f"{n} {o}" for o, n in t["problems"].items())
    rows = [("points", f"{t['points']} ({t['points_holding_known']} holding a known "
             "combination)"), ("invalid points", t["invalid_points"]),
            ("problems", f"{problems} (selected in {data['selection_s']} s)"),
            ("controls (known cases' problems)", t["controls"]),
            ("solves", t["solves"]),
            ("disagreements", f"{t['disagreements']} ({t['disagreeing_points']} points; "
             f"{t['control_disagreements']} on controls)"),
            ("distinct reduced combinations", t["distinct_combinations"]),
            ("known / new", f"{t['known_combinations']} / {t['new_combinations']}"),
            ("total solve seconds", f"{t['solve_seconds']} (reductions: "
             f"{t['reduction_seconds']})"),
            ("worker counts seen", ", ".join(map(str, t["worker_counts"])) or "-")]
    lines = [f"# Soundness sweep ({'complete' if data['complete'] else 'incomplete'})", "",
             f"OR-Tools {data['ortools_version']}, space {data['space']}, time limit "
             f"{data['time_limit_s']} s, solver seed {data['solver_seed']}", "",
             "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
    if data["selection"]["short"]:
        short = ", ".join(f"{o}: {t['found']} of {t['wanted']} in {t['tried']} candidates"
                          for o, t in data["selection"]["tried"].items())
        lines += [f"Fewer problems qualified than asked ({short}).", ""]
    for c in distinct(data["reductions"]):
        where = f"known: {c['known']}" if c["known"] else f"new: {c.get('case', 'no case')}"
        lines.append(f"- `{json.dumps(c['combination'], sort_keys=True)}` on {c['problem']}: "
                     f"{c['status']} {c['claimed']} where {c['feasible']} is feasible "
                     f"({where}{'' if c['confirmed'] else ', not confirmed'})")
    lines += ["", f"Command: `{data['command']}`"]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def write_sweep(out: Path, data: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data["totals"] = totals(data)
    write_atomic(out / "sweep.json", json.dumps(data, indent=1) + "\n")


def write_cases(out: Path, data: dict[str, Any], references: dict[str, Reference],
                seed: int) -> None:
    """A case file for every confirmed combination no known one covers."""
    for c in distinct(data["reductions"]):
        if c["known"] is None and c["confirmed"]:
            (out / "cases").mkdir(parents=True, exist_ok=True)
            c["case"] = f"cases/{c['id']}.json"
            case = case_file(c, references[c["problem"]], seed)
            write_atomic(out / c["case"], json.dumps(case, indent=1) + "\n")


def sweep_point(index: int, config: SolverConfig, references: list[Reference],
                data: dict[str, Any], seed: int, time_limit: float) -> None:
    """Every problem with point ``index``'s configuration; its first disagreement reduced."""
    first = None
    for ref in references:
        result = run_config(ref.problem, config, seed=seed, time_limit=time_limit)
        data["outcomes"]["rows"].append([
            index, ref.problem.name, result.status, result.objective, result.valid,
            round(result.wall_time_s, 3), result.num_workers])
        kind = disagreement(result, ref.optimum)
        if kind is not None:
            data["disagreements"].append({"point": index, "problem": ref.problem.name,
                                          "kind": kind, "status": result.status,
                                          "objective": result.objective,
                                          "optimum": ref.optimum})
            log(f"point {index} on {ref.problem.name}: {kind} ({result.status} "
                f"{result.objective}, optimum {ref.optimum})")
            first = first or ref
    if first is not None:
        reduction = reduce_disagreement(first, index, config, seed, time_limit)
        data["reductions"].append(reduction)
        log(f"point {index} reduced to {json.dumps(reduction['combination'])} "
            f"(known: {reduction['known']}, confirmed: {reduction['confirmed']})")


def run_sweep(args: argparse.Namespace, space: SearchSpace, command: str) -> dict[str, Any]:
    started = time.perf_counter()
    references, tried = select_problems(args.problems, args.time_limit)
    references += control_problems(args.time_limit)
    selection_s = round(time.perf_counter() - started, 1)
    log(f"{len(references)} problems selected in {selection_s} s")
    points = sample_points(space, args.points, args.seed)
    data: dict[str, Any] = {
        "command": command, "complete": False, "ortools_version": ortools.__version__,
        "machine": machine_fingerprint(), "space": args.space, "space_file": space.source,
        "points_asked": args.points,
        "problems_asked": args.problems, "time_limit_s": args.time_limit, "seed": args.seed,
        "solver_seed": args.solver_seed, "selection_s": selection_s,
        "selection": {"tried": tried, "short": len(references) < args.problems},
        "problems": [r.as_dict() for r in references],
        "points": [point_entry(i, p) for i, p in enumerate(points)],
        "outcomes": {"columns": OUTCOME_COLUMNS, "rows": []},
        "disagreements": [], "reductions": [],
    }
    for index, config in enumerate(points):
        if isinstance(config, SolverConfig):
            sweep_point(index, config, references, data, args.solver_seed, args.time_limit)
        if (index + 1) % PROGRESS_EVERY == 0 or index + 1 == len(points):
            log(f"[{index + 1}/{len(points)} points] {len(data['outcomes']['rows'])} solves, "
                f"{len(data['disagreements'])} disagreements, "
                f"{time.perf_counter() - started:.0f} s")
            write_sweep(args.out, data)
    data["complete"] = True
    data["wall_time_s"] = round(time.perf_counter() - started, 1)
    write_cases(args.out, data, {r.problem.name: r for r in references}, args.solver_seed)
    write_sweep(args.out, data)
    write_atomic(args.out / "summary.md", summary_markdown(data))
    return data


def point_entry(index: int, point: SolverConfig | str) -> dict[str, Any]:
    if not isinstance(point, SolverConfig):
        return {"index": index, "invalid": point}
    known = unsound_match(point)
    return {"index": index, "config": point.to_dict(), "known": known.id if known else None}


def checked_space(args: argparse.Namespace) -> SearchSpace:
    """The search space, once every argument is known to be usable; InputError otherwise."""
    checks: list[tuple[bool, str]] = [
        (args.points < 1, f"--points must be >= 1, got {args.points}"),
        (args.problems < 1, f"--problems must be >= 1, got {args.problems}"),
        (not (math.isfinite(args.time_limit) and args.time_limit > 0),
         f"--time-limit must be a positive number of seconds, got {args.time_limit}"),
        (args.seed < 0, f"--seed must be >= 0, got {args.seed}"),
        (args.solver_seed < 0, f"--solver-seed must be >= 0, got {args.solver_seed}"),
        (args.out.exists() and not args.out.is_dir(),
         f"--out {args.out}: exists and is not a directory"),
    ]
    for bad, message in checks:
        if bad:
            raise InputError(message)
    try:
        return load_space(args.space)
    except InputError as exc:
        raise InputError(f"--space {args.space}: " + "; ".join(exc.problems)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, required=True, help="points sampled from the space")
    parser.add_argument("--problems", type=int, required=True, help="problems with a known optimum")
    parser.add_argument("--space", default="default",
                        help="a shipped space (default, demo) or a TOML file")
    parser.add_argument("--time-limit", type=float, default=5.0, help="seconds per solve")
    parser.add_argument("--seed", type=int, default=0, help="the sampling seed")
    parser.add_argument("--solver-seed", type=int, default=0, help="CP-SAT's random seed")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        space = checked_space(args)
    except InputError as exc:
        print(f"error: {' '.join(exc.problems)}", file=sys.stderr)
        return 2
    run_sweep(args, space, rerun_command(MODULE, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
