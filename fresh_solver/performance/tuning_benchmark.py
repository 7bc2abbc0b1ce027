"""Does tuning pay off on instances it never saw? And does Bayesian optimisation beat random?

    python -m fresh_solver.performance.tuning_benchmark --out out/tuning_benchmark

The default template, large-18, was picked by ``template_screen`` as one where the defaults
are weak (tuning cannot beat defaults that are already fast: on medium-12 it found nothing).

One template (a generated identical-job family) gives a training set and a held-out set of
instances (same template, other instance seeds). For each tuner seed, a GP session and a
random-search session with the same budget tune on the training set; then every tuned
configuration and the CP-SAT defaults (the reference) run on the held-out instances with the
same solver seeds, paired: time to target of the reference's results (DESIGN §8), speedup =
reference time / tuned time, geometric mean over pairs. The budget is reported in CPU-seconds
(process CPU time of the tuning sessions, CP-SAT's threads included).

MLflow runs go to ``<out>/home`` (its own SQLite store) unless MLFLOW_TRACKING_URI is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from fresh_solver.fingerprint import machine_fingerprint
from fresh_solver.measure import geometric_mean, paired_speedup, spread
from fresh_solver.model import problem_to_dict
from fresh_solver.model.generate import SCALES, generate_family
from fresh_solver.params.config import SolverConfig
from fresh_solver.performance.record import rerun_command, write_results
from fresh_solver.tuning.scoring import evaluate, references_from


def write_instances(folder: Path, scale: str, template_seed: int, first_seed: int, count: int,
                    seen: set[str]) -> list[str]:
    """``count`` instances of the template, none equal to one in ``seen`` (so held-out
    instances never repeat a training one)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    seed = first_seed
    while len(paths) < count:
        problem = generate_family(scale, template_seed, instance_seed=seed)
        seed += 1
        body = problem_to_dict(problem) | {"name": ""}
        key = json.dumps(body, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        path = folder / f"{problem.name}.json"
        path.write_text(json.dumps(problem_to_dict(problem)))
        paths.append(str(path))
    return paths


def held_out_speedups(configs: dict[str, SolverConfig], paths: list[str], seeds: list[int],
                      limit: float, log) -> dict[str, Any]:
    """Each configuration against the reference on the held-out pairs (time to target)."""
    from fresh_solver.tuning.session import load_instances

    instances, _ = load_instances(tuple(paths))
    # One discarded solve first: the first CP-SAT call of a process pays one-time costs.
    evaluate(SolverConfig(), dict(list(instances.items())[:1]), [0], metric="time_to_target",
             time_limit=limit)
    reference = evaluate(SolverConfig(), instances, seeds, metric="time_to_target",
                         time_limit=limit)
    targets = references_from(reference)
    base = {(r.instance, r.seed): r.score for r in reference.runs}
    out: dict[str, Any] = {"reference": {"score": reference.score,
                                         "runs": [vars(r) for r in reference.runs]}}
    for name, config in configs.items():
        result = evaluate(config, instances, seeds, metric="time_to_target", time_limit=limit,
                          references=targets, cap_factor=None)
        speedups = [paired_speedup(base[(r.instance, r.seed)], r.score) for r in result.runs]
        out[name] = {"score": result.score, "speedup": spread(speedups),
                     "runs": [vars(r) for r in result.runs]}
        log(f"  held-out {name}: score {result.score:.4g} s vs reference "
            f"{reference.score:.4g} s -> geomean speedup {geometric_mean(speedups):.2f}x")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=list(SCALES), default="large")
    parser.add_argument("--template-seed", type=int, default=18)
    parser.add_argument("--train", type=int, default=3, help="training instances")
    parser.add_argument("--held-out", type=int, default=6, help="held-out instances")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--trial-time-limit", type=float, default=5.0)
    parser.add_argument("--seeds", type=int, default=1, help="solver seeds while tuning")
    parser.add_argument("--eval-seeds", type=int, default=2, help="solver seeds held out")
    parser.add_argument("--eval-time-limit", type=float, default=15.0)
    parser.add_argument("--tuner-seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FRESH_SOLVER_HOME", str((args.out / "home").resolve()))
    from fresh_solver.tuning.tuner import TuningSpec, tune

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    seen: set[str] = set()
    train = write_instances(args.out / "train", args.scale, args.template_seed, 0, args.train,
                            seen)
    held_out = write_instances(args.out / "held_out", args.scale, args.template_seed, 1000,
                               args.held_out, seen)
    template_id = f"bench-{args.scale}-{args.template_seed}-{int(time.time())}"
    sessions: list[dict[str, Any]] = []
    configs: dict[str, SolverConfig] = {}
    for tuner_seed in range(args.tuner_seeds):
        for estimator in ("GP", "random"):
            spec = TuningSpec(template_id=template_id, instance_paths=tuple(train),
                              trials=args.trials, trial_time_limit=args.trial_time_limit,
                              seeds=args.seeds, estimator=estimator, tuner_seed=tuner_seed)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            summary = tune(spec)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            name = f"{estimator}-seed{tuner_seed}"
            configs[name] = SolverConfig.from_dict(summary["best_params"])
            sessions.append({"name": name, "estimator": estimator, "tuner_seed": tuner_seed,
                             "run_id": summary["run_id"], "train_best": summary["best_score"],
                             "train_default": summary["default_score"],
                             "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1),
                             "best_params": summary["best_params"]})
            log(f"{name}: train score {summary['best_score']:.4g} (defaults "
                f"{summary['default_score']:.4g}), {cpu:.0f} CPU-s, {wall:.0f} s")
    log("held-out evaluation:")
    # The defaults again, scored like a tuned set: the noise floor of the comparison.
    configs["defaults-control"] = SolverConfig()
    held = held_out_speedups(configs, held_out, list(range(args.eval_seeds)),
                             args.eval_time_limit, log)
    # GP's random start draws the points random search draws with the same seed: when both
    # return one configuration, their held-out scores differ by noise only, a tie.
    ties = sum(configs[f"GP-seed{s}"].hash == configs[f"random-seed{s}"].hash
               for s in range(args.tuner_seeds))
    wins = sum(configs[f"GP-seed{s}"].hash != configs[f"random-seed{s}"].hash
               and held[f"GP-seed{s}"]["score"] < held[f"random-seed{s}"]["score"]
               for s in range(args.tuner_seeds))
    data = {"command": rerun_command(__spec__.name, argv),
            "machine": machine_fingerprint(), "args": {k: str(v) for k, v in vars(args).items()},
            "train": [Path(p).name for p in train],
            "held_out": [Path(p).name for p in held_out], "sessions": sessions,
            "held_out_results": held,
            "gp_vs_random": {"wins": wins, "ties": ties,
                             "losses": args.tuner_seeds - wins - ties}}
    lines = ["| session | train score (defaults) | held-out speedup vs defaults (geomean, "
             "min-max) | num_workers | CPU-s |", "|---|---|---|---|---|"]
    for s in sessions:
        h = held[s["name"]]["speedup"]
        workers = s["best_params"]["cp_sat"].get("num_workers", "default")
        lines.append(f"| {s['name']} | {s['train_best']:.3g} ({s['train_default']:.3g}) | "
                     f"{h['geomean']:.2f}x ({h['min']:.2f}-{h['max']:.2f}) | {workers} | "
                     f"{s['cpu_seconds']} |")
    control = held["defaults-control"]["speedup"]
    lines.append(f"| defaults-control | - | {control['geomean']:.2f}x "
                 f"({control['min']:.2f}-{control['max']:.2f}) | default | - |")
    lines.append(f"\nGP vs random search on the held-out score, over {args.tuner_seeds} tuner "
                 f"seeds: {wins} won, {ties} tied (both returned the same configuration), "
                 f"{args.tuner_seeds - wins - ties} lost.")
    write_results(args.out, data, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
