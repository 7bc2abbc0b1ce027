"""Memory and scale: template model vs baseline model on one template's identical jobs, from
tens to thousands of tasks (issue 9, "Memory and scale").

    python -m benchmarks.scale_benchmark --out out/scale \\
        --tasks 50,100,250,500,1000,2000,4000 --repetitions 3 --time-limit 5

The instances are N identical jobs of one template (:func:`fresh_solver.model.instantiate.
instantiate_template`): a template of ``--template-file``/``--template-id``, or by default the
template of the generated family ``family-large-<--family-seed>``. Each ``--tasks`` size
becomes the job count closest to it (tasks = jobs x the template's tasks).

Every (size, model, repetition) runs in a FRESH Python process (``python -m`` this module's
``worker``), so its peak RSS belongs to that one model alone; the order is interleaved (each
repetition goes through every size, each size through both models) so the machine's drift
falls on both models alike. A worker imports everything first, instantiates the problem, then:

1. builds the model alone (:func:`fresh_solver.solver.build_model`): the model size
   (variables, constraints), the peak RSS of the build phase
   (:func:`fresh_solver.performance.runner.peak_rss`) and the **build increment**, that peak
   minus the RSS just before the build (taken after :func:`release_free_heap`): the model's
   own memory. Then ``--builds`` - 1 more builds, each dropped before the next: the **build
   time** is the median of the process's builds (``BuiltModel.build_time_s``), which damps
   the noise of a shared machine; the first (cold) one is kept too;
2. drops the model and solves (:func:`fresh_solver.solver.solve`, which builds again) for
   ``--time-limit`` seconds (build included): the **peak RSS** is the process's lifetime peak
   (``ru_maxrss``) at the end of the solve: build and CP-SAT together. It depends on how far
   CP-SAT gets within the limit (and on ``num_workers``; on large instances a short limit can
   end it inside its presolve), so the limit is part of the figure. The schedule is checked
   afterwards, outside the measured part.

**Idle** processes import the same modules and load the template file but build nothing; their
median peak RSS (the interpreter, OR-Tools, pandas, ...) is reported and subtracted, so the
growth exponents are about the model, not the interpreter. "Above idle" includes the problem
object of N jobs, the same for both models. Unless ``--no-tracemalloc``, one more worker per
(size, model) builds under :mod:`tracemalloc` (Python allocations only: the CP-SAT proto
lives in C++ and is not seen) and reports its peak; it is a separate process because tracing
slows the build several times over.

Growth exponents: :func:`fresh_solver.performance.summary.fit_power_law` of the per-size
medians against tasks, over all sizes and over the sizes from ``--fit-from`` tasks up (where
fixed costs weigh less). Targets (issue 9): template memory <= 1.0x baseline, and linear
growth, read here as "at most linear": an exponent <= 1 + :data:`LINEAR_TOLERANCE`.

Timings are CPU times of a 2-core machine shared with other work: medians and spread (min-max
over repetitions) are reported, never the fastest run. Results go to ``results.json`` and
``report.md`` in ``--out`` (:func:`benchmarks.record.write_results`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

from fresh_solver.errors import InputError

MODULE = "benchmarks.scale_benchmark"
MODELS = ("baseline", "template")
DEFAULT_TASKS = "50,100,250,500,1000,2000,4000"
# An exponent up to 1.1 counts as linear: a 2-core shared machine's timing noise and the
# allocator's step-wise growth move a fitted exponent by that much between runs.
LINEAR_TOLERANCE = 0.1
WORKER_TIMEOUT_S = 600


# -------------------------------------------------------------------------------------------
# The worker: one measurement in its own process


def _worker(argv: list[str]) -> dict[str, Any]:
    """One (model, size) measured in this process (module docstring); ``--model idle``
    imports the same modules, loads the template file and builds nothing."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} worker")
    parser.add_argument("--template-file", type=Path, required=True)
    parser.add_argument("--template-id", required=True)
    parser.add_argument("--model", choices=[*MODELS, "idle"], required=True)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--builds", type=int, default=1, help="timed builds in this process")
    parser.add_argument("--tracemalloc", action="store_true", help="build only, traced")
    args = parser.parse_args(argv)

    import gc
    import resource
    import tracemalloc

    import psutil

    from fresh_solver.model import load_problem
    from fresh_solver.model.instantiate import instantiate_template
    from fresh_solver.performance.runner import peak_rss
    from fresh_solver.solver import build_model, check_schedule, solve

    process = psutil.Process()

    def rss_mb() -> float:
        return process.memory_info().rss / 2**20

    def lifetime_peak_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    out: dict[str, Any] = {"model": args.model, "rss_imported_mb": rss_mb()}
    source = load_problem(args.template_file)
    if args.model == "idle":
        return out | {"peak_rss_mb": max(lifetime_peak_mb(), rss_mb())}
    problem = instantiate_template(source, args.template_id, args.jobs)
    gc.collect()
    out |= {"jobs": len(problem.jobs), "tasks": problem.num_tasks,
            "heap_trimmed": release_free_heap(), "rss_problem_mb": rss_mb()}
    if args.tracemalloc:
        tracemalloc.start()
        built = build_model(problem, args.model)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return out | {"tracemalloc_peak_mb": peak / 2**20,
                      "build_time_traced_s": built.build_time_s}
    with peak_rss() as build_peak:
        built = build_model(problem, args.model)
    times = [built.build_time_s]
    out |= {"model_size": built.size, "build_peak_rss_mb": build_peak[0],
            "build_increment_mb": build_peak[0] - out["rss_problem_mb"]}
    del built
    gc.collect()
    for _ in range(args.builds - 1):
        times.append(build_model(problem, args.model).build_time_s)
        gc.collect()
    out |= {"build_time_s": median(times), "first_build_time_s": times[0],
            "build_times_s": times}
    params = {"num_workers": args.num_workers} if args.num_workers else {}
    with peak_rss() as solve_peak:
        result = solve(problem, model=args.model, params=params, time_limit=args.time_limit,
                       seed=args.seed, check=False)
    out |= {"peak_rss_mb": max(lifetime_peak_mb(), solve_peak[0]),
            "build_time_in_solve_s": result.build_time_s, "status": result.status,
            "objective": result.objective, "wall_time_s": result.wall_time_s,
            "num_workers": result.num_workers}
    violations = check_schedule(problem, result.schedule) if result.schedule else None
    if violations:
        raise AssertionError(f"{args.model} on {problem.name}: invalid schedule: "
                             f"{violations[:3]}")
    return out | {"valid": None if violations is None else True}


