"""How much does the held-out comparison of the tuning benchmark move when nothing changes?

    python -m benchmarks.heldout_noise --template-seed 21 --seeds 4 \
        --out out/heldout_noise
    python -m benchmarks.heldout_noise --from-runs out/heldout_noise/runs.json \
        --out out/heldout_noise-again        # the report again, no solving

The defaults and ``--copies`` more copies of them, and the defaults with only the worker count
changed (``--workers``), run on the held-out instances of one generated template (instance
seeds from 1000, as the tuning benchmark holds them out) × solver seeds, interleaved as
validation measures (:func:`fresh_solver.measure.measure_pairs`), to targets an untimed run of
the defaults on other seeds sets. Every run is scored by both held-out metrics of the tuning
benchmark (time to target, primal gap integral; :func:`tuning_benchmark.held_out_scores`).

The copies are the noise floor: their speedup over the defaults is noise alone. Because all
copies are compared with the same single run of the defaults per pair, they move together; so
the report also resamples the copies' pairs (a percentile bootstrap: pairs drawn with
replacement, the reference the median of ``k`` copies' runs, the candidate another copy) to
say how often an A/A speedup would fall within 0.8-1.25x with more pairs or more reference
runs, per metric: what a held-out protocol needs before it can call a set's gain real.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from statistics import mean, median
from typing import Any

from benchmarks.record import rerun_command, write_results
from benchmarks.tuning_benchmark import (
    HELD_OUT_METRICS,
    held_out_scores,
    write_instances,
)
from fresh_solver.measure import geometric_mean, paired_speedup, wilcoxon_p

FLOOR = (0.8, 1.25)  # the noise floor the tuning benchmark's sets identical to the defaults need
BOOTSTRAP_PAIRS = (24, 48, 72)
BOOTSTRAP_REFERENCE_RUNS = (1, 3)
RESAMPLES = 4000


def measure(template_seed: int, seeds: int, limit: float, copies: int, workers: list[int],
            folder: Path) -> dict[str, Any]:
    """Every configuration's runs per pair, as plain values (``runs.json``)."""
    from fresh_solver.measure import measure_pairs
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.tuning.session import load_instances

    seen: set[str] = set()
    write_instances(folder / "train", "large", template_seed, 0, 3, seen)  # as the benchmark
    paths = write_instances(folder / "held_out", "large", template_seed, 1000, 6, seen)
    instances, _ = load_instances(tuple(paths))
    configs = {"defaults": SolverConfig()} | {
        f"copy-{i}": SolverConfig() for i in range(1, copies + 1)} | {
        f"workers-{w}": SolverConfig.from_dict({"cp_sat": {"num_workers": w}}) for w in workers}
    runs = measure_pairs(configs, instances, list(range(seeds)), limit, target=SolverConfig())
    return {name: {f"{instance}|{seed}": [
        {"status": r.status, "objective": r.objective, "wall_time_s": r.wall_time_s,
         "improvements": r.improvements} for r in pair_runs]
        for (instance, seed), pair_runs in by_pair.items()} for name, by_pair in runs.items()}


def _as_runs(plain: dict[str, Any]) -> dict[str, Any]:
    """``runs.json`` back as solve results (what :func:`held_out_scores` reads); the fields a
    score does not use stay empty."""
    from fresh_solver.solver import SolveResult

    def result(r: dict[str, Any]) -> SolveResult:
        improvements = [tuple(i) for i in r["improvements"]]
        return SolveResult(r["status"], r["objective"], None, r["wall_time_s"], 0.0,
                           improvements[0][0] if improvements else None,
                           improvements[-1][0] if improvements else None, improvements,
                           0, "template", {}, {}, None)

    return {name: {(key.rsplit("|", 1)[0], int(key.rsplit("|", 1)[1])):
                   [result(r) for r in pair_runs] for key, pair_runs in by_pair.items()}
            for name, by_pair in plain.items()}


def bootstrap(logs: dict[str, dict[Any, float]], pairs: int, reference_runs: int,
              rng: random.Random) -> list[float]:
    """A/A speedups of resampled protocols: ``pairs`` pairs drawn with replacement, each
    comparing the median log-score of ``reference_runs`` copies with another copy's."""
    copies, keys = list(logs), sorted(next(iter(logs.values())))
    out = []
    for _ in range(RESAMPLES):
        diffs = []
        for key in (rng.choice(keys) for _ in range(pairs)):
            order = rng.sample(copies, reference_runs + 1)
            diffs.append(median(logs[n][key] for n in order[:-1]) - logs[order[-1]][key])
        out.append(math.exp(mean(diffs)))
    return sorted(out)


