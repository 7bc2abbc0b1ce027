"""`fresh-solver profile`: the three profilers on one problem, optionally logged to MLflow.

    fresh-solver profile PROBLEM [--params FILE] [--time-limit S] [--seed N]
        [--repetitions R] [--json] [--mlflow]

Prints (``--json``: one object on stdout) the constraint groups of the template model (build
time, variables, constraints), the ablation of its optional groups over R paired seeds (R = 0
skips it; up to 5 x R solves of at most S seconds each), the parsed CP-SAT search of one solve
and the memory of its build and solve. With ``--mlflow`` all three are one MLflow run in
``fresh-solver/benchmarks`` (tag ``fresh_solver.kind=profile``; metrics per group, phase and
ablated option; artifacts ``profile.json`` and ``search_log.txt``) and its id is printed.
Exit codes: 0 profiled (whether or not the solve found a solution), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fresh_solver.tracking import names


def add_commands(subparsers) -> None:
    """Add ``profile`` to the CLI's commands."""
    p = subparsers.add_parser("profile", help="constraint groups, CP-SAT search and memory "
                              "of one problem")
    p.add_argument("problem", help="problem JSON, job-shop or .fjs file")
    p.add_argument("--params", metavar="FILE", help="parameter set (CP-SAT parameters, or "
                   '{"cp_sat": {...}, "model": {...}})')
    p.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                   help="seconds per solve (default 10)")
    p.add_argument("--seed", type=int, default=0, help="solver seed of the profiled solve")
    p.add_argument("--repetitions", type=int, default=3, metavar="R",
                   help="paired seeds of the ablation (default 3; 0 skips it)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--mlflow", action="store_true",
                   help="log the profile as a run in fresh-solver/benchmarks")
    p.set_defaults(func=cmd_profile)


def _config(path: str | None):
    from fresh_solver.params.config import SolverConfig

    if path is None:
        return SolverConfig(), "defaults"
    return SolverConfig.from_file(path, f"--params {path}"), f"file:{path}"


def profile_problem(problem, config, *, time_limit: float, seed: int,
                    repetitions: int) -> dict[str, Any]:
    """All three profiles of ``problem`` as one JSON-able object (plus the raw search log
    under ``_search_log``, which callers pop)."""
    from dataclasses import asdict

    from fresh_solver.fingerprint import fingerprint_id, machine_fingerprint
    from fresh_solver.params.workers import effective_workers
    from fresh_solver.performance.profilers import (
        ConstraintProfiler,
        MemoryProfiler,
        SolverProfiler,
    )

    constraints = ConstraintProfiler()
    groups = constraints.profile_template_model(problem, config.model)
    ablation = (constraints.ablation(problem, config, seeds=list(range(repetitions)),
                                     time_limit=time_limit) if repetitions else [])
    solver = SolverProfiler().profile_solver_performance(problem, config,
                                                         time_limit=time_limit, seed=seed)
    memory = MemoryProfiler().profile_memory_usage(problem, config, time_limit=time_limit,
                                                   seed=seed)
    templates = sorted({t.id for t in problem.templates})
    return {
        "problem": problem.name, "template_id": templates[0] if len(templates) == 1 else
        "mixed", "jobs": len(problem.jobs), "tasks": problem.num_tasks,
        "config_hash": config.hash, "config": config.to_dict(),
        "num_workers": effective_workers(config.cp_sat, "template", problem.objective),
        "time_limit_s": time_limit,
        "seed": seed, "repetitions": repetitions, "machine": machine_fingerprint(),
        "fingerprint": fingerprint_id(),
        "constraints": {"groups": [asdict(g) for g in groups],
                        "ablation": [asdict(r) for r in ablation]},
        "solver": solver.to_dict(), "memory": memory.to_dict(), "_search_log": solver.log,
    }


def log_profile(profile: dict[str, Any], search_log: str, params_source: str) -> str:
    """The profile as an MLflow run (module docstring); returns its id."""
    import tempfile

    import ortools
    from mlflow.entities import Metric, Param

    from fresh_solver import tracking
    from fresh_solver.performance.mlflow_run import EXPERIMENT, metric_key

    client = tracking.client()
    run = client.create_run(tracking.experiment_id(client, EXPERIMENT), tags={
        "mlflow.runName": f"profile-{profile['problem']}", names.KIND: names.PROFILE,
        names.TEMPLATE_ID: profile["template_id"],
        names.FINGERPRINT: profile["fingerprint"],
        "ortools_version": ortools.__version__})
    rid = run.info.run_id
    params = {k: profile[k] for k in ("problem", "template_id", "jobs", "tasks", "config_hash",
                                      "num_workers", "time_limit_s", "seed", "repetitions",
                                      "fingerprint")}
    params |= {"params_source": params_source, "ortools_version": ortools.__version__}
    metrics = profile_metrics(profile)
    client.log_batch(rid, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[Metric(metric_key(k), float(v), 0, 0)
                              for k, v in metrics.items()])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "profile.json").write_text(json.dumps(profile, indent=1, default=str))
        (folder / "search_log.txt").write_text(search_log)
        for name in ("profile.json", "search_log.txt"):
            client.log_artifact(rid, str(folder / name))
    client.set_terminated(rid, "FINISHED")
    return rid


