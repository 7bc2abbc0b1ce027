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

from fresh_solver.choices import AUTO_METRIC, ESTIMATORS, METRICS, MODELS, VALIDATION_METRICS
from fresh_solver.errors import InputError
from fresh_solver.inputs import read_json


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
    if args.params and args.production:
        raise InputError("give --params or --production, not both")
    if args.production and args.production not in problem.template_by_id:
        # Production sets are tuned per template, and the solve is recorded under this one.
        raise InputError(f"--production {args.production}: {problem.name} has no template "
                         f"{args.production!r} (its templates: "
                         f"{', '.join(sorted(problem.template_by_id))})")
    if args.production:
        from fresh_solver import production
        from fresh_solver.operations.monitor import recording_enabled

        if recording_enabled():  # a record the store cannot take: say so before solving
            from fresh_solver.operations.config import load_config

            load_config()
        resolved = production.get_solver_config(args.production)
        config, source = resolved.config, resolved.source
    if args.params:
        config = SolverConfig.from_file(args.params, f"--params {args.params}")
        source = f"file:{args.params}"
    options = config.model
    if args.options:
        options = ModelOptions.from_dict(json.loads(args.options), base=config.model)
    if args.params or args.options:  # the loader refuses a served set on its own
        from fresh_solver.params.unsound import refuse_known_unsound

        refuse_known_unsound(SolverConfig(config.cp_sat, options), args.model,
                             where=f"--params {args.params}" if args.params else "--options")
    print(f"solving {problem.name}: {len(problem.jobs)} jobs, {problem.num_tasks} tasks, "
          f"{args.model} model, time limit {args.time_limit:g} s ...", file=sys.stderr)
    def progress(seconds: float, objective: int) -> None:
        print(f"  {seconds:8.3f} s  {problem.objective} {objective}", file=sys.stderr)

    result = solve(problem, model=args.model, options=options, params=config.cp_sat,
                   time_limit=args.time_limit, seed=args.seed, params_source=source,
                   on_improvement=progress)
    if args.production:
        production.record_solve(problem, args.production, result)
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
    if args.same_template and args.kind != "family":
        raise InputError("--same-template goes with --kind family")
    for seed in range(args.seed, args.seed + args.count):
        if args.same_template:  # instances of one template (a tuning or held-out set)
            from fresh_solver.model.generate import generate_family

            problem = generate_family(args.scale, args.seed, instance_seed=seed - args.seed
                                      + args.instance_offset)
        else:
            problem = generate(args.kind, args.scale, seed, args.objective)
        path = out / f"{problem.name}.json" if out.is_dir() else out
        path.write_text(json.dumps(problem_to_dict(problem), indent=1) + "\n")
        print(f"{path}: {len(problem.jobs)} jobs, {problem.num_tasks} tasks, "
              f"{len(problem.templates)} template(s)", file=sys.stderr)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from fresh_solver.tuning.tuner import TuningSpec, tune

    auto = args.metric == AUTO_METRIC
    spec = TuningSpec(
        template_id=args.template_id, instance_paths=tuple(args.instances), trials=args.trials,
        trial_time_limit=args.trial_time_limit, seeds=args.seeds,
        metric="time_to_target" if auto else args.metric,  # auto: chosen once the spec holds
        space_path=args.space, batch=args.batch, estimator=args.estimator,
        tuner_seed=args.tuner_seed, cap_factor=args.cap_factor or None, race=args.race,
        race_seeds=args.race_seeds, race_rounds=args.race_rounds, min_gain=args.min_gain)
    spec.check()
    if auto:
        from fresh_solver.tuning.session import choose_metric

        metric, why = choose_metric(spec.instance_paths, spec.trial_time_limit)
        print(f"--metric auto: {why}", file=sys.stderr)
        spec = replace(spec, metric=metric)
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
                      ("trials", summary["trials"]),
                      ("unsound_trials", summary["unsound_trials"]),
                      ("default_score", summary["default_score"]),
                      ("best_score", summary["best_score"]),
                      ("best_params", json.dumps(summary["best_params"]))])
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.registry.registry import ParameterRegistry
    from fresh_solver.validation.compare import PassRule
    from fresh_solver.validation.validator import validate

    if bool(args.run_id) == bool(args.params):
        raise InputError("give exactly one of --run-id (a tuning session) or --params FILE")
    if args.seeds < 1 or args.time_limit <= 0:
        raise InputError("--seeds must be >= 1 and --time-limit > 0")
    registry = ParameterRegistry()
    if args.run_id:
        import tempfile

        from fresh_solver import tracking

        run = tracking.get_run(registry.client, args.run_id)
        with tempfile.TemporaryDirectory() as tmp:
            path = registry.client.download_artifacts(run.info.run_id, "parameters.json", tmp)
            candidate = SolverConfig.from_file(path, f"tuning run {args.run_id}'s parameters")
    else:
        candidate = SolverConfig.from_file(args.params, f"--params {args.params}")
    serving = registry.serving(args.template_id).version
    production = registry.load_config(args.template_id, serving) if serving else None
    rule = PassRule(min_speedup=args.min_speedup, max_p_value=args.max_p_value,
                    min_speedup_vs_production=args.min_speedup_vs_production,
                    quality_tolerance=args.quality_tolerance)
    report = validate(args.template_id, candidate, tuple(args.instances),
                      list(range(args.seeds)), args.time_limit, rule, production,
                      log=lambda m: print(m, file=sys.stderr), metric=args.metric)
    version = None
    if report.passed:
        version = registry.register(args.template_id, candidate, report.to_dict(),
                                    tuning_run_id=args.run_id)
    out = report.to_dict() | {"registered_version": version}
    if args.json:
        print(json.dumps(out))
    else:
        print(report.summary(), file=sys.stderr)
        if version:
            print(f"registered as version {version} (Staging); a reviewer promotes it with "
                  f"`fresh-solver registry promote {args.template_id} {version} "
                  "--approved-by NAME`", file=sys.stderr)
    return 0 if report.passed else 1


