"""What every DAG's tasks do when they fail: one failure callback and one bad-input rule for
all DAG files.

Kept apart from the task functions so that a DAG file can import it at parse time without
loading the lifecycle's heavy modules (they are imported when a task has failed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fresh_solver.errors import InputError


def on_task_failure(context: dict[str, Any]) -> None:
    """Airflow's ``on_failure_callback``: log the failure and alert through the channels."""
    from fresh_solver.lifecycle.retune import task_failed

    ti = context["task_instance"]
    task_failed(ti.dag_id, ti.task_id, context["run_id"], repr(context.get("exception")))


def fail_at_once_on_bad_input(fail: type[Exception]) -> Callable[[Callable], Callable]:
    """A task decorator: bad input will not get better on a retry, so an ``InputError`` becomes
    ``fail`` (Airflow's ``AirflowFailException``, passed in: this package imports no Airflow),
    which ends the task for good, saying what is wrong."""
    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except InputError as exc:
                raise fail("bad input:\n" + "\n".join(exc.problems)) from None
        return wrapper
    return decorate
