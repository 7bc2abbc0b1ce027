"""Which templates are worth tuning, and on which knobs? One-knob variants against the defaults.

    python -m benchmarks.template_screen --scale large --templates 9,18,21 \
        --out out/template_screen
    python -m benchmarks.template_screen --scale large --templates 21 \
        --space default --instances 3 --time-limit 5 --metric gap_integral \
        --write-space out/large-21.toml --out out/screen-21

Tuning pays where the defaults are weak, and a cheap screen finds those templates before an
expensive tuning session: for each generated template, a few instances run with the defaults
(the reference, which sets the targets, DESIGN §8) and with single-knob variants, paired on the
same solver seeds and measured as validation measures them (interleaved, the first rotating; a
pair of short solves repeated up to a second of solving, each side timed by its median: one
timing of a 30 ms solve says nothing; the targets set by an untimed run of the defaults on
another seed, so the defaults' own runs are not favoured); the table gives each variant's
geometric-mean speedup (time to target or the primal gap integral) and the defaults' median
time with how often each pair was timed.
A template where no variant moves (all near 1x or below) has little to gain from tuning.

``--space`` screens every knob of a search space instead of the fixed variants (each
alternative value alone: every other category, a range's ends and middle), and
``--write-space FILE`` writes the space narrowed to the knobs whose values helped (a
geometric-mean gain of at least ``--min-gain`` with a one-sided Wilcoxon p below
``--max-p``), each as a categorical of the defaults' value and the values that helped: 20
trials over 15 knobs rarely meet a real gain, where over the few that screened well every
trial combines them (README, "Does the returned set hold"). Screen the instances tuning sees
(the default, instance seeds from 0), never the held-out ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.record import rerun_command, write_results
from fresh_solver.errors import InputError
from fresh_solver.fingerprint import machine_fingerprint
from fresh_solver.measure import TARGET, best_objectives, measure_pairs
from fresh_solver.model import Problem
from fresh_solver.model.generate import SCALES, generate_family
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.space import SearchSpace, load_space
from fresh_solver.tuning.session import load_instances
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


def space_variants(space: SearchSpace, objective: str) -> dict[str, dict]:
    """Every knob of ``space`` moved alone off the defaults' value, named ``key=value``:
    each other category, a range's low, middle and high end (the defaults' own value
    skipped). Values the configuration check refuses are skipped too."""
    anchor = space.point_of(SolverConfig(), objective)
    if anchor is None:
        raise InputError(f"{space.source}: the space does not hold the defaults' own values; "
                         f"a screen moves one knob away from them")
    variants: dict[str, dict] = {}
    for dim in space.dimensions:
        if dim.kind == "categorical":
            values = list(dim.values)
        elif dim.kind == "integer":
            values = sorted({int(dim.low), (int(dim.low) + int(dim.high)) // 2, int(dim.high)})
        else:
            values = [dim.low, dim.high]
        for value in values:
            config = {dim.section: {dim.name: value}}
            try:
                moved = space.point_of(SolverConfig.from_dict(config), objective) != anchor
            except InputError:
                continue
            if moved:
                variants[f"{dim.key}={value}"] = config
    return variants


def narrowed_space(space: SearchSpace, objective: str, row: dict[str, Any],
                   variants: dict[str, dict], min_gain: float, max_p: float) -> str | None:
    """The TOML of ``space`` narrowed to the knobs whose screened values helped, each a
    categorical of the defaults' value and those values; None when none did."""
    anchor = dict(zip((d.key for d in space.dimensions), space.point_of(SolverConfig(),
                                                                         objective)))
    helped: dict[str, list[Any]] = {}
    for name, config in variants.items():
        result = row["variants"][name]
        if result["speedup"] >= min_gain and result["p_value"] < max_p:
            (section, values), = config.items()
            (knob, value), = values.items()
            helped.setdefault(f"{section}.{knob}", []).append(value)
    if not helped:
        return None
    lines = [f"# {Path(space.source).name} narrowed by template_screen on {row['template']} "
             f"({len(row['reference'])} pairs, {row['metric']}; kept: gain >= {min_gain:g}x "
             f"and one-sided Wilcoxon p < {max_p:g}):",
             "# each knob the defaults' value first, then the values that helped."]
    for key, values in helped.items():
        gains = ", ".join(f"{v}: {row['variants'][f'{key}={v}']['speedup']:.2f}x"
                          for v in values)
        lines += ["", f"# {gains}", f"[{key}]", 'kind = "categorical"',
                  f"values = {json.dumps([anchor[key], *values])}"]
    return "\n".join(lines) + "\n"


def generated_instances(scale: str, template_seed: int, count: int,
                        first_instance: int = 0) -> dict[str, Problem]:
    """``count`` instances of a generated template, instance seeds from ``first_instance``."""
    return {f"{scale}-{template_seed}-i{i}": generate_family(scale, template_seed,
                                                            instance_seed=i)
            for i in range(first_instance, first_instance + count)}