def release_free_heap() -> bool:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim``), so that an RSS
    increment measured next counts the new allocations only: otherwise pages that imports and
    the problem freed stay resident, and a build that fits in them shows (almost) no increment
    while a larger one shows its size minus them, which bends a fitted exponent above 1.
    False where the C library has no ``malloc_trim`` (not glibc)."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def run_worker(template_file: Path, template_id: str, model: str, jobs: int = 1, *,
               time_limit: float = 5.0, seed: int = 0, num_workers: int = 0, builds: int = 1,
               traced: bool = False) -> dict[str, Any]:
    """One measurement in a fresh ``python -m`` process (so its peak RSS is its own); the
    worker's JSON result. A failed worker raises RuntimeError with its stderr."""
    cmd = [sys.executable, "-m", MODULE, "worker", "--template-file", str(template_file),
           "--template-id", template_id, "--model", model, "--jobs", str(jobs),
           "--time-limit", str(time_limit), "--seed", str(seed),
           "--num-workers", str(num_workers), "--builds", str(builds)] + (
               ["--tracemalloc"] if traced else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"scale worker failed ({' '.join(cmd[3:])}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------------------------
# Sizes, summary, report


def parse_tasks(text: str) -> list[int]:
    """``50,100,250`` as a list of task counts; anything else is an InputError."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise InputError(f"--tasks: expected comma-separated positive integers such as "
                         f"50,100,250, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise InputError(f"--tasks: task counts must be >= 1, got {text!r}")
    return sizes


def job_counts(sizes: list[int], tasks_per_job: int) -> list[int]:
    """Per task count the nearest whole job count (at least 1), without repeats, ascending:
    the template fixes how many tasks a job has."""
    return sorted({max(1, round(s / tasks_per_job)) for s in sizes})


def _fit(sizes: list[int], values: list[float], low: int) -> dict[str, Any] | None:
    """The power-law fit of ``values`` on ``sizes`` restricted to sizes >= ``low``, and the
    straight line through the same points (its slope per 1000 tasks and intercept: a power
    law bends where a figure has a fixed part, a line does not)."""
    import numpy as np

    from fresh_solver.performance.summary import fit_power_law

    pairs = [(s, v) for s, v in zip(sizes, values) if s >= low and v is not None]
    if any(v <= 0 for _, v in pairs):
        return None  # above idle by nothing measurable: no exponent to fit
    fit = fit_power_law([s for s, _ in pairs], [v for _, v in pairs]) if pairs else None
    if fit is None:
        return None
    slope, intercept = np.polyfit([s for s, _ in pairs], [v for _, v in pairs], 1)
    return {"exponent": fit[0], "coefficient": fit[1], "per_1000_tasks": float(slope) * 1000,
            "intercept": float(intercept), "tasks_from": pairs[0][0], "tasks_to": pairs[-1][0],
            "points": len(pairs)}


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarise(runs: list[dict[str, Any]], idle: list[dict[str, Any]],
              traced: list[dict[str, Any]], fit_from: int) -> dict[str, Any]:
    """Per size and model: medians and spread of build time and peak RSS, above idle, the
    template/baseline ratios; per model the growth exponents (module docstring)."""
    idle_mb = median(r["peak_rss_mb"] for r in idle)
    sizes = sorted({r["tasks"] for r in runs})
    per_size: list[dict[str, Any]] = []
    for tasks in sizes:
        row: dict[str, Any] = {"tasks": tasks, "models": {}}
        for model in MODELS:
            own = [r for r in runs if r["tasks"] == tasks and r["model"] == model]
            if not own:
                continue
            row["jobs"] = own[0]["jobs"]
            peak = _stats([r["peak_rss_mb"] for r in own])
            increment = _stats([r["build_increment_mb"] for r in own])
            trace = [r["tracemalloc_peak_mb"] for r in traced
                     if r["tasks"] == tasks and r["model"] == model]
            row["models"][model] = {
                "build_time_s": _stats([r["build_time_s"] for r in own]),
                "first_build_time_s": _stats([r["first_build_time_s"] for r in own]),
                "build_time_in_solve_s": _stats([r["build_time_in_solve_s"] for r in own]),
                "peak_rss_mb": peak, "peak_rss_above_idle_mb": peak["median"] - idle_mb,
                "build_increment_mb": increment,
                "tracemalloc_peak_mb": median(trace) if trace else None,
                "model_size": own[0]["model_size"],
                "statuses": sorted({r["status"] for r in own}),
                "num_workers": sorted({r["num_workers"] for r in own}),
            }
        models = row["models"]
        if all(m in models for m in MODELS):
            t, b = models["template"], models["baseline"]
            row["ratio_template_to_baseline"] = {
                "peak_rss": t["peak_rss_mb"]["median"] / b["peak_rss_mb"]["median"],
                "peak_rss_above_idle": _ratio(t["peak_rss_above_idle_mb"],
                                              b["peak_rss_above_idle_mb"]),
                "build_increment": _ratio(t["build_increment_mb"]["median"],
                                          b["build_increment_mb"]["median"]),
                "build_time": t["build_time_s"]["median"] / b["build_time_s"]["median"],
                "variables": t["model_size"]["variables"] / b["model_size"]["variables"],
                "constraints": t["model_size"]["constraints"] / b["model_size"]["constraints"],
            }
        per_size.append(row)
    return {"idle_peak_rss_mb": _stats([r["peak_rss_mb"] for r in idle]),
            "idle_subtracted_mb": idle_mb, "sizes": per_size,
            "exponents": _exponents(per_size, fit_from)}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _exponents(per_size: list[dict[str, Any]], fit_from: int) -> dict[str, Any]:
    figures = {"build_time_s": lambda m: m["build_time_s"]["median"],
               "peak_rss_above_idle_mb": lambda m: m["peak_rss_above_idle_mb"],
               "build_increment_mb": lambda m: m["build_increment_mb"]["median"],
               "tracemalloc_peak_mb": lambda m: m["tracemalloc_peak_mb"]}
    out: dict[str, Any] = {}
    for model in MODELS:
        rows = [r for r in per_size if model in r["models"]]
        sizes = [r["tasks"] for r in rows]
        out[model] = {}
        for name, get in figures.items():
            values = [get(r["models"][model]) for r in rows]
            out[model][name] = {"all": _fit(sizes, values, 0),
                                "upper": _fit(sizes, values, fit_from)}
    return out


def verdicts(summary: dict[str, Any], fit_from: int) -> dict[str, Any]:
    """The issue's targets read against the measurement. Memory <= 1.0x the baseline's, for
    the model itself (build increment) and for the process (peak above idle); at every size,
    and at the sizes from ``fit_from`` tasks where the model outweighs fixed costs. Growth at
    most linear for the template model's own figures (build time, build increment, traced
    Python allocations): both fits' exponents <= 1 + LINEAR_TOLERANCE. The process peak is not
    among them: within a time limit it says how far CP-SAT got, not how the model grows."""
    def at_most_one(ratio: str, low: int) -> bool | None:
        values = [r["ratio_template_to_baseline"][ratio] for r in summary["sizes"]
                  if "ratio_template_to_baseline" in r and r["tasks"] >= low]
        return None if not values else all(x is not None and x <= 1.0 for x in values)

    memory = {ratio: {"all_sizes": at_most_one(ratio, 0),
                      "upper_sizes": at_most_one(ratio, fit_from)}
              for ratio in ("build_increment", "peak_rss_above_idle")}
    linear = {}
    for figure in ("build_time_s", "build_increment_mb", "tracemalloc_peak_mb"):
        fits = [summary["exponents"]["template"][figure][part] for part in ("all", "upper")]
        exps = [f["exponent"] for f in fits if f]
        linear[figure] = max(exps) <= 1 + LINEAR_TOLERANCE if exps else None
    return {"memory_at_most_baseline": memory, "template_at_most_linear": linear,
            "linear_tolerance": LINEAR_TOLERANCE}


def _holds(ok: bool | None) -> str:
    return "not measured" if ok is None else "holds" if ok else "does NOT hold"


def _cell(s: dict[str, float], digits: str = ".3g") -> str:
    return f"{s['median']:{digits}} [{s['min']:{digits}}-{s['max']:{digits}}]"


def _exp_cell(fit: dict[str, Any] | None) -> str:
    return "n/a" if not fit else (f"{fit['exponent']:.2f} ({fit['tasks_from']}-"
                                  f"{fit['tasks_to']} tasks, {fit['points']} sizes; line: "
                                  f"{fit['per_1000_tasks']:.3g} per 1000 tasks "
                                  f"{fit['intercept']:+.3g})")


def report_markdown(data: dict[str, Any]) -> str:
    """``report.md``: context, the per-size table, exponents and the targets."""
    s = data["summary"]
    m = data["machine"]
    lines = ["# Memory and scale: template vs baseline model", "",
             f"Command: `{data['command']}`  ",
             f"Machine: {m.get('cpu')}, {m.get('cores')} cores (shared with other work: CPU "
             f"timings are noisy), Python {m.get('python')}, OR-Tools {m.get('ortools')} "
             f"(fingerprint `{data['fingerprint']}`)  ",
             f"Template `{data['template_id']}` ({data['tasks_per_job']} tasks per job) from "
             f"{data['template_source']}; {data['repetitions']} repetitions, each in a fresh "
             f"process; solve limit {data['time_limit_s']:g} s (build included), num_workers "
             f"{data['num_workers']}  ",
             f"Idle process peak RSS (subtracted): {_cell(s['idle_peak_rss_mb'], '.1f')} MiB "
             f"(median [min-max])", "",
             f"Median [min-max] over repetitions. Build time: per process the median of "
             f"{data['builds']} builds; first build: the process's first (cold) one; in the "
             f"solve: the build inside the solve.", "",
             "| tasks | jobs | model | variables | constraints | build time (s) "
             "| first build (s) | build in the solve (s) | solve status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in s["sizes"]:
        for model, x in row["models"].items():
            lines.append(
                f"| {row['tasks']} | {row['jobs']} | {model} | {x['model_size']['variables']} "
                f"| {x['model_size']['constraints']} | {_cell(x['build_time_s'])} "
                f"| {_cell(x['first_build_time_s'])} | {_cell(x['build_time_in_solve_s'])} "
                f"| {','.join(x['statuses'])} |")
    lines += ["", "Memory (MiB). Build increment: the build phase's peak minus the RSS just "
              "before it (the model alone); peak: the process's lifetime peak after build and "
              "solve; above idle: median minus the idle median; tracemalloc: Python "
              "allocations of the build (C++ not seen). The process peak includes CP-SAT within "
              "the time limit: how far it got (presolve, search with its workers) weighs more "
              "than the model, so its exponent is not a growth rate of the model.", "",
              "| tasks | model | build increment | peak RSS | peak above idle "
              "| tracemalloc build peak |", "|---|---|---|---|---|---|"]
    for row in s["sizes"]:
        for model, x in row["models"].items():
            trace = x["tracemalloc_peak_mb"]
            lines.append(
                f"| {row['tasks']} | {model} | {_cell(x['build_increment_mb'], '.1f')} "
                f"| {_cell(x['peak_rss_mb'], '.1f')} "
                f"| {x['peak_rss_above_idle_mb']:.1f} | "
                f"{'n/a' if trace is None else f'{trace:.2f}'} |")
    lines += ["", "Template / baseline (ratio of medians):", "",
              "| tasks | build increment | peak above idle | peak RSS | build time "
              "| variables | constraints |", "|---|---|---|---|---|---|---|"]
    for row in s["sizes"]:
        r = row.get("ratio_template_to_baseline")
        if r:
            cells = [r[k] for k in ("build_increment", "peak_rss_above_idle", "peak_rss",
                                    "build_time", "variables", "constraints")]
            lines.append(f"| {row['tasks']} | " + " | ".join(
                "n/a" if c is None else f"{c:.2f}x" for c in cells) + " |")
    lines += ["", f"Growth exponents b of figure ~ a * tasks^b (least squares on the log-log "
              f"medians; 'upper': sizes from {data['fit_from']} tasks), and the least-squares "
              f"line through the same medians (units of the figure):", "",
              "| model | figure | all sizes | upper sizes |", "|---|---|---|---|"]
    for model, figures in s["exponents"].items():
        for figure, fits in figures.items():
            lines.append(f"| {model} | {figure} | {_exp_cell(fits['all'])} "
                         f"| {_exp_cell(fits['upper'])} |")
    v = data["verdicts"]
    lines += ["", "Targets (issue 9):", ""]
    for ratio, ok in v["memory_at_most_baseline"].items():
        lines.append(f"- template {ratio} <= 1.0x baseline: every size {_holds(ok['all_sizes'])}"
                     f"; sizes from {data['fit_from']} tasks {_holds(ok['upper_sizes'])}")
    lines += [f"- template {figure} grows at most linearly (exponent <= "
              f"{1 + v['linear_tolerance']:g}, both fits): {_holds(ok)}"
              for figure, ok in v["template_at_most_linear"].items()]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------
# The command


def _source(args: argparse.Namespace, out: Path) -> tuple[Path, str, str]:
    """The template file the workers read, the template id and a description: the given
    file, or the generated family written to ``out/template.json``."""
    from fresh_solver.model import load_problem
    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.problem import problem_to_dict

    if args.template_file is not None:
        if not args.template_id:
            raise InputError(f"--template-file {args.template_file}: name the template with "
                             f"--template-id")
        problem = load_problem(args.template_file)
        if args.template_id not in problem.template_by_id:
            known = ", ".join(sorted(problem.template_by_id))
            raise InputError(f"--template-id {args.template_id!r}: not in "
                             f"{args.template_file} (it has: {known})")
        return args.template_file.resolve(), args.template_id, str(args.template_file)
    if args.template_id:
        raise InputError("--template-id goes with --template-file")
    problem = generate_family("large", args.family_seed)
    path = out / "template.json"
    path.write_text(json.dumps(problem_to_dict(problem), indent=1))
    return path.resolve(), problem.templates[0].id, f"generated {problem.name}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--template-file", type=Path, help="a problem file defining the template")
    parser.add_argument("--template-id", help="the template of --template-file")
    parser.add_argument("--family-seed", type=int, default=0,
                        help="without --template-file: the template of family-large-<seed>")
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="task counts, comma-separated")
    parser.add_argument("--time-limit", type=float, default=5.0,
                        help="seconds per solve, build included")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="CP-SAT random seed")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="CP-SAT num_workers (0: its default, all cores)")
    parser.add_argument("--builds", type=int, default=5,
                        help="timed builds per process (the build time is their median)")
    parser.add_argument("--fit-from", type=int, default=1000,
                        help="the 'upper' fit uses sizes from this many tasks")
    parser.add_argument("--no-tracemalloc", action="store_true",
                        help="skip the traced build per (size, model)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, as ``worker ...``, one measurement; it prints JSON)."""
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == ["worker"]:
        print(json.dumps(_worker(raw[1:])))
        return 0
    args = _parser().parse_args(raw)
    sizes = parse_tasks(args.tasks)
    if args.repetitions < 1:
        raise InputError(f"--repetitions must be >= 1, got {args.repetitions}")
    if args.time_limit <= 0:
        raise InputError(f"--time-limit must be > 0, got {args.time_limit}")
    if args.builds < 1:
        raise InputError(f"--builds must be >= 1, got {args.builds}")
    import ortools

    from benchmarks.record import rerun_command, write_results
    from fresh_solver.fingerprint import fingerprint_id, machine_fingerprint
    from fresh_solver.model import load_problem

    args.out.mkdir(parents=True, exist_ok=True)
    template_file, template_id, described = _source(args, args.out)
    per_job = len(load_problem(template_file).template_by_id[template_id].tasks)
    counts = job_counts(sizes, per_job)
    machine = machine_fingerprint()
    options = {"time_limit": args.time_limit, "seed": args.seed,
               "num_workers": args.num_workers, "builds": args.builds}

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    idle: list[dict[str, Any]] = []
    for repetition in range(args.repetitions):
        idle.append(run_worker(template_file, template_id, "idle") | {"repetition": repetition})
        log(f"rep {repetition}: idle peak {idle[-1]['peak_rss_mb']:.1f} MiB")
        for jobs in counts:
            models = MODELS if (repetition + jobs) % 2 == 0 else MODELS[::-1]
            for model in models:
                run = run_worker(template_file, template_id, model, jobs, **options)
                runs.append(run | {"repetition": repetition})
                log(f"rep {repetition}: {run['tasks']} tasks {model}: build "
                    f"{run['build_time_s']:.3f} s, peak {run['peak_rss_mb']:.1f} MiB, "
                    f"{run['status']}")
    traced = [] if args.no_tracemalloc else [
        run_worker(template_file, template_id, model, jobs, traced=True)
        for jobs in counts for model in MODELS]
    summary = summarise(runs, idle, traced, args.fit_from)
    data: dict[str, Any] = {
        "command": rerun_command(MODULE, argv),
        "machine": machine, "fingerprint": fingerprint_id(machine),
        "ortools_version": ortools.__version__,
        "template_source": described, "template_file": str(template_file),
        "template_id": template_id, "tasks_per_job": per_job, "tasks_requested": sizes,
        "job_counts": counts, "repetitions": args.repetitions, "builds": args.builds,
        "time_limit_s": args.time_limit, "seed": args.seed,
        "num_workers": sorted({r["num_workers"] for r in runs}), "fit_from": args.fit_from,
        "wall_time_s": time.perf_counter() - started,
        "summary": summary, "runs": runs, "idle": idle, "tracemalloc": traced,
    }
    data["verdicts"] = verdicts(summary, args.fit_from)
    write_results(args.out, data, report_markdown(data))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
