"""Does judging a configuration relative to the defaults measured beside it survive machine drift?

    python -m benchmarks.relative_power [RESULTS_JSON] [--out DIR]

Reads the measured solve times of ``python -m benchmarks.detector_power`` (its
``results.json``: per instance and seed, configuration A and a slower B interleaved in block 1,
then again in a later block 2) and resamples, for each repetition count, trials of the
benchmark DAG's question "is B slower than in its baseline?" with the baseline from block 1
and the current run from block 2 (no real change, only the machine's drift between blocks):

- *absolute*: B's times now against B's times in the baseline (the detector on its own);
- *relative*: the per-seed ratio B / A now against the same ratio in the baseline (what
  :mod:`fresh_solver.lifecycle.benchmark` does: A plays the CP-SAT defaults, run back to back
  with the configuration in the same benchmark).

The false-alarm rate of each (A/A across blocks, disjoint seeds) and its power against an exact
1.5x slow-down of B in block 2 (B's times multiplied by 1.5: synthetic, stated as such). The
decision is the detector's (:func:`fresh_solver.performance.regression_stats.compare_instances`:
one-sided Mann-Whitney per instance, Holm, ratio of medians >= 1.2; an alarm when any instance
is flagged).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

CASES = ("relative_aa", "absolute_aa", "relative_1.5x", "absolute_1.5x")


def _times(series: dict[str, Any], name: str, instances: list[str], seeds: list[int],
           factor: float = 1.0) -> dict[str, list[float]]:
    return {i: [factor * series[name][i][k] for k in seeds] for i in instances}


def _ratios(series: dict[str, Any], num: str, den: str, instances: list[str],
            seeds: list[int], factor: float = 1.0) -> dict[str, list[float]]:
    from fresh_solver.measure import floor_time

    return {i: [floor_time(factor * series[num][i][k]) / floor_time(series[den][i][k])
                for k in seeds] for i in instances}


def measure(results: dict[str, Any], repetitions: list[int], trials: int,
            seed: int = 0) -> list[dict[str, Any]]:
    """Per repetition count, the share of trials that alarmed in each of :data:`CASES`."""
    from fresh_solver.performance.regression_stats import compare_instances

    series, instances = results["series"], results["instances"]
    n_seeds = len(results["seeds"])
    rng = random.Random(seed)

    def alarm(base: dict[str, list[float]], current: dict[str, list[float]]) -> bool:
        return any(r.regression for r in compare_instances(base, current, n_resamples=0))

    rows = []
    for r in repetitions:
        if 2 * r > n_seeds:
            raise SystemExit(f"{r} repetitions need {2 * r} seeds; the results have {n_seeds}")
        counts = dict.fromkeys(CASES, 0)
        for _ in range(trials):
            drawn = rng.sample(range(n_seeds), 2 * r)
            before, now = drawn[:r], drawn[r:]
            counts["relative_aa"] += alarm(_ratios(series, "B1", "A1", instances, before),
                                           _ratios(series, "B2", "A2", instances, now))
            counts["absolute_aa"] += alarm(_times(series, "B1", instances, before),
                                           _times(series, "B2", instances, now))
            counts["relative_1.5x"] += alarm(_ratios(series, "B1", "A1", instances, before),
                                             _ratios(series, "B2", "A2", instances, now, 1.5))
            counts["absolute_1.5x"] += alarm(_times(series, "B1", instances, before),
                                             _times(series, "B2", instances, now, 1.5))
        rows.append({"repetitions": r, **{k: v / trials for k, v in counts.items()}})
    return rows


def report(results_path: Path, results: dict[str, Any], rows: list[dict[str, Any]],
           trials: int) -> str:
    lines = ["# Relative vs absolute regression checks across time blocks", "",
             f"Command: `python -m benchmarks.relative_power {results_path}`  ",
             f"Data: `{results.get('command')}` (machine {results.get('fingerprint')}, "
             f"{len(results['instances'])} instances x {len(results['seeds'])} seeds, "
             f"num_workers {results.get('num_workers')}, cap {results.get('time_limit_s')} s); "
             f"{trials} resampled trials per cell, disjoint seeds for baseline and current.",
             "", "Share of trials that alarmed (baseline: block 1; current: block 2):", "",
             "| repetitions | A/A relative (B/A ratio) | A/A absolute (B) | 1.5x relative "
             "| 1.5x absolute |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['repetitions']} | {row['relative_aa']:.1%} | "
                     f"{row['absolute_aa']:.1%} | {row['relative_1.5x']:.1%} | "
                     f"{row['absolute_1.5x']:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", default="out/detector_power/results.json",
                        help="detector_power's results.json")
    parser.add_argument("--repetitions", default="5,8,10")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--out", default="out/relative_power")
    args = parser.parse_args(argv)
    path = Path(args.results)
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read detector_power's results ({exc}); run "
                         "python -m benchmarks.detector_power first") from None
    rows = measure(results, [int(r) for r in args.repetitions.split(",")], args.trials)
    text = report(path, results, rows, args.trials)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"source": str(path), "trials": args.trials,
                                                  "rows": rows}, indent=1))
    (out / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
