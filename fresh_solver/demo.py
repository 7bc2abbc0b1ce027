"""The main job on the embedded defaults: the whole parameter lifecycle, end to end.

    python -m fresh_solver.demo --dags dags          # what `make demo` runs

1. Airflow (SQLite metadata DB) and MLflow (SQLite store) under ``$FRESH_SOLVER_HOME``.
2. The retune DAG (`airflow dags test fresh_solver_retune`) on the demo template: generated
   training and held-out instances, a small tuning budget, validation, registration.
3. A reviewer's promotion of the Staging version (as `fresh-solver registry promote` does),
   and how to do the same in the MLflow UI.
4. A production solve that loads the Production set from the registry.
5. A summary: versions, the measured speedup with its spread, ``params_source``, where the
   records are. A run whose candidate fails validation says so and shows the verdict.

Re-running is safe: each run is a new Airflow run, tuning session and (if it passes) version.
Airflow runs as a subprocess (its CLI); nothing here imports Airflow.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.tracking import names

DEMO_TEMPLATE = "demo"
# The demo's budget, measured on a 2-core machine (README, "The main job"): the template of
# generated family medium-2, chosen with template_screen as one whose gain from tuning holds on
# the held-out instances (medium-10's, the demo's before, held at 1.1-1.4x and passed half the
# time), tuned over the shipped three-knob space; 6 held-out instances x 3 seeds give the
# Wilcoxon test 18 pairs.
DEMO_CONF: dict[str, Any] = {
    "template_id": DEMO_TEMPLATE, "generator_scale": "medium", "generator_seed": 2,
    "train_instances": 6, "held_out_instances": 6, "space": "demo", "trials": 20,
    "batch_size": 4, "trial_time_limit": 3.0, "seeds": 1, "race": 2, "race_seeds": 2,
    "validation_seeds": 3, "validation_time_limit": 3.0,
    "metric": "time_to_target",  # what its pass rate was measured with (auto would probe)
}
# For CI and a first look: small instances, seconds of solving. Speedups then are noise and
# validation usually fails, which the demo reports as such.
QUICK_CONF: dict[str, Any] = DEMO_CONF | {
    "generator_scale": "small", "generator_seed": 3, "train_instances": 2,
    "held_out_instances": 3, "trials": 2, "batch_size": 2, "trial_time_limit": 0.3,
    "race": 1, "validation_seeds": 2, "validation_time_limit": 0.5,
}
REVIEWER = "demo-reviewer"
LIFECYCLE_LINE = re.compile(r"\]\s+(retune .*?)\s+\[fresh_solver\.lifecycle\]")


def say(message: str) -> None:
    """Progress for the person watching (stderr, flushed)."""
    print(message, file=sys.stderr, flush=True)


def run_airflow(args: list[str], env: dict[str, str], log_path: Path, echo: bool) -> int:
    """Run an `airflow` command, its output to ``log_path``; with ``echo`` the lifecycle's own
    log lines are shown as they come."""
    from fresh_solver.devstack import venv_bin

    airflow = str(venv_bin() / "airflow")
    with open(log_path, "w") as log:
        process = subprocess.Popen([airflow, *args], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            log.write(line)
            match = LIFECYCLE_LINE.search(line) if echo else None
            if match:
                say(f"  {match.group(1)}")
        return process.wait()


def session_since(template_id: str, since_ms: int):
    """The template's first tuning session started since ``since_ms``: this run's (a
    scheduled retune started later by `make up` is not taken for it)."""
    from fresh_solver import tracking

    client = tracking.client()
    experiment = client.get_experiment_by_name(tracking.tuning_experiment(template_id))
    if experiment is None:
        return None
    found = client.search_runs(
        [experiment.experiment_id],
        filter_string=names.runs_where({names.KIND: names.TUNING_SESSION})
        + f" and attributes.start_time >= {since_ms}",
        order_by=["attributes.start_time ASC"], max_results=1)
    return found[0] if found else None


def run(dags: Path, conf: dict[str, Any]) -> dict[str, Any]:
    """The lifecycle end to end; returns the summary it prints."""
    from fresh_solver import tracking
    from fresh_solver.lifecycle import retune

    plan = retune.prepare(conf)  # bad settings are refused here, before Airflow starts
    home = tracking.home()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    from fresh_solver.devstack import DEFAULT_AIRFLOW_PORT, airflow_env

    env = airflow_env(home, dags, DEFAULT_AIRFLOW_PORT)  # the settings `make up` uses
    started, started_ms = time.monotonic(), int(time.time() * 1000)
    summary: dict[str, Any] = {"template_id": conf["template_id"], "home": str(home)}

    say(f"[1/5] Airflow metadata DB (SQLite) under {home / 'airflow'} ...")
    if run_airflow(["db", "migrate"], env, home / "logs" / "airflow-db-migrate.log", False):
        raise RuntimeError(f"airflow db migrate failed: see {home / 'logs'}")

    say(f"[2/5] Retune DAG for template {conf['template_id']!r}: {conf['trials']} trials of "
        f"{conf['trial_time_limit']} s per solve, then validation on held-out instances ...")
    dag_log = home / "logs" / "retune-dag-test.log"
    code = run_airflow(["dags", "test", "fresh_solver_retune", "-c", json.dumps(conf)], env,
                       dag_log, True)
    session = session_since(conf["template_id"], started_ms)
    if code or session is None or session.info.status != "FINISHED":
        raise RuntimeError(f"the retune DAG run failed: see {dag_log}")
    tags = session.data.tags
    summary |= {"tuning_run_id": session.info.run_id,
                "dag_seconds": round(time.monotonic() - started, 1)}
    verdict = _verdict(tags.get(names.VALIDATION_RUN_ID))  # None: race kept defaults
    summary["validation"] = verdict
    registered = tags.get(names.REGISTERED_VERSION)

    from fresh_solver.registry.registry import ParameterRegistry, model_name

    registry = ParameterRegistry()
    if registered:
        version = registered.rsplit("/", 1)[1]
        say(f"[3/5] Validation PASSED; {registered} is in Staging. Promoting it as a reviewer "
            f"would: fresh-solver registry promote {conf['template_id']} {version} "
            f"--approved-by {REVIEWER}")
        registry.promote(conf["template_id"], version, REVIEWER)
        summary["promoted_version"] = version
    else:
        reason = "; ".join(verdict["reasons"]) if verdict else \
            retune.why_not_tuned(plan, session.info.run_id, tracking.client())
        summary["why_not_registered"] = reason
        say(f"[3/5] Validation did NOT pass, so nothing was registered or promoted: {reason}")
    summary["versions"] = [{"version": str(v.version), "stage": v.current_stage,
                            "speedup_factor": v.tags.get("speedup_factor"),
                            "approved_by": v.tags.get("approved_by")}
                           for v in registry.versions(conf["template_id"])]

    say("[4/5] Production solve: parameters from the registry's Production version ...")
    summary["production_solve"] = _production_solve(conf["template_id"], plan["held_out"][0])

    say("[5/5] Done.")
    summary |= {"model": model_name(conf["template_id"]),
                "mlflow_store": tracking.tracking_uri(),
                "airflow_db": str(home / "airflow" / "airflow.db"), "dag_log": str(dag_log),
                "wall_seconds": round(time.monotonic() - started, 1)}
    return summary


def _verdict(validation_run_id: str | None) -> dict[str, Any] | None:
    if not validation_run_id:
        return None
    from fresh_solver import tracking
    from fresh_solver.lifecycle.retune import verdict_of
    from fresh_solver.tuning.record import read_json

    return verdict_of(read_json(tracking.client(), validation_run_id,
                                "validation_report.json"))


def _production_solve(template_id: str, problem_path: str) -> dict[str, Any]:
    """What application code does: solve with the Production set (``params_source`` says
    where the parameters came from), on a held-out instance."""
    from fresh_solver import production
    from fresh_solver.model import load_problem

    result = production.solve(load_problem(problem_path), template_id=template_id,
                              time_limit=10.0)
    return {"problem": problem_path, "params_source": result.params_source,
            "status": result.status, "objective": result.objective, "valid": result.valid,
            "wall_time_s": round(result.wall_time_s, 3)}


def print_summary(summary: dict[str, Any]) -> None:
    """The summary for people (stderr); the JSON goes to stdout."""
    verdict = summary.get("validation")
    lines = ["", f"fresh-solver demo: template {summary['template_id']!r}, "
                 f"{summary['wall_seconds']} s",
             f"  tuning run       {summary['tuning_run_id']}"]
    if verdict:
        lines.append(f"  validation       {'PASSED' if verdict['passed'] else 'FAILED'}: "
                     f"{verdict['speedup_factor']:.2f}x geomean time to target vs CP-SAT "
                     f"defaults over {verdict['pairs']} held-out pairs (per pair "
                     f"{verdict['speedup_min']:.2f}x-{verdict['speedup_max']:.2f}x), "
                     f"Wilcoxon p = {verdict['p_value']:.3g}")
        if verdict["reasons"]:
            lines.append(f"                   failed because: {'; '.join(verdict['reasons'])}")
    else:
        lines.append(f"  validation       not run: {summary['why_not_registered']}")
    for v in summary["versions"]:
        lines.append(f"  {summary['model']} v{v['version']}: {v['stage']}"
                     f"{', approved by ' + v['approved_by'] if v['approved_by'] else ''}")
    solve = summary["production_solve"]
    lines += [f"  production solve {solve['status']} objective {solve['objective']}, "
              f"params_source {solve['params_source']}, valid {solve['valid']}",
              f"  MLflow store     {summary['mlflow_store']}",
              f"  Airflow DB       {summary['airflow_db']} (log: {summary['dag_log']})",
              "  See both in their UIs: make up   (stop with: make down)",
              "  Promote in the MLflow UI: Models > "
              f"{summary['model']} > a version > Aliases > add 'production'"]
    say("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """`make demo`: run the lifecycle, print the summary; exit 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m fresh_solver.demo",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--dags", default="dags", help="the project's dags/ folder")
    parser.add_argument("--quick", action="store_true",
                        help="small instances and a tiny budget (CI); speedups are noise")
    parser.add_argument("--conf", default="{}",
                        help="JSON settings over the demo's (any retune DAG param)")
    args = parser.parse_args(argv)
    try:
        dags = Path(args.dags)
        if not (dags / "fresh_solver_retune.py").is_file():
            raise InputError(f"--dags {args.dags}: no fresh_solver_retune.py there")
        try:
            overrides = json.loads(args.conf)
        except json.JSONDecodeError as exc:
            raise InputError(f"--conf: malformed JSON: {exc}") from None
        if not isinstance(overrides, dict):
            raise InputError("--conf: give a JSON object")
        summary = run(dags, (QUICK_CONF if args.quick else DEMO_CONF) | overrides)
    except InputError as exc:
        for problem in exc.problems:
            say(f"fresh-solver demo: error: {problem}")
        return 2
    except RuntimeError as exc:
        say(f"fresh-solver demo: {exc}")
        return 1
    print_summary(summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
