"""Where a retune run's time goes: solving vs Airflow and MLflow overhead.

    make demo && python -m benchmarks.retune_overhead --out out/retune_overhead
    python -m benchmarks.retune_overhead --on-stack --out out/retune_overhead

The first reads what `make demo` (``airflow dags test``: one process) left. With
``--on-stack`` it measures a real Airflow instead: it starts the local stack as `make up` does
(in a fresh folder under ``--out``), unpauses the retune DAG, triggers the demo's settings over
REST as a user would (``--runs`` times, one after another), waits, reads the last run and
stops the stack.

Either way it reads the newest `fresh_solver_retune` run of the Airflow metadata DB (task
instance durations: what each task cost, from process start-up to its last MLflow write) and
that run's tuning session in MLflow (the wall time of every solve: the reference's and the
trials' per-run times, the race's and the validation's totals). A task's overhead is its
duration minus its solving; the run's wall time also holds the scheduling gaps between tasks.
Solve times include the model build.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.record import rerun_command, write_results
from fresh_solver.tracking import names

DAG_ID = "fresh_solver_retune"
DAGS = Path(__file__).resolve().parents[1] / "dags"  # the checkout's DAG folder


def task_instances(airflow_db: Path) -> tuple[str, float, list[dict[str, Any]]]:
    """The newest run's id, wall seconds and task instances (task, map index, duration)."""
    with sqlite3.connect(f"file:{airflow_db}?mode=ro", uri=True) as db:
        row = db.execute(
            "select run_id, (julianday(end_date) - julianday(start_date)) * 86400 "
            "from dag_run where dag_id = ? and state = 'success' order by start_date desc "
            "limit 1", (DAG_ID,)).fetchone()
        if row is None:
            raise SystemExit(f"no successful {DAG_ID} run in {airflow_db}: run `make demo`")
        run_id, wall = row
        rows = db.execute(
            "select task_id, map_index, state, coalesce(duration, 0), try_number "
            "from task_instance where dag_id = ? and run_id = ?", (DAG_ID, run_id)).fetchall()
    return run_id, wall, [{"task_id": t, "map_index": m, "state": s, "duration_s": d,
                           "tries": n} for t, m, s, d, n in rows]


def solve_seconds(run_id: str) -> dict[str, float]:
    """Solve wall time per task id (``trial_<round>[i]`` for mapped trials)."""
    from fresh_solver import tracking
    from fresh_solver.tuning.record import read_json, read_run_json

    client = tracking.client()
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()
         if e.name.startswith("fresh-solver/tuning/")],
        filter_string=names.runs_where({names.SESSION_KEY: run_id}), max_results=1)
    if not found:
        raise SystemExit(f"no tuning session with session key {run_id}")
    session = found[0]
    params = session.data.params
    trials = client.search_runs(
        [session.info.experiment_id],
        filter_string=names.runs_where({names.PARENT_RUN: session.info.run_id}),
        max_results=10000)
    solved = {int(trial.data.tags[names.TRIAL]): sum(
        r["wall_time_s"] for r in read_run_json(client, trial, "results.json")["runs"])
        for trial in trials}
    seconds: dict[str, float] = {"start": solved.pop(0, 0.0)}
    keys = trial_task_keys(int(params["trials"]), int(params["batch"]), seconds["start"])
    for index, solving in solved.items():
        seconds[keys[index]] = seconds.get(keys[index], 0.0) + solving
    artifacts = {a.path for a in client.list_artifacts(session.info.run_id)}
    if "race.json" in artifacts:
        seconds["race"] = read_run_json(client, session, "race.json").get(
            "solve_seconds", 0.0)
    validation = session.data.tags.get(names.VALIDATION_RUN_ID)
    if validation:
        seconds["validate"] = read_json(client, validation, "validation_report.json").get(
            "solve_seconds", 0.0)
    return seconds


def trial_task_keys(trials: int, batch: int, reference_solving_s: float) -> dict[int, str]:
    """Which mapped trial task scored each trial index: ``trial_<round>[<map index>]``, as the
    DAG split each round's points (``retune.trial_tasks``)."""
    from fresh_solver.lifecycle.retune import trial_tasks

    keys = {}
    for round_, first in enumerate(range(1, trials + 1, batch)):
        points = list(range(first, min(first + batch, trials + 1)))
        for map_index, task in enumerate(trial_tasks(points, reference_solving_s)):
            keys |= {index: f"trial_{round_}[{map_index}]" for index in task}
    return keys


