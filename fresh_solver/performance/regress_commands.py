"""`fresh-solver benchmark regress`: is a benchmark run slower than a baseline? And
`fresh-solver benchmark baseline`: store one.

    fresh-solver benchmark baseline --template-id ID --from-run RUN_ID [--configuration NAME]
        [--metric time_to_target_s] [--json]

    fresh-solver benchmark regress --baseline RUN_ID --current RUN_ID [--configuration NAME]
        [--metric time_to_target_s] [--threshold 1.2] [--alpha 0.05] [--correction holm]
        [--allow-mixed] [--json]

``--baseline`` is a benchmark run or a stored baseline run (``fresh_solver.kind=baseline``);
``--current`` a benchmark run of the same template. The decision is the
:class:`~fresh_solver.performance.regression.RegressionDetector`'s (per instance: one-sided
Mann-Whitney U, Holm across instances, ratio of medians at least the threshold).

Exit codes: **0** no regression, **1** regression found, **2** bad input (unknown run, a run
that is not a benchmark, another template, a configuration the runs lack, different machine
fingerprints or OR-Tools versions without ``--allow-mixed``). With ``--json`` one object on
stdout: ``regression`` (bool), ``performance_change``, ``p_value``, ``rows`` (per instance)
and the rest of the result; otherwise a table on stderr.

``baseline`` stores every repetition of one configuration of a benchmark run as the
template's baseline (an MLflow run in ``fresh-solver/benchmarks``, ``fresh_solver.kind =
baseline``), which ``regress`` and the benchmark DAG then compare against; it prints the
baseline's run id (``--json``: the stored distribution).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_actions(actions) -> None:
    """Add ``regress`` and ``baseline`` to the ``benchmark`` command's actions."""
    from fresh_solver.measure import P_ADJUSTMENTS
    from fresh_solver.performance.regression import METRICS
    from fresh_solver.performance.regression_stats import DEFAULT_ALPHA, DEFAULT_THRESHOLD

    a = actions.add_parser(
        "regress", help="is a benchmark run slower than a baseline? (exit 1 if so)",
        description="Per instance: one-sided Mann-Whitney U (current slower), Holm-adjusted "
        "across instances, and a ratio of medians of at least --threshold. Exit codes: 0 no "
        "regression, 1 regression found, 2 bad input.")
    a.add_argument("--baseline", required=True, metavar="RUN_ID",
                   help="a benchmark run, or a stored baseline run")
    a.add_argument("--current", required=True, metavar="RUN_ID", help="a benchmark run")
    a.add_argument("--configuration", metavar="NAME",
                   help="the configuration to compare (needed when the runs hold several)")
    a.add_argument("--metric", choices=METRICS, default="time_to_target_s",
                   help="the runs.csv column compared (default time_to_target_s)")
    a.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"least ratio of medians that counts (default {DEFAULT_THRESHOLD})")
    a.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help=f"significance level after adjustment (default {DEFAULT_ALPHA})")
    a.add_argument("--correction", choices=P_ADJUSTMENTS, default="holm",
                   help="multiple-comparison control across instances (default holm)")
    a.add_argument("--allow-mixed", action="store_true",
                   help="compare across machine fingerprints / OR-Tools versions (flagged)")
    a.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a.set_defaults(func=cmd_regress)

    b = actions.add_parser(
        "baseline", help="store a benchmark run's repetitions as a template's baseline",
        description="Every repetition of one configuration of a benchmark run, per instance, "
        "with its machine fingerprint and OR-Tools version, stored as an MLflow baseline run.")
    b.add_argument("--template-id", required=True, metavar="ID")
    b.add_argument("--from-run", required=True, metavar="RUN_ID", help="a benchmark run")
    b.add_argument("--configuration", metavar="NAME",
                   help="the configuration to keep (needed when the run holds several)")
    b.add_argument("--metric", choices=METRICS, default="time_to_target_s",
                   help="the runs.csv column kept (default time_to_target_s)")
    b.add_argument("--json", action="store_true", help="print the stored baseline as JSON")
    b.set_defaults(func=cmd_baseline)


def cmd_regress(args: argparse.Namespace) -> int:
    """Print the verdict; 1 when a regression was found, else 0 (bad input raises)."""
    from fresh_solver.performance.regression import RegressionDetector

    detector = RegressionDetector(threshold=args.threshold, alpha=args.alpha,
                                  correction=args.correction, metric=args.metric)
    result = detector.compare_runs(args.baseline, args.current, args.configuration,
                                   allow_mixed=args.allow_mixed)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        _print_result(result)
    return 1 if result.is_significant else 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """Store the baseline and say where it is (bad input raises InputError: exit 2)."""
    from fresh_solver.performance.regression import RegressionDetector

    stored = RegressionDetector(metric=args.metric).establish_baseline(
        args.template_id, from_run=args.from_run, configuration=args.configuration)
    if args.json:
        print(json.dumps(stored.to_dict()))
    else:
        runs = sum(len(t) for t in stored.times.values())
        print(f"baseline {stored.run_id}: {stored.template_id} / {stored.configuration}, "
              f"{len(stored.times)} instances, {runs} runs ({stored.metric}) from benchmark run "
              f"{stored.source_run}", file=sys.stderr)
        print(stored.run_id)
    return 0


def _print_result(result) -> None:
    """The verdict and one line per instance, for people (stderr)."""
    p = "-" if result.p_value is None else f"{result.p_value:.3g}"
    lines = [
        f"regression          {result.is_significant} ({result.severity})",
        f"performance_change  {result.performance_change:+.1%}",
        f"p_value             {p} ({result.correction}-adjusted, alpha {result.alpha})",
        f"baseline_time       {result.baseline_time:.4g} s   current_time "
        f"{result.current_time:.4g} s   ({result.metric}, {result.configuration})",
        f"evidence            {result.evidence}",
        "",
        f"{'instance':<24} {'n':>7} {'baseline':>9} {'current':>9} {'ratio':>6} "
        f"{'95% CI':>13} {'p adj':>8}  verdict",
    ]
    for r in result.rows:
        ci = "-" if r.ci_low is None else f"{r.ci_low:.2f}-{r.ci_high:.2f}"
        p_adj = "-" if r.p_adjusted is None else f"{r.p_adjusted:.3g}"
        verdict = r.severity if r.regression else "ok"
        lines.append(f"{r.instance:<24} {r.n_baseline:>3}/{r.n_current:<3} "
                     f"{r.baseline_median:>9.4g} {r.current_median:>9.4g} {r.ratio:>6.2f} "
                     f"{ci:>13} {p_adj:>8}  {verdict}")
    lines += [f"warning: {w}" for w in result.warnings]
    if result.unmatched:
        lines.append(f"not compared (in one run only): {', '.join(result.unmatched)}")
    print("\n".join(lines), file=sys.stderr)
