"""Primal strength and proofs: the template model beside the plain model at a fixed time.

    python -m benchmarks.strength_benchmark --suite families --out DIR
    python -m benchmarks.strength_benchmark --suite tardiness --out DIR
    python -m benchmarks.strength_benchmark --suite shared --shared ../shared \\
        --out DIR

Time to target (the core benchmark) asks how fast a model reaches what the other reached; this
asks what each has at a given time, which is what a user with a time limit gets. Suites:

* ``families``: generated identical-job families with machine alternatives (``large`` and
  ``xlarge``: 100-300 tasks), makespan.
* ``tardiness``: generated mixes with two or more due-date groups per template and weights,
  weighted tardiness.
* ``shared``: the public job-shop and FJSP instances beside the repo, time to optimum.

Every configuration runs every instance with the same solver seeds, one solve at a time (build
time included, as everywhere). Per run: the incumbent at ``--at`` seconds (from the recorded
improvements, so one run up to ``--cap`` gives both), the final objective, bound and status,
and the time to a proof. The summary compares each configuration with the first one, paired
per (instance, seed): wins / ties / losses on the incumbent, the geometric mean of the ratio of
(objective + 1), a one-sided Wilcoxon p-value, and proofs within the cap. Nothing here is a
constant: the figures are what this machine measured, written to ``results.json`` and
``report.md`` with the command, the machine, the OR-Tools version and ``num_workers``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from statistics import median
from typing import Any

import ortools

from benchmarks.record import rerun_command, write_results
from fresh_solver.cores import usable_cores
from fresh_solver.fingerprint import machine_fingerprint
from fresh_solver.measure import geometric_mean, time_to_proof, wilcoxon_p
from fresh_solver.model import Problem, load_problem
from fresh_solver.model.generate import SCALES, generate_family, generate_mix
from fresh_solver.params.config import SolverConfig
from fresh_solver.performance.definitions import Configuration
from fresh_solver.solver import ModelOptions, SolveResult, solve


def _configuration(name: str, model: str, cp_sat: dict[str, Any] | None = None,
                   **switches: bool) -> Configuration:
    config = SolverConfig(cp_sat or {}, replace(ModelOptions(), **switches))
    return Configuration(name, model, config, "defaults" if config == SolverConfig() else name)


# "template" runs the project's defaults: the worker count follows the problem's shape
# (fresh_solver.params.workers); "-per-core" and "-8w" pin it.
CONFIGS = {c.name: c for c in [
    _configuration("baseline", "baseline"),
    _configuration("baseline-8w", "baseline", {"num_workers": 8}),
    _configuration("template", "template"),
    _configuration("template-per-core", "template", {"num_workers": usable_cores()}),
    _configuration("template-8w", "template", {"num_workers": 8}),
    _configuration("template-no-bounds", "template", redundant_bounds=False),
    _configuration("template-no-symmetry", "template", symmetry_breaking=False),
    _configuration("template-warm-start", "template", warm_start=True),
    _configuration("template-search-strategy", "template", search_strategy=True),
    _configuration("template-no-tardiness-hint", "template", tardiness_hint=False),
]}
SUITE_DEFAULTS = {
    "families": {"configs": ["baseline", "template"], "cap": 60.0, "at": 30.0,
                 "seeds": [0, 1, 2]},
    "tardiness": {"configs": ["baseline", "template"], "cap": 30.0, "at": 30.0,
                  "seeds": [0, 1, 2]},
    "shared": {"configs": ["baseline-8w", "template"], "cap": 60.0, "at": 60.0, "seeds": [0]},
}


def suite_instances(suite: str, scales: list[str], count: int, first: int,
                    shared: Path | None) -> list[tuple[str, Problem]]:
    """(scale, problem) pairs of a suite, in a fixed order (``shared``: the folder holding
    ``benchmarks/bounds.json``, for the shared suite)."""
    if suite == "families":
        return [(s, generate_family(s, seed))
                for s in scales for seed in range(first, first + count)]
    if suite == "tardiness":
        return [(s, generate_mix(s, seed, "weighted_tardiness"))
                for s in scales for seed in range(first, first + count)]
    bounds = json.loads((shared / "benchmarks" / "bounds.json").read_text())
    return [("shared", load_problem(shared / "benchmarks" / entry["file"])) for entry in bounds]


def incumbent_at(result: SolveResult, seconds: float) -> int | None:
    """The best objective found by ``seconds`` into the run (build included)."""
    found = [objective for t, objective in result.improvements if t <= seconds]
    return min(found) if found else None


def run_one(problem: Problem, configuration: Configuration, seed: int, cap: float,
            at: float) -> dict[str, Any]:
    """One solve, as a row (an invalid schedule is a bug and stops the benchmark)."""
    result = solve(problem, model=configuration.model, options=configuration.config.model,
                   params=configuration.config.cp_sat, time_limit=cap, seed=seed,
                   params_source=configuration.params_source)
    if result.valid is False:
        raise AssertionError(f"{problem.name}: invalid schedule: {result.violations[:3]}")
    return {
        "status": result.status, "objective_at": incumbent_at(result, at),
        "objective": result.objective, "best_bound": result.best_bound,
        "wall_time_s": round(result.wall_time_s, 3),
        "time_to_optimum_s": round(result.wall_time_s, 3) if result.optimal else None,
        "par2_s": round(time_to_proof(result, cap), 3),
        "time_to_first_s": result.time_to_first_s, "num_workers": result.num_workers,
    }


def compare(rows: list[dict[str, Any]], reference: str, candidate: str) -> dict[str, Any]:
    """``candidate`` against ``reference`` over their paired rows (same instance and seed)."""
    ref = {(r["instance"], r["seed"]): r for r in rows if r["config"] == reference}
    pairs = [(ref[(r["instance"], r["seed"])], r) for r in rows
             if r["config"] == candidate and (r["instance"], r["seed"]) in ref]
    scored = [(a["objective_at"], b["objective_at"]) for a, b in pairs
              if a["objective_at"] is not None and b["objective_at"] is not None]
    ratios = [(b + 1) / (a + 1) for a, b in scored]
    return {
        "pairs": len(pairs),
        "wins": sum(b < a for a, b in scored), "ties": sum(b == a for a, b in scored),
        "losses": sum(b > a for a, b in scored),
        "no_incumbent": {"reference": sum(a["objective_at"] is None for a, _ in pairs),
                         "candidate": sum(b["objective_at"] is None for _, b in pairs)},
        "objective_ratio": ({"geomean": geometric_mean(ratios), "min": min(ratios),
                             "max": max(ratios)} if ratios else None),
        "p_candidate_better": (wilcoxon_p([a + 1 for a, _ in scored], [b + 1 for _, b in scored])
                               if scored else None),
        "proven": {"reference": sum(a["status"] == "OPTIMAL" for a, _ in pairs),
                   "candidate": sum(b["status"] == "OPTIMAL" for _, b in pairs)},
        "par2_total_s": {"reference": round(sum(a["par2_s"] for a, _ in pairs), 2),
                         "candidate": round(sum(b["par2_s"] for _, b in pairs), 2)},
        "median_bound": {"reference": _median_or_none([a["best_bound"] for a, _ in pairs]),
                         "candidate": _median_or_none([b["best_bound"] for _, b in pairs])},
    }


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return median(known) if known else None


def summarise(rows: list[dict[str, Any]], configs: list[str]) -> dict[str, Any]:
    """Per scale and overall: every configuration against the first."""
    scales = sorted({r["scale"] for r in rows}, key=lambda s: list(SCALES).index(s)
                    if s in SCALES else len(SCALES))
    out: dict[str, Any] = {}
    for scale in [*scales, "all"]:
        chosen = [r for r in rows if scale in ("all", r["scale"])]
        out[scale] = {c: compare(chosen, configs[0], c) for c in configs[1:]}
    return out


def report_markdown(data: dict[str, Any]) -> str:
    """The summary table, then one row per instance and seed."""
    configs, at = data["configs"], data["at_s"]
    lines = [f"# Strength benchmark: {data['suite']}\n", f"Command: `{data['command']}`  ",
             f"Machine: {data['machine']['cpu']} ({data['machine']['cores']} "
             f"cores), OR-Tools {data['ortools_version']}, num_workers {data['num_workers']}  ",
             f"Cap {data['cap_s']} s, incumbent read at {at} s, solver seeds {data['seeds']}\n",
             f"| scale | {configs[0]} vs | pairs | wins/ties/losses at {at:g} s "
             "| objective ratio geomean (min-max) | p (better) | proven (ref / cand) "
             "| PAR2 total s (ref / cand) |", "|---|---|---|---|---|---|---|---|"]
    for scale, by_config in data["summary"].items():
        for name, c in by_config.items():
            ratio = c["objective_ratio"]
            ratio_text = (f"{ratio['geomean']:.3f} ({ratio['min']:.3f}-{ratio['max']:.3f})"
                          if ratio else "-")
            p = "-" if c["p_candidate_better"] is None else f"{c['p_candidate_better']:.3g}"
            lines.append(
                f"| {scale} | {name} | {c['pairs']} | {c['wins']}/{c['ties']}/{c['losses']} "
                f"| {ratio_text} | {p} | {c['proven']['reference']} / {c['proven']['candidate']} "
                f"| {c['par2_total_s']['reference']} / {c['par2_total_s']['candidate']} |")
    lines += ["", "| instance | tasks | seed | " + " | ".join(
        f"{c} at {at:g} s / final / bound / proof s" for c in configs) + " |",
        "|---|---|---|" + "---|" * len(configs)]
    keys = sorted({(r["instance"], r["tasks"], r["seed"]) for r in data["rows"]},
                  key=lambda k: (data["order"].index(k[0]), k[2]))
    cells = {(r["instance"], r["seed"], r["config"]): r for r in data["rows"]}
    for instance, tasks, seed in keys:
        row = [instance, str(tasks), str(seed)]
        for c in configs:
            r = cells.get((instance, seed, c))
            row.append("-" if r is None else
                       f"{r['objective_at']} / {r['objective']} / "
                       f"{'-' if r['best_bound'] is None else round(r['best_bound'])} / "
                       f"{'-' if r['time_to_optimum_s'] is None else r['time_to_optimum_s']}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", choices=list(SUITE_DEFAULTS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS),
                        help="the first is the reference (default per suite)")
    parser.add_argument("--scales", nargs="+", choices=list(SCALES), default=["large", "xlarge"])
    parser.add_argument("--instances", type=int, default=4, help="generated instances per scale")
    parser.add_argument("--first-instance", type=int, default=0)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")],
                        help="solver seeds, comma-separated")
    parser.add_argument("--cap", type=float, help="time limit per solve (s)")
    parser.add_argument("--at", type=float, help="read the incumbent at this time (s)")
    parser.add_argument("--shared", type=Path, help="the shared/ folder (suite shared)")
    parser.add_argument("--only", nargs="+", help="only these instances (by name)")
    args = parser.parse_args(argv)
    if args.suite == "shared" and not (args.shared and
                                       (args.shared / "benchmarks" / "bounds.json").is_file()):
        parser.error("--suite shared needs --shared DIR, the shared/ folder with "
                     "benchmarks/bounds.json (beside the repository)")
    defaults = SUITE_DEFAULTS[args.suite]
    configs = args.configs or defaults["configs"]
    seeds = args.seeds or defaults["seeds"]
    cap = args.cap or defaults["cap"]
    at = min(args.at or defaults["at"], cap)
    instances = suite_instances(args.suite, args.scales, args.instances, args.first_instance,
                                args.shared)
    if args.only:
        instances = [(s, p) for s, p in instances if p.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "command": rerun_command(__spec__.name, argv), "suite": args.suite,
        "machine": machine_fingerprint(), "ortools_version": ortools.__version__,
        "configs": configs, "seeds": seeds, "cap_s": cap, "at_s": at,
        "order": [p.name for _, p in instances], "num_workers": {},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": [],
    }
    total, done = len(instances) * len(seeds) * len(configs), 0
    for scale, problem in instances:
        for seed in seeds:
            for name in configs:
                row = {"instance": problem.name, "scale": scale, "tasks": problem.num_tasks,
                       "seed": seed, "config": name}
                row |= run_one(problem, CONFIGS[name], seed, cap, at)
                data["rows"].append(row)
                data["num_workers"][name] = row["num_workers"]
                done += 1
                print(f"[{done}/{total}] {problem.name} seed {seed} {name}: {row['status']} "
                      f"{row['objective_at']} at {at:g} s, final {row['objective']}, bound "
                      f"{row['best_bound']}", file=sys.stderr, flush=True)
                (args.out / "results.json").write_text(json.dumps(data, indent=1))
    data["summary"] = summarise(data["rows"], configs)
    data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_results(args.out, data, report_markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
