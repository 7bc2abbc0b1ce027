"""Daily: benchmark each template's Production set, detect regressions, re-validate.

plan → per template (benchmark → detect → revalidate) → summarise

Wiring only: every task calls one function of ``fresh_solver.lifecycle.benchmark`` with small
JSON-able values. ``plan`` lists the registered templates whose Production version is served
(with their held-out instances, as ``retune_templates.toml`` beside this file, or the file
``FRESH_SOLVER_RETUNE_TEMPLATES`` names, lays them out); each is benchmarked in its own mapped
group, so one template's failure does not stop the others. ``benchmark`` runs the Production
set and the CP-SAT defaults paired (one MLflow run in ``fresh-solver/benchmarks``, tagged with
this Airflow run's id, reused on a retry); ``detect`` compares the Production / defaults time
ratio with the template's baseline (established on the first run), records the verdict on the
benchmark run and alerts a significant regression through the operations channels;
``revalidate`` re-validates the served version when this OR-Tools or machine is not the one it
was validated on, and records the verdict on the version. One task at a time
(``max_active_tasks=1``): they measure time. Bad input fails a task at once, without retries.
Schedule: ``FRESH_SOLVER_BENCHMARK_SCHEDULE`` (a cron or preset, ``none`` = manual only;
default daily).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Param, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException

from fresh_solver.lifecycle.benchmark_settings import BENCHMARK_SETTINGS
from fresh_solver.lifecycle.callbacks import fail_at_once_on_bad_input, on_task_failure

DAG_ID = "fresh_solver_benchmark"
SCHEDULE = os.environ.get("FRESH_SOLVER_BENCHMARK_SCHEDULE", "@daily")
TEMPLATES_FILE = os.environ.get("FRESH_SOLVER_RETUNE_TEMPLATES",
                                str(Path(__file__).with_name("retune_templates.toml")))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("FRESH_SOLVER_RETRY_DELAY_S", "15")))


_bad_input_fails_at_once = fail_at_once_on_bad_input(AirflowFailException)


def _as_list(pulled) -> list:
    """A mapped group's output as a downstream task receives it: None when nothing ran, the
    one value when one template ran, a sequence when several did."""
    if pulled is None:
        return []
    if isinstance(pulled, dict):
        return [pulled]
    return list(pulled)


@dag(
    dag_id=DAG_ID,
    schedule=None if SCHEDULE.lower() == "none" else SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,
    tags=["fresh-solver", "benchmark"],
    params={name: Param(default, description=text, **schema)
            for name, (default, schema, text) in BENCHMARK_SETTINGS.items()},
    default_args={"retries": 2, "retry_delay": RETRY_DELAY,
                  "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=10),
                  "on_failure_callback": on_task_failure},
    doc_md=__doc__,
)
def fresh_solver_benchmark():
    @task
    @_bad_input_fails_at_once
    def plan() -> list:
        from fresh_solver.lifecycle import benchmark

        context = get_current_context()
        planned = benchmark.plan(dict(context["params"]), TEMPLATES_FILE)
        context["ti"].xcom_push(key="skipped", value=planned["skipped"])  # for summarise
        return planned["templates"]

    @task
    @_bad_input_fails_at_once
    def measure(template_plan: dict) -> dict:
        from fresh_solver.lifecycle import benchmark

        return benchmark.benchmark(template_plan, run_key=get_current_context()["run_id"])

    @task
    @_bad_input_fails_at_once
    def detect(template_plan: dict, measured: dict) -> dict:
        from fresh_solver.lifecycle import benchmark

        return benchmark.detect(template_plan, measured["run_id"])

    @task
    @_bad_input_fails_at_once
    def revalidate(template_plan: dict, measured: dict, verdict: dict) -> dict:
        from fresh_solver.lifecycle import benchmark

        again = benchmark.revalidate(template_plan, run_key=get_current_context()["run_id"])
        return {"benchmark": measured, "detection": verdict, "revalidation": again}

    # No template planned maps nothing (skipped): the summary still reports the day.
    @task(trigger_rule="none_failed")
    @_bad_input_fails_at_once
    def summarise(skipped: list, outcomes) -> dict:
        from fresh_solver.lifecycle import benchmark

        return benchmark.summarise({"skipped": skipped or []}, _as_list(outcomes))

    @task_group
    def each_template(template_plan: dict):
        measured = measure(template_plan)
        return revalidate(template_plan, measured, detect(template_plan, measured))

    planned = plan()
    outcomes = each_template.expand(template_plan=planned)
    summarise(planned["skipped"], outcomes)


fresh_solver_benchmark()
