"""How often the RegressionDetector raises a false alarm, and how often it catches a slow-down.

    python -m benchmarks.detector_power --out out/detector_power

**Measured, then resampled.** Each instance (generated families, medium scale by default) is
solved once per seed (0..N-1) with configuration A (the template model on CP-SAT defaults with
``--num-workers``) and with configuration B, a genuinely slower one (default: A with CP-SAT's
presolve switched off), one solve at a time. Block 1 runs, per (instance, seed), A, B and A
again (the *twin*, measured right after); block 2, run after block 1, repeats A and B. The time
of a run is its wall time to the proven optimum (build included; PAR2 = 2 x the cap when it did
not prove one).

Then, without new solves, trials draw ``r`` seeds per instance (the repetition count) and run
the detector's own decision (:func:`~fresh_solver.performance.regression_stats.compare_instances`:
one-sided Mann-Whitney per instance, Holm across instances, ratio of medians >= 1.2x) on:

- **A/A, interleaved**: A against its twin, measured at the same time: any alarm is a false
  positive of the test itself. Drawn with the same seeds on both sides (two benchmark runs of
  one definition) and with disjoint seeds (seed-to-seed spread counts as noise too); A and
  its twin are exchangeable, so each trial relabels them at random (a permutation estimate).
- **A/A, later block**: A of block 1 against A of block 2: the same, plus whatever changed on
  the machine in between (on a shared machine, its load) - what a baseline measured at another
  time faces.
- **A/B**: A against B (interleaved: block 1; later: B of block 2): detection of the real
  slower configuration; its measured per-instance slow-down is reported, it is what it is.
- **A/1.5A**: as interleaved A/A, with the current side multiplied by exactly 1.5: detection
  of an exact 1.5x slow-down with A's own measured spread. Synthetic (scaled measured times),
  and said so.

The recommended repetition count is the smallest evaluated with an interleaved A/A
false-positive rate of at most 5 % (both seed modes) and the exact 1.5x found in at least 90 %
of trials (same seeds, as benchmark runs of one definition have). Change points
(:func:`~fresh_solver.performance.regression_stats.change_points`) are measured on histories of 20
runs, each run the geometric mean of per-instance medians of ``r`` draws: a flat history of A
(false alarms) and 12 runs of A then B (the step found within one run of where it is).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks.record import rerun_command, write_results
from fresh_solver.fingerprint import fingerprint_id, machine_fingerprint
from fresh_solver.measure import geometric_mean, time_to_proof
from fresh_solver.model.generate import SCALES, generate_family
from fresh_solver.params.config import SolverConfig
from fresh_solver.performance.regression_stats import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    change_points,
    compare_instances,
)
from fresh_solver.solver import solve

Times = dict[str, list[float]]  # instance -> time per seed (index = seed)


PLAN = (("1", ("A", "B", "A_twin")), ("2", ("A", "B")))  # block, runs per (instance, seed)


def measure(problems: dict[str, Any], configs: dict[str, SolverConfig], seeds: list[int],
            time_limit: float) -> tuple[dict[str, Times], dict[str, int]]:
    """Times per series (``A1``, ``B1``, ``A_twin1``, ``A2``, ``B2``), per instance, per seed
    (module docstring); also how many runs per series missed the optimum (counted PAR2)."""
    series = {f"{run}{block}": {i: [] for i in problems} for block, runs in PLAN
              for run in runs}
    missed = dict.fromkeys(series, 0)
    for block, runs in PLAN:
        for instance, problem in problems.items():
            for seed in seeds:
                for run in runs:
                    config = configs[run.removesuffix("_twin")]
                    result = solve(problem, options=config.model, params=config.cp_sat,
                                   time_limit=time_limit, seed=seed, check=False)
                    series[f"{run}{block}"][instance].append(
                        time_to_proof(result, time_limit))
                    missed[f"{run}{block}"] += not result.optimal
            print(f"block {block}: {instance} done", file=sys.stderr, flush=True)
    return series, missed


def _draw(rng, baseline: Times, current: Times, r: int, same_seeds: bool, scale: float,
          pooled: bool) -> tuple[Times, Times]:
    """``r`` runs per instance for each side: of the same seeds or of disjoint ones.

    ``pooled``: the two series are exchangeable (one configuration measured at the same time),
    so each trial relabels them at random - per drawn seed which run goes to which side, or,
    with disjoint seeds, ``2r`` runs from the union split in two - a permutation estimate of
    the null, not one fixed split of the measurements repeated.
    """
    base, cur = {}, {}
    for instance, first in baseline.items():
        second = current[instance]
        if pooled and not same_seeds:
            pool = first + second
            picks = rng.permutation(len(pool))
            base[instance] = [pool[k] for k in picks[:r]]
            cur[instance] = [pool[k] * scale for k in picks[r:2 * r]]
            continue
        picks = rng.permutation(len(first))
        left = picks[:r]
        right = left if same_seeds else picks[r:2 * r]
        swap = rng.random(r) < 0.5 if pooled else [False] * r
        base[instance] = [(second if s else first)[k] for k, s in zip(left, swap)]
        cur[instance] = [(first if s else second)[k] * scale for k, s in zip(right, swap)]
    return base, cur


def alarm_rate(rng, baseline: Times, current: Times, *, r: int, trials: int, same_seeds: bool,
               scale: float = 1.0, pooled: bool = False) -> dict[str, Any]:
    """Share of trials in which the detector flags a regression (on any instance), and per
    instance."""
    per_instance = dict.fromkeys(baseline, 0)
    alarms = 0
    for _ in range(trials):
        base, cur = _draw(rng, baseline, current, r, same_seeds, scale, pooled)
        rows = compare_instances(base, cur, threshold=DEFAULT_THRESHOLD, alpha=DEFAULT_ALPHA,
                                 n_resamples=0)
        alarms += any(row.regression for row in rows)
        for row in rows:
            per_instance[row.instance] += row.regression
    return {"rate": alarms / trials,
            "per_instance": {k: v / trials for k, v in per_instance.items()}}


SCENARIOS = {  # name: (baseline series, current series, same seeds, scale, pooled)
    "aa_interleaved_same": ("A1", "A_twin1", True, 1.0, True),
    "aa_interleaved_disjoint": ("A1", "A_twin1", False, 1.0, True),
    "aa_later_same": ("A1", "A2", True, 1.0, False),
    "aa_later_disjoint": ("A1", "A2", False, 1.0, False),
    "ab_interleaved": ("A1", "B1", True, 1.0, False),
    "ab_later": ("A1", "B2", True, 1.0, False),
    "synthetic_1_5x_same": ("A1", "A_twin1", True, 1.5, True),
    "synthetic_1_5x_disjoint": ("A1", "A_twin1", False, 1.5, True),
}


def change_point_rates(rng, flat: tuple[Times, Times], slower: Times, *, r: int, trials: int,
                       runs: int = 20, step_at: int = 12) -> dict[str, float]:
    """False alarms on a flat A history, and the step A -> B found within one run."""
    def point(source: Times) -> float:
        picks = {i: rng.choice(len(t), r, replace=False) for i, t in source.items()}
        return geometric_mean([median(source[i][k] for k in picks[i]) for i in source])

    false_alarms = found = 0
    for _ in range(trials):
        history = [point(flat[k % 2]) for k in range(runs)]
        false_alarms += bool(change_points(history))
        step = history[:step_at] + [point(slower) for _ in range(runs - step_at)]
        found += any(abs(c - step_at) <= 1 for c in change_points(step))
    return {"false_alarm_rate": false_alarms / trials, "step_found_rate": found / trials,
            "runs": runs, "step_at": step_at}


def evaluate(series: dict[str, Times], repetitions: list[int], trials: int,
             seed: int) -> list[dict[str, Any]]:
    """The rates per repetition count and scenario (module docstring)."""
    import numpy as np

    rows = []
    for r in repetitions:
        rng = np.random.default_rng([seed, r])
        row: dict[str, Any] = {"repetitions": r}
        for name, (base, current, same, scale, pooled) in SCENARIOS.items():
            row[name] = alarm_rate(rng, series[base], series[current], r=r, trials=trials,
                                   same_seeds=same, scale=scale, pooled=pooled)
        row["change_points"] = change_point_rates(
            rng, (series["A1"], series["A_twin1"]), series["B1"], r=r,
            trials=max(50, trials // 10))
        rows.append(row)
    return rows


def recommend(rows: list[dict[str, Any]]) -> int | None:
    """The smallest repetition count meeting the targets (module docstring), or None."""
    for row in rows:
        if (row["aa_interleaved_same"]["rate"] <= 0.05
                and row["aa_interleaved_disjoint"]["rate"] <= 0.05
                and row["synthetic_1_5x_same"]["rate"] >= 0.9):
            return row["repetitions"]
    return None


COLUMNS = (("A/A interleaved, same / disjoint seeds", ("aa_interleaved_same",
                                                       "aa_interleaved_disjoint")),
           ("A/A later block, same / disjoint seeds", ("aa_later_same", "aa_later_disjoint")),
           ("A/B interleaved / later block", ("ab_interleaved", "ab_later")),
           ("A/1.5A synthetic, same / disjoint seeds", ("synthetic_1_5x_same",
                                                        "synthetic_1_5x_disjoint")))


def report(data: dict[str, Any]) -> str:
    """The markdown report: context, measured slow-downs, the rates tables, the verdict."""
    instances = data["instances"]
    medians = data["medians_s"]
    lines = [
        "# RegressionDetector: false positives and power, from measured solve times", "",
        f"Command: `{data['command']}`", "",
        f"Machine: {data['machine']['cpu']}, {data['machine']['cores']} cores (shared), "
        f"OR-Tools {data['machine']['ortools']} (fingerprint {data['fingerprint']}); load "
        f"average {data['load_before']} before, {data['load_after']} after the solves; CPU time "
        f"{data['cpu_seconds']:.0f} s of solves (wall {data['wall_seconds']:.0f} s) + "
        f"{data['resample_cpu_seconds']:.0f} s of resampling.", "",
        f"Measured: {len(instances)} instances ({', '.join(instances)}) x "
        f"{len(data['seeds'])} seeds (0..{len(data['seeds']) - 1}); block 1 = A, B, A twin per "
        f"(instance, seed), then block 2 = A, B; one solve at a time, num_workers "
        f"{data['num_workers']}, cap {data['time_limit_s']} s; runs that missed the optimum "
        f"(PAR2): {data['missed_optimum']}.",
        f"A = `{json.dumps(data['config_a'])}`; B (slower) = `{json.dumps(data['config_b'])}`.",
        "", "Median time per series (ms):", "",
        "| instance | A1 | A twin1 | B1 | A2 | B2 | B/A block 1 |", "|---|---|---|---|---|---|---|",
    ]
    for i in instances:
        m = {k: medians[k][i] for k in medians}
        lines.append(f"| {i} | {m['A1'] * 1000:.0f} | {m['A_twin1'] * 1000:.0f} | "
                     f"{m['B1'] * 1000:.0f} | {m['A2'] * 1000:.0f} | {m['B2'] * 1000:.0f} | "
                     f"{m['B1'] / m['A1']:.2f}x |")
    lines += [
        "", f"Decision: one-sided Mann-Whitney per instance, Holm across instances, alpha "
        f"{DEFAULT_ALPHA}, ratio of medians >= {DEFAULT_THRESHOLD}x; a trial alarms when any "
        f"instance is flagged; {data['trials']} resampled trials per cell. A/1.5A multiplies "
        "the current side's measured A times by exactly 1.5: synthetic, stated as such. "
        "Interleaved A/A and A/1.5A relabel A and its twin at random in every trial.", "",
        "| r | " + " | ".join(title for title, _ in COLUMNS)
        + " | change points: false alarm / step found |", "|---" * (len(COLUMNS) + 2) + "|"]
    for row in data["rows"]:
        cells = [" / ".join(f"{row[k]['rate']:.1%}" for k in keys) for _, keys in COLUMNS]
        cp = row["change_points"]
        lines.append(f"| {row['repetitions']} | " + " | ".join(cells)
                     + f" | {cp['false_alarm_rate']:.1%} / {cp['step_found_rate']:.1%} |")
    lines += ["", "Per instance, share of trials flagging it: A/A interleaved (disjoint seeds) "
              "/ A/B interleaved / A/1.5A (same seeds):", "",
              "| r | " + " | ".join(instances) + " |", "|---" * (len(instances) + 1) + "|"]
    for row in data["rows"]:
        cells = [" / ".join(f"{row[k]['per_instance'][i]:.0%}" for k in (
            "aa_interleaved_disjoint", "ab_interleaved", "synthetic_1_5x_same"))
            for i in instances]
        lines.append(f"| {row['repetitions']} | " + " | ".join(cells) + " |")
    rec = data["recommended_repetitions"]
    lines += ["", f"Recommended repetitions: **{rec}** (smallest r with interleaved A/A <= 5 % "
              "in both seed modes and the exact 1.5x found in >= 90 % of trials)." if rec else
              "No evaluated repetition count met both targets; see the tables."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=list(SCALES), default="medium")
    parser.add_argument("--families", default="1,5,8",
                        help="comma-separated family (template) seeds, one instance each")
    parser.add_argument("--seeds", type=int, default=40, help="solver seeds per block")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--slower", default='{"cp_sat": {"cp_model_presolve": false}}',
                        help="configuration B as a parameter set JSON, merged over A")
    parser.add_argument("--time-limit", type=float, default=5.0)
    parser.add_argument("--repetitions", default="5,8,10,15,20",
                        help="repetition counts to evaluate (each <= seeds / 2)")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--resample-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        families = [int(s) for s in args.families.split(",")]
        reps = sorted(int(s) for s in args.repetitions.split(","))
        slower = json.loads(args.slower)
    except ValueError as exc:
        parser.error(f"--families / --repetitions / --slower: {exc}")
    if not reps or reps[0] < 2 or 2 * reps[-1] > args.seeds:
        parser.error("--repetitions: each must be >= 2 and <= --seeds / 2")
    config_a = SolverConfig.from_dict({"cp_sat": {"num_workers": args.num_workers}})
    config_b = SolverConfig.from_dict({"cp_sat": {**config_a.cp_sat, **slower.get("cp_sat", {})},
                                       "model": slower.get("model", {})})
    args.out.mkdir(parents=True, exist_ok=True)
    problems = {f"{args.scale}-{s}": generate_family(args.scale, s) for s in families}
    solve(generate_family("small", 0), time_limit=1.0)  # warm-up: one-time costs of CP-SAT
    load_before = [round(x, 2) for x in os.getloadavg()]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    seeds = list(range(args.seeds))
    series, missed = measure(problems, {"A": config_a, "B": config_b}, seeds, args.time_limit)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    load_after = [round(x, 2) for x in os.getloadavg()]
    rows = evaluate(series, reps, args.trials, args.resample_seed)
    data = {
        "command": rerun_command(__spec__.name, argv), "machine": machine_fingerprint(),
        "fingerprint": fingerprint_id(), "args": {k: str(v) for k, v in vars(args).items()},
        "instances": list(problems), "seeds": seeds, "num_workers": args.num_workers,
        "time_limit_s": args.time_limit, "config_a": config_a.to_dict(),
        "config_b": config_b.to_dict(), "missed_optimum": missed, "cpu_seconds": cpu,
        "wall_seconds": wall, "resample_cpu_seconds": time.process_time() - cpu0 - cpu,
        "load_before": load_before, "load_after": load_after, "trials": args.trials,
        "medians_s": {name: {i: median(t) for i, t in per.items()}
                      for name, per in series.items()},
        "rows": rows, "recommended_repetitions": recommend(rows), "series": series,
    }
    write_results(args.out, data, report(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
