"""What every DAG's tasks do when they fail for good: one callback for all DAG files.

Kept apart from the task functions so that a DAG file can import it at parse time without
loading the lifecycle's heavy modules (they are imported when a task has failed).
"""

from __future__ import annotations

from typing import Any


def on_task_failure(context: dict[str, Any]) -> None:
    """Airflow's ``on_failure_callback``: log the failure and alert through the channels."""
    from fresh_solver.lifecycle.retune import task_failed

    ti = context["task_instance"]
    task_failed(ti.dag_id, ti.task_id, context["run_id"], repr(context.get("exception")))