@contextlib.contextmanager
def run_on_stack(home: Path, runs: int = 1) -> Iterator[str]:
    """``runs`` retune runs of the demo's settings, one after another, on `make up`'s stack in
    ``home``, started here; yields the stack's MLflow URL (where the sessions are) and stops
    the stack after."""
    from fresh_solver import devstack
    from fresh_solver.demo import DEMO_CONF

    command = [sys.executable, "-m", "fresh_solver.devstack", "--home", str(home)]
    env = os.environ | {"FRESH_SOLVER_HOME": str(home), "FRESH_SOLVER_RETUNE_SCHEDULE": "none"}
    subprocess.run([*command, "up", "--dags", str(DAGS), "--mlflow-port",
                    str(devstack.free_port()), "--airflow-port", str(devstack.free_port())],
                   env=env, check=True)
    try:
        services = {s.name: s for s in devstack.read_state(home)}
        api = devstack.AirflowAPI(services["airflow"].url, devstack.AIRFLOW_USER,
                                  devstack.airflow_password(home))
        api.wait_for_dag(DAG_ID, timeout=180)
        api.unpause(DAG_ID)
        for n in range(1, runs + 1):
            run_id = api.trigger(DAG_ID, DEMO_CONF)
            print(f"retune run {n}/{runs} ({run_id}) triggered with the demo's settings ...",
                  flush=True)
            state = api.wait(DAG_ID, run_id, timeout=1800, poll=1.0)
            if state != "success":
                raise SystemExit(f"the retune run ended {state}; logs under {home / 'logs'}")
        yield services["mlflow"].url
    finally:
        subprocess.run([*command, "down"], env=env, check=False)


def kind(task_id: str) -> str:
    """Tasks grouped by what they do: tell_3 and tell_0 are both `tell`."""
    return task_id.rsplit("_", 1)[0] if task_id[-1].isdigit() else task_id


def main(argv: list[str] | None = None) -> int:
    """Tabulate the newest retune run's task durations against its solving."""
    from fresh_solver import tracking
    from fresh_solver.fingerprint import machine_fingerprint

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--airflow-db", type=Path,
                       help="Airflow's SQLite DB (default $FRESH_SOLVER_HOME/airflow/airflow.db)")
    where.add_argument("--on-stack", action="store_true",
                       help="start `make up`'s stack under --out and measure a run on it")
    parser.add_argument("--runs", type=int, default=1,
                        help="with --on-stack: runs one after another, the last one measured "
                             "(a long-lived stack's run, past its first task's start-up)")
    args = parser.parse_args(argv)
    if args.runs < 1 or (args.runs > 1 and not args.on_stack):
        parser.error("--runs: a count of 1 or more, with --on-stack")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.on_stack:
        home = Path(tempfile.mkdtemp(prefix="stack-", dir=args.out.resolve()))
        with run_on_stack(home, args.runs) as mlflow_url:
            os.environ["MLFLOW_TRACKING_URI"] = mlflow_url  # what this process reads next
            run_id, wall, tis = task_instances(home / "airflow" / "airflow.db")
            solving = solve_seconds(run_id)
    else:
        run_id, wall, tis = task_instances(args.airflow_db
                                           or tracking.home() / "airflow" / "airflow.db")
        solving = solve_seconds(run_id)
    by_kind: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for ti in tis:
        key = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
        ti["solve_s"] = solving.get(key, 0.0)
        row = by_kind[kind(ti["task_id"])]
        row["tasks"] += ti["state"] == "success"
        row["duration_s"] += ti["duration_s"]
        row["solve_s"] += ti["solve_s"]
    total_duration = sum(r["duration_s"] for r in by_kind.values())
    total_solve = sum(r["solve_s"] for r in by_kind.values())
    lines = [f"# Retune run {run_id}", "",
             f"Run wall time {wall:.1f} s; task durations add up to {total_duration:.1f} s, "
             f"of which solving {total_solve:.1f} s ({100 * total_solve / wall:.0f} % of the "
             f"run's wall time); task overhead (start-up, MLflow, Airflow) "
             f"{total_duration - total_solve:.1f} s; between tasks (scheduling) "
             f"{wall - total_duration:.1f} s. Solving is "
             f"{100 * total_solve / total_duration:.0f} % of the task time.", "",
             "| task | runs | duration s | solving s | overhead s |", "|---|---|---|---|---|"]
    for name, row in sorted(by_kind.items(), key=lambda kv: -kv[1]["duration_s"]):
        lines.append(f"| {name} | {int(row['tasks'])} | {row['duration_s']:.1f} | "
                     f"{row['solve_s']:.1f} | {row['duration_s'] - row['solve_s']:.1f} |")
    lines += ["", f"Machine: {machine_fingerprint()}", "",
              f"Rerun: `{rerun_command('benchmarks.retune_overhead', argv)}`"
              + ("" if args.on_stack else " after `make demo`")]
    write_results(args.out, {"run_id": run_id, "wall_s": wall, "tasks": tis,
                             "by_kind": by_kind, "solve_s": total_solve,
                             "on_stack": args.on_stack,
                             "solve_share_of_task_time": total_solve / total_duration,
                             "machine": machine_fingerprint()}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
