"""Template model vs baseline model, both on CP-SAT defaults, paired, time to target.

    python -m benchmarks.core_benchmark --out out/core_benchmark

For every generated identical-job family and every repetition seed, the baseline runs with the
cap and sets the target (DESIGN §8); then each template configuration runs with the same seed
and is timed to that target (it stops early once an unproven target is reached). Speedup =
baseline time / template time; per family the geometric mean over seeds, overall the geometric
mean over families. The ablation switches one template feature at a time on the first seed.
The runs go through the benchmark runner's paired loop (:func:`fresh_solver.performance.runner.
run_pairs`: the same targets, PAR2, checks and peak RSS as `fresh-solver benchmark run`); this
command is the preset that picks the families, the configurations and its own summary.
With ``--shared`` it also reports time to optimal on the shared job-shop/FJSP instances.

Everything it prints is measured here; nothing is a constant. Results go to ``results.json``
and ``report.md`` in the output folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import ortools

from benchmarks.record import rerun_command, write_results
from fresh_solver.cores import usable_cores
from fresh_solver.fingerprint import fingerprint_id, machine_fingerprint
from fresh_solver.measure import geometric_mean, paired_speedup, spread
from fresh_solver.model import load_problem
from fresh_solver.model.generate import SCALES, generate_family
from fresh_solver.params.config import SolverConfig
from fresh_solver.performance.definitions import Configuration
from fresh_solver.performance.runner import run_pairs
from fresh_solver.solver import PLAIN, ModelOptions, SolveResult, solve


def _switched(**switches: bool) -> SolverConfig:
    return SolverConfig(model=replace(ModelOptions(), **switches))


# One change at a time from the defaults (the template model's switches, and the worker count
# the problem's shape chose: per_core_workers pins CP-SAT's own default, one per core).
ABLATION = {
    "full": SolverConfig(),  # the defaults
    "no_symmetry": _switched(symmetry_breaking=False),
    "no_bounds": _switched(redundant_bounds=False),
    "plus_warm_start": _switched(warm_start=True),
    "plus_search_strategy": _switched(search_strategy=True),
    "per_core_workers": SolverConfig({"num_workers": usable_cores()}),
    "plain": SolverConfig(model=PLAIN),
}
BASELINE = Configuration("baseline", "baseline", SolverConfig(), "defaults")
CONFIGURATIONS = {name: Configuration(name, "template", config, "defaults")
                  for name, config in ABLATION.items()}


def _run_record(result: SolveResult, ttt: float | None = None) -> dict[str, Any]:
    if result.valid is False:
        raise AssertionError(f"invalid schedule: {result.violations[:3]}")
    return {"status": result.status, "objective": result.objective,
            "best_bound": result.best_bound, "wall_time_s": round(result.wall_time_s, 4),
            "time_to_target_s": None if ttt is None else round(ttt, 4),
            "num_workers": result.num_workers}


def _row_record(row: dict[str, Any]) -> dict[str, Any]:
    return {"seed": row["seed"], "status": row["status"], "objective": row["objective"],
            "best_bound": row["best_bound"], "wall_time_s": round(row["wall_time_s"], 4),
            "time_to_target_s": round(row["time_to_target_s"], 4),
            "num_workers": row["num_workers"], "peak_rss_mb": round(row["peak_rss_mb"], 1)}


def bench_family(problem, seeds: list[int], cap: float, ablation_seeds: list[int],
                 context: dict[str, str], log) -> dict[str, list[dict[str, Any]]]:
    """The family's runs through the benchmark runner's paired loop
    (:func:`fresh_solver.performance.runner.run_pairs`): on the ablation seeds every
    configuration, on the others the full template model only; a seed whose baseline found
    no solution is left out (its other runs are dropped)."""
    instances = {problem.name: problem}
    first = [s for s in seeds if s in ablation_seeds]
    rest = [s for s in seeds if s not in ablation_seeds]
    rows = (run_pairs(instances, [BASELINE, *CONFIGURATIONS.values()], first, 1, cap, context)
            + run_pairs(instances, [BASELINE, CONFIGURATIONS["full"]], rest, 1, cap, context))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ABLATION}
    runs["baseline"] = []
    for seed in first + rest:
        base, *others = [r for r in rows if r["seed"] == seed]
        if base["objective"] is None:
            log(f"  seed {seed}: baseline found nothing in {cap:g} s; skipped")
            continue
        base_ttt = base["time_to_target_s"]
        runs["baseline"].append(_row_record(base))
        for row in others:
            runs[row["configuration"]].append(
                _row_record(row) | {"speedup": paired_speedup(base_ttt, row["time_to_target_s"])})
        log(f"  seed {seed}: target {base['objective']} "
            f"({'proven' if base['status'] == 'OPTIMAL' else 'best'})"
            f" baseline {base_ttt:.3f} s, template {runs['full'][-1]['time_to_target_s']:.3f} s"
            f" -> {runs['full'][-1]['speedup']:.2f}x")
    return runs


def summarise(families: dict[str, dict[str, Any]],
              seeds: list[int] | None = None) -> dict[str, Any]:
    """Per configuration: geomean speedup over families (each the geomean over its seeds),
    over ``seeds`` only when given: the ablation compares every configuration on the same
    seeds, since the full model also runs on seeds the others do not."""
    out: dict[str, Any] = {}
    for name in ABLATION:
        per_family = {}
        for fam, data in families.items():
            base = [r["time_to_target_s"] for r in data["runs"]["baseline"]]
            runs = [r for r in data["runs"][name] if seeds is None or r["seed"] in seeds]
            if not runs or not base:
                continue
            per_family[fam] = {
                "speedup": geometric_mean([r["speedup"] for r in runs]),
                "baseline_ttt_median_s": sorted(base)[len(base) // 2],
            }
        hard = {f: v["speedup"] for f, v in per_family.items() if v["baseline_ttt_median_s"] > 1}
        out[name] = {
            "families": len(per_family),
            "all": spread([v["speedup"] for v in per_family.values()]) if per_family else None,
            "baseline_over_1s": spread(list(hard.values())) if hard else None,
            "slowest_family": min(per_family.items(), key=lambda kv: kv[1]["speedup"])[0]
            if per_family else None,
            "min_speedup": min(v["speedup"] for v in per_family.values()) if per_family else None,
        }
    return out


def bench_shared(shared: Path, cap: float, seed: int, log) -> list[dict[str, Any]]:
    bounds = json.loads((shared / "benchmarks" / "bounds.json").read_text())
    rows = []
    for entry in bounds:
        problem = load_problem(shared / "benchmarks" / entry["file"])
        row = {"instance": entry["name"], "optimum": entry["optimum"],
               "lower_bound": entry["lower_bound"]}
        for model in ("baseline", "template"):
            result = solve(problem, model=model, time_limit=cap, seed=seed)
            if result.objective is not None and result.objective < entry["lower_bound"]:
                raise AssertionError(f"{entry['name']}: {model} makespan {result.objective} is "
                                     f"below the known lower bound {entry['lower_bound']}")
            row[model] = _run_record(result, result.wall_time_s if result.optimal else None)
        log(f"  {entry['name']}: baseline {row['baseline']['status']} "
            f"{row['baseline']['objective']} in {row['baseline']['wall_time_s']:.2f} s, template "
            f"{row['template']['status']} {row['template']['objective']} in "
            f"{row['template']['wall_time_s']:.2f} s")
        rows.append(row)
    return rows


def report_markdown(data: dict[str, Any]) -> str:
    lines = ["# Core benchmark: template vs baseline (CP-SAT defaults)\n",
             f"Command: `{data['command']}`  ",
             f"Machine: {data['machine']}  ",
             f"Cap {data['cap_s']} s, seeds {data['seeds']}, ablation seeds "
             f"{data['ablation_seeds']}, num_workers "
             + ", ".join(f"{model} {n}" for model, n in data["num_workers"].items()) + "\n",
             "| family | jobs | tasks | baseline ttt median (s) | target | speedup (geomean) "
             "| per-seed speedups |", "|---|---|---|---|---|---|---|"]
    for fam, fd in data["families"].items():
        base = fd["runs"]["baseline"]
        full = fd["runs"]["full"]
        if not base:
            continue
        med = sorted(r["time_to_target_s"] for r in base)[len(base) // 2]
        proven = all(r["status"] == "OPTIMAL" for r in base)
        per_seed = ", ".join(f"{r['speedup']:.2f}" for r in full)
        lines.append(f"| {fam} | {fd['jobs']} | {fd['tasks']} | {med:.3f} | "
                     f"{'optimum' if proven else 'best at cap'} | "
                     f"{geometric_mean([r['speedup'] for r in full]):.2f}x | "
                     f"{per_seed} |")
    full = data["summary"]["full"]
    if full["all"]:
        hard = full["baseline_over_1s"]
        lines += ["", f"Template model over seeds {data['seeds']}: geomean "
                  f"{full['all']['geomean']:.2f}x over {full['families']} families"
                  + (f", {hard['geomean']:.2f}x over the {hard['n']} where the baseline needs "
                     "more than 1 s" if hard else "")
                  + f"; slowest family {full['slowest_family']} {full['min_speedup']:.2f}x."]
    lines += ["", f"Ablation, every configuration on the ablation seeds {data['ablation_seeds']}:",
              "", "| configuration | families | geomean (all) | geomean (baseline > 1 s) "
              "| min over families | n (baseline > 1 s) |", "|---|---|---|---|---|---|"]
    for name, s in data["ablation"].items():
        if not s["all"]:
            continue
        hard = s["baseline_over_1s"]
        hard_geomean = f"{hard['geomean']:.2f}x" if hard else "-"
        lines.append(f"| {name} | {s['families']} | {s['all']['geomean']:.2f}x | {hard_geomean} "
                     f"| {s['min_speedup']:.2f}x ({s['slowest_family']}) | "
                     f"{hard['n'] if hard else 0} |")
    if data.get("shared"):
        lines += ["", "Shared instances, time to optimal (s; '-' = not proven within the cap):",
                  "", "| instance | optimum | baseline | template |", "|---|---|---|---|"]
        for row in data["shared"]:
            cells = []
            for model in ("baseline", "template"):
                r = row[model]
                cells.append(f"{r['wall_time_s']:.2f}" if r["status"] == "OPTIMAL" else
                             f"- ({r['objective']}, bound {r['best_bound']:.0f})")
            lines.append(f"| {row['instance']} | {row['optimum']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", nargs="+", default=["small", "medium", "large"],
                        choices=list(SCALES))
    parser.add_argument("--family-seeds", type=int, default=6, help="N families per scale")
    parser.add_argument("--first-family", type=int, default=0,
                        help="first family seed (a development set uses other seeds than the "
                             "reported one)")
    parser.add_argument("--reps", type=int, default=3, help="solver seeds 0..N-1 per family")
    parser.add_argument("--ablation-reps", type=int, default=1)
    parser.add_argument("--cap", type=float, default=60.0)
    parser.add_argument("--shared", type=Path, help="the shared/ folder: also time to optimal")
    parser.add_argument("--shared-cap", type=float, default=30.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    seeds = list(range(args.reps))
    machine = machine_fingerprint()
    context = {"ortools_version": ortools.__version__, "fingerprint": fingerprint_id(machine)}
    data: dict[str, Any] = {
        "command": rerun_command(__spec__.name, argv),
        "machine": machine, "cap_s": args.cap, "seeds": seeds,
        "ablation_seeds": seeds[:args.ablation_reps], "num_workers": {},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "families": {},
    }
    for scale in args.scales:
        for family_seed in range(args.first_family, args.first_family + args.family_seeds):
            problem = generate_family(scale, family_seed)
            log(f"{problem.name}: {len(problem.jobs)} jobs, {problem.num_tasks} tasks")
            runs = bench_family(problem, seeds, args.cap, seeds[:args.ablation_reps], context,
                                log)
            data["families"][problem.name] = {"jobs": len(problem.jobs),
                                              "tasks": problem.num_tasks, "runs": runs}
            if runs["baseline"]:  # per model: the template model's follows the problem's shape
                data["num_workers"] = {"baseline": runs["baseline"][0]["num_workers"],
                                       "template": runs["full"][0]["num_workers"]}
            data["summary"] = summarise(data["families"])
            data["ablation"] = summarise(data["families"], data["ablation_seeds"])
            (args.out / "results.json").write_text(json.dumps(data, indent=1))
    if args.shared:
        log("shared instances:")
        data["shared"] = bench_shared(args.shared, args.shared_cap, 0, log)
    data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_results(args.out, data, report_markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