def profile_metrics(profile: dict[str, Any]) -> dict[str, float]:
    """The figures worth a chart: per group, per ablated option, the search and memory."""
    metrics: dict[str, float] = {}
    for g in profile["constraints"]["groups"]:
        if g["enabled"]:
            metrics |= {f"build.{g['name']}.time_s": g["build_time_s"],
                        f"build.{g['name']}.variables": g["variables"],
                        f"build.{g['name']}.constraints": g["constraints"]}
    for r in profile["constraints"]["ablation"]:
        metrics[f"ablation.{r['option']}.speedup"] = r["speedup"]
    solver = profile["solver"]
    figures = {"solver.wall_time_s": solver["wall_time_s"],
               "solver.time_to_first_s": solver["time_to_first_s"],
               "solver.solutions": len(solver["solutions"]),
               "solver.presolve.time_s": solver["presolve"]["time_s"],
               "solver.presolve.steps_time_s": solver["presolve"]["steps_time_s"]}
    for when in ("initial_model", "presolved_model"):
        if solver[when]:
            figures |= {f"solver.{when}.variables": solver[when]["variables"],
                        f"solver.{when}.constraints": solver[when]["constraints"]}
    for phase in ("build", "solve"):
        memory = profile["memory"][phase]
        figures |= {f"memory.{phase}.peak_rss_mb": memory["peak_rss_mb"],
                    f"memory.{phase}.peak_increase_mb": memory["peak_increase_mb"],
                    f"memory.{phase}.python_peak_mb": memory["python_peak_mb"]}
    metrics |= {k: v for k, v in figures.items() if v is not None}
    return metrics


def cmd_profile(args: argparse.Namespace) -> int:
    """Profile; print the JSON object or a summary for people."""
    from fresh_solver.errors import InputError
    from fresh_solver.model import load_problem

    if args.time_limit <= 0:
        raise InputError(f"--time-limit must be positive, got {args.time_limit}")
    if args.repetitions < 0:
        raise InputError(f"--repetitions must be >= 0, got {args.repetitions}")
    problem = load_problem(args.problem)
    config, source = _config(args.params)
    print(f"profiling {problem.name}: {len(problem.jobs)} jobs, {problem.num_tasks} tasks, "
          f"time limit {args.time_limit:g} s, ablation over {args.repetitions} seed(s) ...",
          file=sys.stderr)
    profile = profile_problem(problem, config, time_limit=args.time_limit, seed=args.seed,
                              repetitions=args.repetitions)
    search_log = profile.pop("_search_log")
    profile["params_source"] = source
    profile["mlflow_run_id"] = log_profile(profile, search_log, source) if args.mlflow else None
    if args.json:
        print(json.dumps(profile, default=str))
    else:
        _print_profile(profile)
    return 0


def _print_profile(profile: dict[str, Any]) -> None:
    """Three short tables for people (stderr)."""
    lines = [f"{'group':<26} {'build ms':>9} {'vars':>7} {'cons':>7} {'hints':>6}"]
    for g in profile["constraints"]["groups"]:
        if g["enabled"]:
            lines.append(f"{g['name']:<26} {g['build_time_s'] * 1000:>9.2f} {g['variables']:>7} "
                         f"{g['constraints']:>7} {g['hints']:>6}")
        else:
            lines.append(f"{g['name']:<26} {'(off)':>9}")
    if profile["constraints"]["ablation"]:
        lines += ["", f"{'optional group':<26} {'in config':>9} {'median with':>12} "
                  f"{'without':>9} {'speedup':>8} {'p':>6}"]
        for r in profile["constraints"]["ablation"]:
            lines.append(f"{r['option']:<26} {str(r['enabled_in_config']):>9} "
                         f"{r['median_with_s']:>11.3f}s {r['median_without_s']:>8.3f}s "
                         f"{r['speedup']:>7.2f}x {r['p_value']:>6.3f}")
    s = profile["solver"]
    before, after = s["initial_model"] or {}, s["presolved_model"] or {}
    lines += ["", f"search: {s['status']}, objective {s['objective']}, bound {s['best_bound']}, "
              f"{s['wall_time_s']:.3f} s, {s['num_workers']} worker(s), first solution at "
              f"{s['time_to_first_s']} s, finished by {s['finished_by']}",
              f"presolve: {s['presolve']['steps_time_s']:.4f} s; variables "
              f"{before.get('variables')} -> {after.get('variables')}, constraints "
              f"{before.get('constraints')} -> {after.get('constraints')}",
              "solutions by subsolver: " + ", ".join(
                  f"{k} {v}" for k, v in s["solutions_by_subsolver"].items())]
    for phase in ("build", "solve"):
        m = profile["memory"][phase]
        lines.append(f"memory {phase}: peak RSS {m['peak_rss_mb']:.1f} MiB "
                     f"(+{m['peak_increase_mb']:.1f}), Python peak {m['python_peak_mb']:.2f} MiB")
    if profile["mlflow_run_id"]:
        lines.append(f"MLflow run {profile['mlflow_run_id']} (fresh-solver/benchmarks)")
    print("\n".join(lines), file=sys.stderr)