def summarise(plain: dict[str, Any], limit: float) -> dict[str, Any]:
    """Per metric: each configuration's speedup over the defaults (paired, geometric mean,
    one-sided Wilcoxon p both ways) and the bootstrap of the copies."""
    out: dict[str, Any] = {}
    for metric in HELD_OUT_METRICS:
        scores = held_out_scores(_as_runs(plain), metric, limit)
        base = scores["defaults"]
        keys = sorted(base)
        rows = {name: {"speedup": geometric_mean([paired_speedup(base[k], s[k]) for k in keys]),
                       "p_faster": wilcoxon_p([base[k] for k in keys], [s[k] for k in keys]),
                       "p_slower": wilcoxon_p([s[k] for k in keys], [base[k] for k in keys])}
                for name, s in scores.items() if name != "defaults"}
        copies = {n: {k: math.log(s[k]) for k in keys} for n, s in scores.items()
                  if n == "defaults" or n.startswith("copy-")}
        rng = random.Random(0)
        resampled = []
        for pairs in BOOTSTRAP_PAIRS:
            for runs in BOOTSTRAP_REFERENCE_RUNS:
                if runs + 1 > len(copies):
                    continue
                values = bootstrap(copies, pairs, runs, rng)
                resampled.append({
                    "pairs": pairs, "reference_runs": runs,
                    "low": values[int(0.025 * RESAMPLES)], "high": values[int(0.975 * RESAMPLES)],
                    "within_floor": sum(FLOOR[0] <= v <= FLOOR[1] for v in values) / RESAMPLES})
        out[metric] = {"pairs": len(keys), "rows": rows, "bootstrap": resampled}
    return out


def report_markdown(data: dict[str, Any]) -> str:
    lines = ["# Held-out noise of the tuning benchmark's comparison", "",
             f"{data['pairs']} pairs (6 held-out instances x {data['seeds']} seeds), "
             f"{data['time_limit_s']:g} s per solve; copies: the defaults again.", ""]
    for metric, result in data["metrics"].items():
        lines += [f"## {metric}", "", "| configuration | speedup vs the defaults | "
                  "p faster / slower |", "|---|---|---|"]
        for name, row in result["rows"].items():
            lines.append(f"| {name} | {row['speedup']:.2f}x | {row['p_faster']:.3g} / "
                         f"{row['p_slower']:.3g} |")
        lines += ["", "| pairs (resampled) | reference runs (median) | A/A speedup 2.5-97.5 % | "
                  f"within {FLOOR[0]}-{FLOOR[1]}x |", "|---|---|---|---|"]
        for b in result["bootstrap"]:
            lines.append(f"| {b['pairs']} | {b['reference_runs']} | {b['low']:.2f}-"
                         f"{b['high']:.2f}x | {b['within_floor']:.0%} |")
        lines.append("")
    lines += [f"Machine: {data['machine']}", "", f"Measured by: {data['measured_by']}", "",
              f"Report: `{data['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--template-seed", type=int, default=21)
    parser.add_argument("--seeds", type=int, default=4, help="solver seeds per instance")
    parser.add_argument("--time-limit", type=float, default=15.0)
    parser.add_argument("--copies", type=int, default=3, help="copies of the defaults")
    parser.add_argument("--workers", default="1,2,4",
                        help="worker counts to compare with the defaults' (comma-separated)")
    parser.add_argument("--from-runs", type=Path, metavar="RUNS_JSON",
                        help="no solving: report an earlier run's runs.json")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        workers = [int(w) for w in args.workers.split(",") if w]
    except ValueError:
        parser.error(f"--workers: give comma-separated integers, got {args.workers!r}")
    if args.seeds < 1 or args.copies < 1 or args.time_limit <= 0 or any(w < 1 for w in workers):
        parser.error("--seeds and --copies must be >= 1, --time-limit > 0, worker counts >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_runs:
        try:
            saved = json.loads(args.from_runs.read_text())
            plain, meta = saved["runs"], saved["meta"]
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"--from-runs: {args.from_runs} is not this command's runs.json "
                         f"({exc!r})")
    else:
        from fresh_solver.fingerprint import machine_fingerprint

        plain = measure(args.template_seed, args.seeds, args.time_limit, args.copies, workers,
                        args.out)
        meta = {"template_seed": args.template_seed, "seeds": args.seeds,
                "time_limit_s": args.time_limit, "machine": machine_fingerprint(),
                "measured_by": rerun_command(__spec__.name, argv)}
        (args.out / "runs.json").write_text(json.dumps({"meta": meta, "runs": plain}))
    pairs = len(plain["defaults"])
    data = meta | {"pairs": pairs, "command": rerun_command(__spec__.name, argv),
                   "metrics": summarise(plain, meta["time_limit_s"])}
    write_results(args.out, data, report_markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