def cmd_registry(args: argparse.Namespace) -> int:
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.registry.registry import ParameterRegistry, model_name
    from fresh_solver.registry.rest import registry_client

    action = args.action
    if action == "register":  # its files first: a bad one leaves the store untouched
        config = SolverConfig.from_file(args.params, f"--params {args.params}")
        report = read_json(args.validation, f"--validation {args.validation}") \
            if args.validation else None
    registry = ParameterRegistry(registry_client())
    if action == "register":
        version = registry.register(args.template_id, config, report)
        out: Any = {"version": version}
    elif action == "promote":
        registry.promote(args.template_id, args.version, args.approved_by,
                         override_validation=args.override_validation)
        out = {"serving": registry.serving(args.template_id).version}
    elif action == "rollback":
        out = {"serving": registry.rollback(args.template_id, args.approved_by)}
    elif action == "reconcile":
        ids = [args.template_id] if args.template_id else registry.templates()
        out = {tid: registry.reconcile(tid) for tid in ids}
    elif action == "history":
        out = registry.history(args.template_id)
    elif action == "list":
        out = []
        for tid in registry.templates():
            out.append({"template_id": tid, "model": model_name(tid),
                        "serving": registry.serving(tid).version,
                        "versions": len(registry.versions(tid))})
    else:  # show
        decision = registry.serving(args.template_id)
        out = {"model": model_name(args.template_id), "serving": decision.version,
               "path": decision.path, "refused": list(decision.refused),
               "alias": registry.alias_version(args.template_id),
               "versions": [{"version": v.version, "stage": v.current_stage,
                             "tags": dict(v.tags), "description": v.description}
                            for v in registry.versions(args.template_id)]}
    print(json.dumps(out, indent=None if args.json else 1, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fresh_solver.model.generate import KINDS, SCALES
    from fresh_solver.model.problem import OBJECTIVES

    parser = argparse.ArgumentParser(prog="fresh-solver", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("solve", help="solve a problem (problem JSON, job-shop or .fjs file)")
    p.add_argument("problem")
    p.add_argument("--params", help="JSON parameter set: CP-SAT parameters, or "
                   '{"cp_sat": {...}, "model": {...}}')
    p.add_argument("--production", metavar="TEMPLATE_ID",
                   help="use the registry's Production parameters of this template")
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
    p.add_argument("--same-template", action="store_true",
                   help="COUNT instances of the template of --seed (job counts and release "
                        "waves vary): a training or held-out set for one template")
    p.add_argument("--instance-offset", type=int, default=0,
                   help="with --same-template: first instance seed (e.g. 1000 for held-out)")
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
    p.add_argument("--metric", choices=(*METRICS, AUTO_METRIC), default="time_to_target",
                   help="auto: time to target when the CP-SAT defaults prove every instance "
                   "within --trial-time-limit, else the primal gap integral")
    p.add_argument("--space", help="search space TOML (default: the shipped space)")
    p.add_argument("--batch", type=int, default=1, help="points asked at once")
    p.add_argument("--estimator", choices=ESTIMATORS, default="GP",
                   help="surrogate model; dummy = random search")
    p.add_argument("--tuner-seed", type=int, default=0)
    p.add_argument("--cap-factor", type=float, default=2.0,
                   help="adaptive capping factor; 0 turns capping off")
    p.add_argument("--race", type=int, default=2,
                   help="best trials re-run against the defaults on fresh seeds (0: off)")
    p.add_argument("--race-seeds", type=int, default=2)
    p.add_argument("--race-rounds", type=int, default=1,
                   help="blocks of --race-seeds fresh seeds an undecided race may take")
    p.add_argument("--min-gain", type=float, default=1.1,
                   help="least confirmed speedup over the defaults to return a tuned set")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted session")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("validate", help="candidate vs defaults (and Production) on held-out "
                       "instances; a passing candidate is registered to Staging")
    p.add_argument("--template-id", required=True)
    p.add_argument("--run-id", help="a tuning session whose best set is the candidate")
    p.add_argument("--params", help="a parameter set file as the candidate")
    p.add_argument("--instances", nargs="+", required=True, help="held-out problem files")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--time-limit", type=float, default=10.0)
    p.add_argument("--min-speedup", type=float, default=1.2)
    p.add_argument("--max-p-value", type=float, default=0.05)
    p.add_argument("--min-speedup-vs-production", type=float, default=0.9)
    p.add_argument("--quality-tolerance", type=float, default=0.0)
    p.add_argument("--metric", choices=VALIDATION_METRICS, default="time_to_target",
                   help="what each pair is judged by: time to target where the time limit "
                   "proves the instances, the primal gap integral where it does not")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("registry", help="the MLflow registry of blessed parameter sets")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("register", help="register a parameter set as a new version")
    a.add_argument("template_id")
    a.add_argument("--params", required=True)
    a.add_argument("--validation", help="its validation report (`validate --json` output)")
    a = actions.add_parser("promote", help="move a version to Production (and the alias)")
    a.add_argument("template_id")
    a.add_argument("version")
    a.add_argument("--approved-by", required=True)
    a.add_argument("--override-validation", action="store_true")
    a = actions.add_parser("rollback", help="back to the previously served version")
    a.add_argument("template_id")
    a.add_argument("--approved-by", required=True)
    actions.add_parser("list", help="registered templates and what each serves")
    for name, text in (("show", "versions, stages, tags, the served version"),
                       ("history", "the append-only promotion history")):
        a = actions.add_parser(name, help=text)
        a.add_argument("template_id")
    a = actions.add_parser("reconcile", help="one Production version with the alias")
    a.add_argument("template_id", nargs="?")
    for a in actions.choices.values():
        a.add_argument("--json", action="store_true", help="compact JSON")
    p.set_defaults(func=cmd_registry)
    from fresh_solver.performance.commands import add_commands as add_performance_commands
    add_performance_commands(sub)
    from fresh_solver.operations.commands import add_commands as add_operations_commands
    add_operations_commands(sub)
    from fresh_solver.performance.profile_commands import add_commands as add_profile_commands
    add_profile_commands(sub)
    return parser


def _registry_errors() -> tuple[type[BaseException], ...]:
    """The registry clients' errors (MLflow's only if a command loaded MLflow: only then can
    it be raised); looked up when an error propagates, so that `--help` and solving load
    neither."""
    from fresh_solver.registry.rest import client_errors

    return client_errors()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        for problem in exc.problems:
            print(f"fresh-solver {args.command}: error: {problem}", file=sys.stderr)
        return 2
    except _registry_errors() as exc:  # the store down, a refusal (403), a conflict
        code = getattr(exc, "error_code", "")
        print(f"fresh-solver {args.command}: error: MLflow answered {code}: {exc}",
              file=sys.stderr)
        return 1
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
