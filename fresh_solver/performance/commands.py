"""`fresh-solver benchmark ...`: the benchmark command and its actions.

    fresh-solver benchmark run (--problems FILES... | --template FILE --template-id ID
        --counts 1,3,5,10 | --config TOML) [--params FILE]... [--configs baseline,template]
        [--repetitions R] [--time-limit S] [--seeds N...] [--out DIR] [--json]

Imports stay inside the handlers: ``fresh-solver --help`` must not pay for MLflow or pandas.
Another action is added by passing the actions object of :func:`benchmark_actions` to a
function that adds its parser (see :func:`add_commands`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def benchmark_actions(subparsers) -> Any:
    """The ``benchmark`` command's parser; returns its actions (sub-parsers) object."""
    p = subparsers.add_parser("benchmark", help="paired benchmarks of solver configurations, "
                              "tracked in MLflow")
    return p.add_subparsers(dest="action", required=True)


def add_commands(subparsers) -> None:
    """Add ``benchmark`` and its actions to the CLI's sub-parsers."""
    actions = benchmark_actions(subparsers)
    add_run_action(actions)
    from fresh_solver.performance.regress_commands import add_actions as add_regress_action
    add_regress_action(actions)


def add_run_action(actions) -> None:
    """``benchmark run``."""
    a = actions.add_parser(
        "run", help="run configurations paired on instances, log an MLflow run",
        description="Every configuration on the same instances, seeds and order; the first "
        "configuration is the reference that sets the targets (time to target, PAR2). Flags "
        "given with --config override the TOML file's values.")
    source = a.add_argument_group("instances (one of)")
    source.add_argument("--problems", nargs="+", metavar="FILE",
                        help="problem files (problem JSON, job-shop, .fjs)")
    source.add_argument("--template", metavar="FILE",
                        help="a problem file defining the template; with --template-id and "
                        "--counts")
    source.add_argument("--template-id", metavar="ID",
                        help="the template to instantiate (and whose Production set "
                        "'production' means)")
    source.add_argument("--counts", metavar="N,N,...",
                        help="job counts of the template, e.g. 1,3,5,10")
    source.add_argument("--config", metavar="TOML", help="a benchmark definition file")
    a.add_argument("--configs", metavar="NAMES",
                   help="comma-separated: baseline, template, production, file:<path> "
                   "(default baseline,template; the first is the reference)")
    a.add_argument("--params", action="append", default=[], metavar="FILE",
                   help="also compare this parameter set file (repeatable)")
    a.add_argument("--repetitions", type=int, metavar="R",
                   help="runs per instance and seed (default 3)")
    a.add_argument("--time-limit", type=float, metavar="S",
                   help="seconds per run, the cap (default 60)")
    a.add_argument("--seeds", type=int, nargs="+", metavar="N", help="solver seeds (default 0)")
    a.add_argument("--out", metavar="DIR",
                   help="output folder (default FRESH_SOLVER_HOME/benchmarks/<time>)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.add_argument("--json", action="store_true",
                   help="print one JSON object (run_id, summary) on stdout")
    a.set_defaults(func=cmd_benchmark_run)


def parse_counts(text: str) -> tuple[int, ...]:
    """``1,3,5,10`` as a tuple; anything else is an InputError naming the flag."""
    from fresh_solver.errors import InputError

    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"--counts: expected comma-separated positive integers such as "
                         f"1,3,5,10, got {text!r}") from None
    if any(c < 1 for c in counts):
        raise InputError(f"--counts: job counts must be >= 1, got {text!r}")
    return counts


def definition_from_args(args: argparse.Namespace):
    """The benchmark definition the flags describe (a --config file, then the flags)."""
    from fresh_solver.errors import InputError
    from fresh_solver.performance.definitions import (
        FILE_PREFIX,
        TemplateBenchmark,
        load_definition,
        with_overrides,
    )

    sources = [flag for flag, given in (("--problems", args.problems),
                                        ("--template", args.template),
                                        ("--config", args.config)) if given]
    if len(sources) > 1:
        raise InputError(f"give one instance source, not {' and '.join(sources)}")
    if args.counts is not None and args.problems:
        raise InputError("--counts goes with --template (job counts of its template)")
    if args.template and args.counts is None:
        raise InputError("--template needs --counts (job counts, e.g. 1,3,5,10)")
    if args.template and not args.template_id:
        raise InputError(f"--template {args.template}: name the template with --template-id")
    definition = load_definition(args.config) if args.config else TemplateBenchmark()
    configs = None
    if args.configs is not None:
        configs = tuple(c.strip() for c in args.configs.split(",") if c.strip())
        if not configs:
            raise InputError(f"--configs: no configuration named in {args.configs!r}")
    if args.params:
        configs = (configs or definition.configurations) + tuple(
            FILE_PREFIX + p for p in args.params)
    definition = with_overrides(
        definition, template_id=args.template_id, template_file=args.template,
        instance_counts=parse_counts(args.counts) if args.counts is not None else None,
        problems=tuple(args.problems) if args.problems else None,
        configurations=configs, repetitions=args.repetitions,
        time_limit_seconds=args.time_limit,
        seeds=tuple(args.seeds) if args.seeds is not None else None)
    definition.check()
    return definition


def cmd_benchmark_run(args: argparse.Namespace) -> int:
    """Run the benchmark; print where its files and MLflow run are (``--json``: one object
    with ``run_id``, ``experiment``, ``out`` and the ``summary``)."""
    from pathlib import Path

    from fresh_solver.performance.mlflow_run import EXPERIMENT
    from fresh_solver.performance.runner import run_benchmark

    definition = definition_from_args(args)
    out = Path(args.out) if args.out else None
    suite = run_benchmark(definition, out=out, progress=not args.no_progress)
    if args.json:
        print(json.dumps({"run_id": suite.run_id, "experiment": EXPERIMENT,
                          "out": str(suite.out), "summary": suite.summary}))
    else:
        print((suite.out / "report.md").read_text(), file=sys.stderr)
        print(f"runs, summary, report and plots: {suite.out}\nMLflow run {suite.run_id} in "
              f"experiment {EXPERIMENT}", file=sys.stderr)
    return 0