def screen_template(label: str, problems: dict[str, Problem], seeds: list[int], limit: float,
                    *, variants: dict[str, dict] | None = None,
                    metric: str = "time_to_target") -> dict[str, Any]:
    """One template's row: each variant's geometric-mean speedup (and one-sided Wilcoxon p)
    over the defaults by ``metric`` on ``problems`` × ``seeds``, measured as validation
    measures (interleaved, short pairs repeated)."""
    variants = VARIANTS if variants is None else variants
    configs = {"defaults": SolverConfig()} | {name: SolverConfig.from_dict(config)
                                              for name, config in variants.items()}
    runs = measure_pairs(configs, problems, seeds, limit, target=SolverConfig())
    targets, reference = runs.pop(TARGET), runs.pop("defaults")
    best = best_objectives([reference, *runs.values()])
    comparisons = {name: compare("defaults", reference, runs[name], limit, 0.0, targets,
                                 metric=metric, best=best)
                   for name in variants}
    pairs = next(iter(comparisons.values())).pairs
    return {"template": label, "metric": metric,
            "reference": [{"instance": p.instance, "seed": p.seed,
                           "status": reference[(p.instance, p.seed)][0].status,
                           "objective": p.baseline_objective,
                           "score": round(p.baseline_time_s, 3),
                           "repeats": p.repeats} for p in pairs],
            "variants": {name: {"speedup": c.speedup, "p_value": c.p_value}
                         for name, c in comparisons.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=list(SCALES), default="large")
    parser.add_argument("--templates", default="9,18,21",
                        help="comma-separated template (family) seeds")
    parser.add_argument("--instances-from", nargs="+", metavar="FILE",
                        help="screen these problem files (one template's instances) instead "
                             "of generated templates")
    parser.add_argument("--instances", type=int, default=2,
                        help="instances per generated template")
    parser.add_argument("--instance-offset", type=int, default=0,
                        help="first instance seed (1000: the instances the retune DAG holds "
                             "out; a gain that holds on both is one tuning can keep)")
    parser.add_argument("--seeds", default="0,1,2,3",
                        help="comma-separated solver seeds (paired; default 4: on 6 pairs five "
                             "of the six knobs kept on large-21 fell to 1.04-1.17x on 12)")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--metric", choices=("time_to_target", "gap_integral"),
                        default="time_to_target")
    parser.add_argument("--space", metavar="NAME|FILE",
                        help="screen every knob of this search space (default: the fixed "
                             "variants)")
    parser.add_argument("--write-space", type=Path, metavar="FILE",
                        help="with --space and one template: write the space narrowed to the "
                             "knobs that helped")
    parser.add_argument("--min-gain", type=float, default=1.1)
    parser.add_argument("--max-p", type=float, default=0.2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        templates = [int(s) for s in args.templates.split(",")]
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--templates and --seeds: expected comma-separated integers, got "
                     f"{args.templates!r} and {args.seeds!r}")
    if args.write_space and (not args.space or (len(templates) != 1
                                                and not args.instances_from)):
        parser.error("--write-space: needs --space and a single template")
    try:
        if args.instances_from:
            problems, _ = load_instances(args.instances_from)
            objectives = {problem.objective for problem in problems.values()}
            if len(objectives) != 1:
                raise InputError(f"--instances-from: the files mix objectives "
                                 f"({', '.join(sorted(objectives))}); screen one template")
            objective = objectives.pop()
            to_screen = {Path(args.instances_from[0]).parent.name or "instances": problems}
        else:
            objective = "makespan"  # generated families minimise the makespan
            to_screen = {f"{args.scale}-{t}": generated_instances(
                args.scale, t, args.instances, args.instance_offset) for t in templates}
        space = load_space(args.space) if args.space else None
        variants = space_variants(space, objective) if space else None
    except InputError as exc:
        parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, problems in to_screen.items():
        rows.append(screen_template(label, problems, seeds, args.time_limit,
                                    variants=variants, metric=args.metric))
        print(f"screened {label}", file=sys.stderr, flush=True)
    names = list(rows[0]["variants"])
    data = {"command": rerun_command(__spec__.name, argv),
            "machine": machine_fingerprint(), "args": {k: str(v) for k, v in vars(args).items()},
            "rows": rows}
    unit = "time to target (s)" if args.metric == "time_to_target" else "gap integral (s)"
    lines = ["| variant | " + " | ".join(row["template"] for row in rows) + " |",
             "|---" * (len(rows) + 1) + "|",
             f"| defaults: {unit}, status, times timed | "
             + " | ".join(", ".join(f"{r['score']:.3f} {r['status'][:4]} x{r['repeats']}"
                                    for r in row["reference"]) for row in rows) + " |"]
    lines += [f"| {name} | " + " | ".join(
        f"{row['variants'][name]['speedup']:.2f}x (p {row['variants'][name]['p_value']:.2g})"
        for row in rows) + " |" for name in names]
    if args.write_space:
        text = narrowed_space(space, objective, rows[0], variants, args.min_gain, args.max_p)
        if text is None:
            print(f"no knob helped by >= {args.min_gain:g}x at p < {args.max_p:g}: "
                  f"{args.write_space} not written (little for tuning to find)", file=sys.stderr)
        else:
            args.write_space.parent.mkdir(parents=True, exist_ok=True)
            args.write_space.write_text(text)
            load_space(args.write_space)  # what it wrote is a valid space
            print(f"wrote {args.write_space}", file=sys.stderr)
    write_results(args.out, data, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
