"""Every 15 minutes: keep the registry consistent, check health, alert, clean up, roll up.

reconcile → checks → alerts;  checks → retention;  checks → rollup

Wiring only: each task calls one function of ``fresh_solver.operations.cycle`` with JSON-able
values. ``reconcile`` reports an unreachable registry instead of failing, so the checks and
alerts of the same round still run (and the registry check then says what is wrong). Alerts
are deduplicated and their deliveries kept in the operations store, so a retried or repeated
round never pages twice for one cause. Schedule: ``FRESH_SOLVER_HEALTH_SCHEDULE`` (a cron or
preset, ``none`` = manual only; default every 15 minutes).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag, task

from fresh_solver.lifecycle.callbacks import on_task_failure

DAG_ID = "fresh_solver_health"
SCHEDULE = os.environ.get("FRESH_SOLVER_HEALTH_SCHEDULE", "*/15 * * * *")
INTERVAL_MINUTES = 15.0


@dag(
    dag_id=DAG_ID,
    schedule=None if SCHEDULE.lower() == "none" else SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=14),
    tags=["fresh-solver", "operations"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30),
                  "on_failure_callback": on_task_failure},
    doc_md=__doc__,
)
def fresh_solver_health():
    @task
    def reconcile() -> dict:
        from fresh_solver.operations import cycle

        return cycle.reconcile_all()

    @task
    def checks(_reconciled: dict) -> dict:
        from fresh_solver.operations import cycle

        return cycle.check()

    @task
    def alerts(report: dict) -> dict:
        from fresh_solver.operations import cycle

        return cycle.alert(report)

    @task
    def retention(_report: dict) -> dict:
        from fresh_solver.operations import cycle

        return cycle.retention()

    @task
    def rollup(_report: dict) -> list:
        from fresh_solver.operations import cycle

        return cycle.rollup(INTERVAL_MINUTES)

    report = checks(reconcile())
    alerts(report)
    retention(report)
    rollup(report)


fresh_solver_health()
