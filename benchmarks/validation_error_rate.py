"""How often does validation pass what it should not? The gate's error rate, measured.

    python -m benchmarks.validation_error_rate --setting dag --runs 100 \\
        --out out/validation_aa
    ... --setting api --runs 100 --busy --out ...            # the other core kept busy
    ... --candidate SET.json --production SET.json ...       # Production against itself
    ... --candidate GAIN.json ...                            # A/B: how often a real gain passes
    ... --metric gap_integral --scale large --family-seeds 21 ...  # judged by the gap integral

Each run is one validation (:func:`fresh_solver.validation.validator.validate`, not recorded in
MLflow) of a candidate on held-out instances generated as the lifecycle generates them, at one
of the two default settings: ``dag`` (the retune DAG's: 6 held-out instances of generated
family medium-10, 3 seeds, 3 s per solve) or ``api`` (the document API's when no retune entry
exists: 3 held-out small instances, 2 seeds, 2 s). ``--family-seeds`` gives several templates
(runs cycle through them). Without ``--candidate`` the candidate is the CP-SAT defaults
themselves (A/A): every PASSED is a false pass, and the speedups should centre on 1.0.
``--busy`` keeps one core busy with a spinning process for the whole measurement, as on a
machine that also runs a scheduler, other tasks and production solves. ``--metric`` is what
validation judges by (the DAG judges a session tuned on the gap integral by it); ``--scale``
the generated families' scale (``large``: instances the time limit does not prove, where the
gap integral is the DAG's metric).

The false-pass rate comes with its exact (Clopper-Pearson) 95 % interval, so 0 of 100 reads
"at most 3.6 %", not "never".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks.record import rerun_command, write_results
from fresh_solver.choices import VALIDATION_METRICS
from fresh_solver.errors import InputError

SETTINGS = ("dag", "api")
DEFAULT_FAMILY_SEED = 10  # the retune DAG's default generator seed: family medium-10
MODULE = "benchmarks.validation_error_rate"


def held_out_paths(setting: str, family_seed: int, scale: str | None = None
                   ) -> tuple[list[str], dict[str, Any]]:
    """The held-out files of family ``family_seed`` at a default setting (of another ``scale``
    when given), and the settings."""
    from fresh_solver.lifecycle.retune import generate_instances
    from fresh_solver.lifecycle.settings import resolve
    from fresh_solver.templates.instances import SMALL_VALIDATION

    template_id = f"{setting}-{family_seed}" + (f"-{scale}" if scale else "")
    overrides = SMALL_VALIDATION if setting == "api" else {}
    settings = resolve({"template_id": template_id, **overrides,
                        **({"generator_scale": scale} if scale else {}),
                        "generator_seed": family_seed})
    _, files = generate_instances(template_id, settings)
    return files, settings


@contextlib.contextmanager
def one_core_busy(busy: bool) -> Iterator[None]:
    """A process spinning on one core while the block runs (nothing when not ``busy``)."""
    if not busy:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def proportion_ci(successes: int, trials: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95 % interval of a rate."""
    from scipy.stats import binomtest

    interval = binomtest(successes, trials).proportion_ci(confidence_level=0.95)
    return float(interval.low), float(interval.high)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    speedups = sorted(r["speedup"] for r in rows)
    passed = sum(r["passed"] for r in rows)
    low, high = proportion_ci(passed, len(rows))
    vs_production = sorted(r["vs_production"] for r in rows if r["vs_production"] is not None)
    return {"vs_production_median": median(vs_production) if vs_production else None,
            "vs_production_range": [vs_production[0], vs_production[-1]] if vs_production
            else None,
            "runs": len(rows), "passed": passed, "pass_rate": passed / len(rows),
            "pass_rate_ci95": [low, high], "speedup_median": median(speedups),
            "speedup_min": speedups[0], "speedup_max": speedups[-1],
            "speedup_q10": speedups[len(speedups) // 10],
            "speedup_q90": speedups[-1 - len(speedups) // 10],
            "median_repeats_per_pair": median(r["median_repeats"] for r in rows),
            "reasons": Counter(re.sub(r"\d[\d.]*(e-?\d+)?", "N", reason)
                               for r in rows for reason in r["reasons"]).most_common(),
            "seconds_per_run": median(r["seconds"] for r in rows)}


def report(data: dict[str, Any]) -> str:
    s = data["summary"]
    kind = "A/A (the defaults against themselves)" if not data["candidate"] else \
        f"candidate {data['candidate']}" + (f", Production {data['production']}"
                                             if data["production"] else "")
    return "\n".join([
        f"# Validation error rate: {kind}", "",
        f"setting `{data['setting']}` ({data['instances_per_template']} held-out instances x "
        f"{data['seeds']} seeds, {data['time_limit_s']:g} s per solve, judged by "
        f"{data['metric']}), {data['scale']} family seeds "
        f"{data['family_seeds']}, {'one core kept busy' if data['busy'] else 'quiet machine'}, "
        f"OR-Tools {data['ortools_version']}", "",
        "| runs | passed | pass rate (95 % CI) | speedup median (10-90 %, min-max) | "
        "repeats per pair | s per run |",
        "|---|---|---|---|---|---|",
        f"| {s['runs']} | {s['passed']} | {s['pass_rate']:.1%} ({s['pass_rate_ci95'][0]:.1%}-"
        f"{s['pass_rate_ci95'][1]:.1%}) | {s['speedup_median']:.3f}x ({s['speedup_q10']:.2f}-"
        f"{s['speedup_q90']:.2f}, {s['speedup_min']:.2f}-{s['speedup_max']:.2f}) | "
        f"{s['median_repeats_per_pair']:g} | {s['seconds_per_run']:.1f} |", "",
        *([f"Candidate vs Production: median {s['vs_production_median']:.3f}x "
           f"(min-max {s['vs_production_range'][0]:.2f}-{s['vs_production_range'][1]:.2f})."]
          if s.get("vs_production_median") else []),
        "Failure reasons: " + ("; ".join(f"{why} (x{n})" for why, n in s["reasons"]) or "none"),
        f"Load average (1 min) before / after: {data['load_before']:.2f} / "
        f"{data['load_after']:.2f} on {os.cpu_count()} cores.",
        "", f"Command: `{data['command']}`", ""])


def read_set(path: str | None, flag: str):
    from fresh_solver.params.config import SolverConfig

    return None if path is None else SolverConfig.from_file(path, f"{flag} {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=SETTINGS, default="dag")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--family-seeds", default=None,
                        help="comma-separated family seeds (templates); default 10")
    parser.add_argument("--candidate", help="a parameter set file (default: the CP-SAT defaults)")
    parser.add_argument("--production", help="a parameter set file served as Production")
    parser.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    parser.add_argument("--metric", choices=VALIDATION_METRICS, default="time_to_target",
                        help="what validation judges by")
    parser.add_argument("--scale", choices=("small", "medium", "large"),
                        help="the generated families' scale (default: the setting's)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.runs < 1:
            raise InputError(f"--runs must be >= 1, got {args.runs}")
        if args.out.exists() and not args.out.is_dir():
            raise InputError(f"--out {args.out}: exists and is not a directory")
        seeds_text = args.family_seeds
        family_seeds = [int(s) for s in seeds_text.split(",")] if seeds_text else \
            [DEFAULT_FAMILY_SEED]
        candidate = read_set(args.candidate, "--candidate")
        production = read_set(args.production, "--production")
    except (InputError, ValueError) as exc:
        problems = exc.problems if isinstance(exc, InputError) else [f"--family-seeds: {exc}"]
        print(f"error: {'; '.join(problems)}", file=sys.stderr)
        return 2
    return measure(args, family_seeds, candidate, production, rerun_command(MODULE, argv))


def measure(args: argparse.Namespace, family_seeds: list[int], candidate, production,
            command: str) -> int:
    import ortools

    from fresh_solver.fingerprint import machine_fingerprint
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.validation.compare import PassRule
    from fresh_solver.validation.validator import validate

    os.environ["FRESH_SOLVER_HOME"] = tempfile.mkdtemp(prefix="fresh-solver-aa-")
    templates = {seed: held_out_paths(args.setting, seed, args.scale) for seed in family_seeds}
    load_before = os.getloadavg()[0]
    rows = []
    with one_core_busy(args.busy):
        for i in range(args.runs):
            family_seed, (files, settings) = list(templates.items())[i % len(templates)]
            rule = PassRule(**{k: settings[k] for k in (
                "min_speedup", "max_p_value", "min_speedup_vs_production",
                "quality_tolerance")})
            started = time.perf_counter()
            result = validate(f"{args.setting}-{family_seed}", candidate or SolverConfig(),
                              tuple(files), list(range(settings["validation_seeds"])),
                              settings["validation_time_limit"], rule, production,
                              track=False, metric=args.metric)
            seconds = time.perf_counter() - started
            pairs = result.comparisons[0].pairs
            rows.append({"run": i, "family_seed": family_seed, "passed": result.passed,
                         "speedup": result.speedup_factor,
                         "p_value": result.comparisons[0].p_value,
                         "vs_production": (result.comparisons[1].speedup
                                           if len(result.comparisons) > 1 else None),
                         "reasons": result.reasons,
                         "median_repeats": median(p.repeats for p in pairs),
                         "pairs": len(pairs), "seconds": seconds})
            print(f"[{i + 1}/{args.runs}] {'PASSED' if result.passed else 'failed'} "
                  f"{result.speedup_factor:.3f}x p={rows[-1]['p_value']:.3g} "
                  f"({seconds:.1f} s)", file=sys.stderr, flush=True)
    files, settings = next(iter(templates.values()))
    data = {"command": command, "setting": args.setting, "busy": args.busy,
            "metric": args.metric, "scale": settings["generator_scale"],
            "family_seeds": list(templates), "instances_per_template": len(files),
            "seeds": settings["validation_seeds"],
            "time_limit_s": settings["validation_time_limit"],
            "candidate": args.candidate, "production": args.production,
            "ortools_version": ortools.__version__, "machine": machine_fingerprint(),
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "rows": rows, "summary": summarise(rows)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(args.out, data, report(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
