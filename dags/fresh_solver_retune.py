"""Retune one template's CP-SAT parameters: tune, race, validate, register to Staging, notify.

route → prepare → start → (trial × k → tell) × rounds → race → validate → register → notify

``start`` and each round's ``tell`` hand the next round its points (the ask), so no task of
its own pays MLflow's import to ask; a trial task scores one point, or several where trials
solve for less than a task costs (``retune.trial_tasks``). The DAG unrolls the most rounds a
run may take; past the run's budget a tell hands on no points, and the scheduler skips the
later rounds' tasks without starting them.

Wiring only: every task calls one function of ``fresh_solver.lifecycle.retune`` with small
JSON-able values; the tuning session lives in MLflow and each task rebuilds it from there, so
tasks retry (with backoff) or move between workers safely. A trial is the exception: the ask
hands it what scoring takes, it solves and returns its scores, and the round's tell records
them (a trial task imports no MLflow, which cost each one 4-5 s). Trials run in the pool
``fresh_solver_trials`` (sized so concurrent trials do not share cores:
``fresh_solver.lifecycle.pool``); with the CeleryExecutor every task that measures time
(start's reference, the trials, race, validate) goes to the queue ``fresh_solver_trials``,
whose workers bound them per machine (LocalExecutor ignores queues). Bad input
fails the run at its first task without retries. A reviewer promotes the Staging version.

A run with ``template_id`` '*' (the scheduled weekly run) retunes nothing itself: it starts one
run of this DAG for each template listed in ``retune_templates.toml`` beside this file (or the
file ``FRESH_SOLVER_RETUNE_TEMPLATES`` names); ``max_active_runs=1`` queues them.

Unpausing the DAG does not start a retune: Airflow then at once makes a run for the last
scheduled time it missed (up to a week ago), and a scheduled run that starts more than an hour
late skips every task and says why in ``route``'s log. Trigger a run to retune now.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from fresh_solver.lifecycle.callbacks import fail_at_once_on_bad_input, on_task_failure
from fresh_solver.lifecycle.pool import TRIAL_POOL, TRIAL_QUEUE
from fresh_solver.lifecycle.settings import (
    EVERY_TEMPLATE,
    RETUNE_SETTINGS,
    max_rounds,
    missed_run,
)

DAG_ID = "fresh_solver_retune"
# Weekly unless FRESH_SOLVER_RETUNE_SCHEDULE gives another cron/preset, or "none" (manual only).
SCHEDULE = os.environ.get("FRESH_SOLVER_RETUNE_SCHEDULE", "@weekly")
ROUNDS = max_rounds()
TEMPLATES_FILE = os.environ.get("FRESH_SOLVER_RETUNE_TEMPLATES",
                                str(Path(__file__).with_name("retune_templates.toml")))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("FRESH_SOLVER_RETRY_DELAY_S", "15")))


_bad_input_fails_at_once = fail_at_once_on_bad_input(AirflowFailException)


@dag(
    dag_id=DAG_ID,
    schedule=None if SCHEDULE.lower() == "none" else SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["fresh-solver", "tuning"],
    params={name: Param(default, description=text, **schema)
            for name, (default, schema, text) in RETUNE_SETTINGS.items()},
    default_args={"retries": 2, "retry_delay": RETRY_DELAY,
                  "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=10),
                  "on_failure_callback": on_task_failure},
    doc_md=__doc__,
)
def fresh_solver_retune():
    @task.branch(retries=0)
    def route() -> str | None:
        context = get_current_context()
        run = context["dag_run"]
        if reason := missed_run(run.run_type, run.run_after, datetime.now(UTC)):
            logging.getLogger("fresh_solver.lifecycle").warning("%s", reason)
            return None  # skips every task
        every = context["params"]["template_id"] == EVERY_TEMPLATE
        return "each_template" if every else "prepare"

    @task
    @_bad_input_fails_at_once
    def each_template() -> list[dict]:
        from fresh_solver.lifecycle.settings import scheduled_confs

        run_id = get_current_context()["run_id"]
        return [{"conf": conf, "trigger_run_id": f"{conf['template_id']}__{run_id}"}
                for conf in scheduled_confs(TEMPLATES_FILE)]

    @task
    @_bad_input_fails_at_once
    def prepare() -> dict:
        from fresh_solver.lifecycle import retune

        return retune.prepare(dict(get_current_context()["params"]), ROUNDS)

    # Returns the first round's trial tasks (what the round maps over: Airflow maps only over
    # a return value) and pushes the session's run id as the XCom "run_id".
    @task(queue=TRIAL_QUEUE)
    @_bad_input_fails_at_once
    def start(plan: dict) -> list[list[dict]]:
        from fresh_solver.lifecycle import retune

        context = get_current_context()
        started = retune.start(plan, session_key=context["run_id"])
        context["ti"].xcom_push(key="run_id", value=started["run_id"])
        return started["tasks"]

    # A trial solves its points and returns their scores; the tell records them (no MLflow
    # import here).
    @task(pool=TRIAL_POOL, queue=TRIAL_QUEUE)
    @_bad_input_fails_at_once
    def trial(plan: dict, points: list[dict]) -> list[dict]:
        from fresh_solver.lifecycle import retune

        return retune.evaluate(plan, points)

    # Records the round and returns the next round's trial tasks (none past the budget, so
    # the next round's mapped trials, and everything after them, skip without starting).
    @task
    @_bad_input_fails_at_once
    def tell(plan: dict, tuning_run: str, round_: int, results) -> list[list[dict]]:
        from fresh_solver.lifecycle import retune

        return retune.tell(plan, tuning_run, round_,
                           [results[i] for i in range(len(results or []))])["tasks"]

    # The last round's tell is skipped when the budget ends earlier; a '*' run skips all.
    @task(queue=TRIAL_QUEUE, trigger_rule="none_failed_min_one_success")
    @_bad_input_fails_at_once
    def race(plan: dict, tuning_run: str, last_round: dict) -> dict:
        from fresh_solver.lifecycle import retune

        return retune.race(plan, tuning_run)

    @task(queue=TRIAL_QUEUE)
    @_bad_input_fails_at_once
    def validate(plan: dict, candidate: dict) -> dict:
        from fresh_solver.lifecycle import retune

        return retune.validate(plan, candidate)

    @task
    @_bad_input_fails_at_once
    def register(plan: dict, candidate: dict, verdict: dict) -> dict:
        from fresh_solver.lifecycle import retune

        return retune.register(plan, candidate["run_id"], verdict)

    @task
    @_bad_input_fails_at_once
    def notify(plan: dict, candidate: dict, verdict: dict, registered: dict) -> dict:
        from fresh_solver.lifecycle import retune

        return retune.notify(plan, candidate, verdict, registered)

    routed, confs, plan = route(), each_template(), prepare()
    routed >> [confs, plan]
    TriggerDagRunOperator.partial(task_id="retune_each", trigger_dag_id=DAG_ID,
                                  retries=0).expand_kwargs(confs)
    tasks = start(plan)
    tuning_run = tasks["run_id"]
    for round_ in range(ROUNDS):
        results = trial.override(task_id=f"trial_{round_}").partial(plan=plan).expand(
            points=tasks)
        tasks = told = tell.override(task_id=f"tell_{round_}")(plan, tuning_run, round_,
                                                                results)
    candidate = race(plan, tuning_run, told)
    verdict = validate(plan, candidate)
    registered = register(plan, candidate, verdict)
    notify(plan, candidate, verdict, registered)


fresh_solver_retune()
