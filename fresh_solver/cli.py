"""The `fresh-solver` command line.

Exit codes: 0 success, 1 no solution / invalid schedule, 2 bad input (message, no traceback).
Machine-readable output goes to stdout with --json; everything for people goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} {path}: malformed JSON: {exc}") from None


def _writable(path: str, what: str) -> Path:
    """Refuse an output path whose folder does not exist before doing any work."""
    out = Path(path)
    if not out.parent.is_dir():
        raise InputError(f"{what} {path}: folder {out.parent} does not exist")
    return out


def _print_table(rows: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}", file=sys.stderr)


def cmd_solve(args: argparse.Namespace) -> int:
    from fresh_solver.model import load_problem
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.solver import ModelOptions, solve

    if args.time_limit <= 0:
        raise InputError(f"--time-limit must be positive, got {args.time_limit}")
    out = _writable(args.out, "--out") if args.out else None
    gantt = _writable(args.gantt, "--gantt") if args.gantt else None
    problem = load_problem(args.problem)
    config, source = SolverConfig(), "defaults"
    if args.params:
        try:
            config = SolverConfig.from_dict(_read_json(args.params, "--params"))
        except InputError as exc:
            raise InputError([f"--params {args.params}: {p}" for p in exc.problems]) from None
        source = f"file:{args.params}"
    options = config.model
    if args.options:
        options = ModelOptions.from_dict(json.loads(args.options), base=config.model)
    print(f"solving {problem.name}: {len(problem.jobs)} jobs, {problem.num_tasks} tasks, "
          f"{args.model} model, time limit {args.time_limit:g} s ...", file=sys.stderr)
    def progress(seconds: float, objective: int) -> None:
        print(f"  {seconds:8.3f} s  {problem.objective} {objective}", file=sys.stderr)

    result = solve(problem, model=args.model, options=options, params=config.cp_sat,
                   time_limit=args.time_limit, seed=args.seed, params_source=source,
                   on_improvement=progress)
    if result.schedule is not None:
        if out:
            result.schedule.write(out)
        if gantt:
            from fresh_solver.gantt import write_gantt

            write_gantt(problem, result.schedule, gantt)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        _print_table([(k, summary[k]) for k in (
            "status", "objective", "best_bound", "gap", "wall_time_s", "time_to_first_s",
            "time_to_best_s", "num_workers", "params_source", "valid", "model")]
            + [("schedule", out or "-"), ("gantt", gantt or "-")])
    if result.valid is False:
        print("BUG: the solver's schedule fails the independent checker:", file=sys.stderr)
        for v in result.violations or []:
            print(f"  {v}", file=sys.stderr)
        return 1
    return 0 if result.solved else 1


def cmd_check(args: argparse.Namespace) -> int:
    from fresh_solver.model import load_problem, load_schedule
    from fresh_solver.solver import check_schedule

    problem = load_problem(args.problem)
    schedule = load_schedule(args.schedule)
    violations = check_schedule(problem, schedule)
    for v in violations:
        print(v)
    print(f"{'INVALID' if violations else 'valid'}: {len(violations)} violation(s), "
          f"{len(schedule.assignments)} assignments", file=sys.stderr)
    return 1 if violations else 0


def cmd_generate(args: argparse.Namespace) -> int:
    from fresh_solver.model import problem_to_dict
    from fresh_solver.model.generate import generate

    if args.count < 1:
        raise InputError(f"--count must be >= 1, got {args.count}")
    out = Path(args.out)
    if args.count > 1 or out.is_dir():
        out.mkdir(parents=True, exist_ok=True)
    else:
        _writable(args.out, "--out")
    for seed in range(args.seed, args.seed + args.count):
        problem = generate(args.kind, args.scale, seed, args.objective)
        path = out / f"{problem.name}.json" if out.is_dir() else out
        path.write_text(json.dumps(problem_to_dict(problem), indent=1) + "\n")
        print(f"{path}: {len(problem.jobs)} jobs, {problem.num_tasks} tasks, "
              f"{len(problem.templates)} template(s)", file=sys.stderr)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from fresh_solver.tuning.tuner import TuningSpec, tune

    spec = TuningSpec(
        template_id=args.template_id, instance_paths=tuple(args.instances), trials=args.trials,
        trial_time_limit=args.trial_time_limit, seeds=args.seeds, metric=args.metric,
        space_path=args.space, batch=args.batch, estimator=args.estimator,
        tuner_seed=args.tuner_seed, cap_factor=args.cap_factor or None)
    spec.check()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    with Progress(TextColumn("tuning {task.fields[template]}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn("best score {task.fields[best]}"),
                  console=console) as bar:
        task = bar.add_task("tune", total=args.trials, template=args.template_id, best="-")

        def progress(done: int, total: int, best: float) -> None:
            bar.update(task, completed=done, best=f"{best:.4g}")

        try:
            summary = tune(spec, resume_run_id=args.resume, progress=progress)
        except RuntimeError as exc:  # e.g. the reference failed: nothing to tune against
            print(f"fresh-solver tune: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(summary))
    else:
        _print_table([("run_id", summary["run_id"]), ("experiment", summary["experiment"]),
                      ("trials", summary["trials"]), ("default_score", summary["default_score"]),
                      ("best_score", summary["best_score"]),
                      ("best_params", json.dumps(summary["best_params"]))])
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fresh_solver.model.generate import KINDS, SCALES
    from fresh_solver.model.problem import OBJECTIVES
    from fresh_solver.solver.solve import MODELS
    from fresh_solver.tuning.scoring import METRICS
    from fresh_solver.tuning.tuner import ESTIMATORS

    parser = argparse.ArgumentParser(prog="fresh-solver", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("solve", help="solve a problem (problem JSON, job-shop or .fjs file)")
    p.add_argument("problem")
    p.add_argument("--params", help="JSON parameter set: CP-SAT parameters, or "
                   '{"cp_sat": {...}, "model": {...}}')
    p.add_argument("--model", choices=MODELS, default="template")
    p.add_argument("--options", help='template model switches as JSON, e.g. '
                   '\'{"warm_start": false}\'')
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the schedule (schedule-v1 JSON) here")
    p.add_argument("--gantt", help="write a Gantt chart PNG here")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser("check", help="check a schedule against its problem independently")
    p.add_argument("problem")
    p.add_argument("schedule")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("generate", help="seeded synthetic problems")
    p.add_argument("--kind", choices=KINDS, default="family")
    p.add_argument("--scale", choices=list(SCALES), default="medium")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=1, help="problems with seeds seed..seed+count-1")
    p.add_argument("--objective", choices=OBJECTIVES, default="makespan",
                   help="for --kind mix")
    p.add_argument("--out", required=True, help="a file, or a folder when --count > 1")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("tune", help="tune a template's configuration (scikit-optimize, MLflow)")
    p.add_argument("--template-id", required=True)
    p.add_argument("--instances", nargs="+", required=True, help="training problem files")
    p.add_argument("--trials", type=int, required=True, help="trials besides the reference")
    p.add_argument("--trial-time-limit", type=float, required=True, help="seconds per run")
    p.add_argument("--seeds", type=int, default=1, help="solver seeds per instance")
    p.add_argument("--metric", choices=METRICS, default="time_to_target")
    p.add_argument("--space", help="search space TOML (default: the shipped space)")
    p.add_argument("--batch", type=int, default=1, help="points asked at once")
    p.add_argument("--estimator", choices=ESTIMATORS, default="GP",
                   help="surrogate model; dummy = random search")
    p.add_argument("--tuner-seed", type=int, default=0)
    p.add_argument("--cap-factor", type=float, default=2.0,
                   help="adaptive capping factor; 0 turns capping off")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted session")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tune)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        for problem in exc.problems:
            print(f"fresh-solver {args.command}: error: {problem}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"fresh-solver {args.command}: error: malformed JSON option: {exc}",
              file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (e.g. piped into head): nothing to report
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
