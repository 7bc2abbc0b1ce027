"""Which templates are worth tuning? One-knob variants against the defaults, per template.

    python -m fresh_solver.performance.template_screen --scale large --templates 9,18,21 \
        --out out/template_screen

Tuning pays where the defaults are weak, and a cheap screen finds those templates before an
expensive tuning session: for each generated template, a few instances run with the defaults
(the reference, which sets the targets, DESIGN §8) and with single-knob variants, paired on the
same solver seed and measured as validation measures them (interleaved, the first rotating; a
pair of short solves repeated up to a second of solving, each side timed by its median: one
timing of a 30 ms solve says nothing; the targets set by an untimed run of the defaults on
another seed, so the defaults' own runs are not favoured); the table gives each variant's
geometric-mean speedup in time to target and the defaults' median time with how often each
pair was timed.
A template where no variant moves (all near 1x or below) has little to gain from tuning.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fresh_solver.fingerprint import machine_fingerprint
from fresh_solver.measure import TARGET, measure_pairs
from fresh_solver.model.generate import SCALES, generate_family
from fresh_solver.params.config import SolverConfig
from fresh_solver.performance.record import rerun_command, write_results
from fresh_solver.validation.compare import compare

# One knob at a time, each a value the default search space can reach. Up to 8 cores,
# num_workers=8 is what the defaults run on these (makespan) families: its column shows the
# screen's own noise.
VARIANTS: dict[str, dict] = {
    "num_workers=1": {"cp_sat": {"num_workers": 1}},
    "num_workers=2": {"cp_sat": {"num_workers": 2}},
    "num_workers=4": {"cp_sat": {"num_workers": 4}},
    "num_workers=8": {"cp_sat": {"num_workers": 8}},
    "linearization_level=0": {"cp_sat": {"linearization_level": 0}},
    "linearization_level=2": {"cp_sat": {"linearization_level": 2}},
    "optimize_with_core": {"cp_sat": {"optimize_with_core": True}},
    "no symmetry breaking": {"model": {"symmetry_breaking": False}},
    "warm start": {"model": {"warm_start": True}},
}


def screen_template(scale: str, template_seed: int, instances: int, seed: int,
                    limit: float, first_instance: int = 0) -> dict[str, object]:
    """One template's row: each variant's geometric-mean speedup in time to target over the
    defaults, measured as validation measures (interleaved, short pairs repeated)."""
    problems = {f"{scale}-{template_seed}-i{i}": generate_family(scale, template_seed,
                                                                instance_seed=i)
                for i in range(first_instance, first_instance + instances)}
    configs = {"defaults": SolverConfig()} | {name: SolverConfig.from_dict(config)
                                              for name, config in VARIANTS.items()}
    runs = measure_pairs(configs, problems, [seed], limit, target=SolverConfig())
    targets, reference = runs.pop(TARGET), runs.pop("defaults")
    comparisons = {name: compare("defaults", reference, runs[name], limit, 0.0, targets)
                   for name in VARIANTS}
    pairs = next(iter(comparisons.values())).pairs
    row: dict[str, object] = {"template": f"{scale}-{template_seed}",
                              "reference": [{"instance": p.instance,
                                             "status": reference[(p.instance, seed)][0].status,
                                             "objective": p.baseline_objective,
                                             "time_to_target_s": round(p.baseline_time_s, 3),
                                             "repeats": p.repeats} for p in pairs]}
    return row | {name: comparison.speedup for name, comparison in comparisons.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=list(SCALES), default="large")
    parser.add_argument("--templates", default="9,18,21",
                        help="comma-separated template (family) seeds")
    parser.add_argument("--instances", type=int, default=2, help="instances per template")
    parser.add_argument("--instance-offset", type=int, default=0,
                        help="first instance seed (1000: the instances the retune DAG holds "
                             "out; a gain that holds on both is one tuning can keep)")
    parser.add_argument("--seed", type=int, default=0, help="solver seed (paired)")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.templates.split(",")]
    except ValueError:
        parser.error(f"--templates: expected comma-separated integers, got {args.templates!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for template_seed in seeds:
        rows.append(screen_template(args.scale, template_seed, args.instances, args.seed,
                                    args.time_limit, args.instance_offset))
        print(f"screened {rows[-1]['template']}", file=sys.stderr, flush=True)
    data = {"command": rerun_command(__spec__.name, argv),
            "machine": machine_fingerprint(), "args": {k: str(v) for k, v in vars(args).items()},
            "rows": rows}
    lines = ["| template | defaults: time to target (s) | " + " | ".join(VARIANTS) + " |",
             "|---" * (len(VARIANTS) + 2) + "|"]
    for row in rows:
        times = ", ".join(f"{r['time_to_target_s']:.3f} {r['status'][:4]} x{r['repeats']}"
                          for r in row["reference"])
        lines.append(f"| {row['template']} | {times} | "
                     + " | ".join(f"{row[name]:.2f}x" for name in VARIANTS) + " |")
    write_results(args.out, data, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
