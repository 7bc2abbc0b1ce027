"""Import what the lifecycle's tasks use, once, in the process that forks them.

Airflow runs each task in a process of its own, forked from a long-lived one: the
LocalExecutor's workers are forked from the scheduler and each forks its tasks; a Celery worker
forks its pool processes, and they fork the tasks. A task that imports MLflow, scikit-optimize
and OR-Tools itself pays several seconds of imports (MLflow about 4 s, scikit-optimize about
4 s on this project's 2-core machine) for a trial that solves for a fraction of a second.
Imported here, in the scheduler or the Celery worker before it forks, they reach every task
already loaded (copy-on-write). Imports only: no connection, server or solver is started here
(the BLAS threads numpy starts are OpenBLAS's, which handles a fork itself).

Airflow runs this through the ``airflow_local_settings`` module in ``SETTINGS_FOLDER``, which
a forking process finds on its PYTHONPATH; ``python -m fresh_solver.preload`` prints that
folder (for a worker started by hand: ``PYTHONPATH="$(python -m fresh_solver.preload)"``).
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

SETTINGS_FOLDER = Path(__file__).resolve().parent / "airflow_settings"

# The modules the DAGs' tasks import inside their functions, and what those import lazily.
MODULES = (
    "mlflow",
    "skopt",
    "ortools.sat.python.cp_model",
    "fresh_solver.lifecycle.retune",
    "fresh_solver.lifecycle.benchmark",
    "fresh_solver.operations.cycle",
    "fresh_solver.tuning.record",
    "fresh_solver.tuning.scoring",
    "fresh_solver.registry.registry",
    "fresh_solver.validation.validator",
    "fresh_solver.model.generate",
    "matplotlib.pyplot",  # the race's convergence plot, validation's chart (backend chosen there)
    "skopt.plots",
)


def preload(modules: tuple[str, ...] = MODULES) -> float:
    """Import ``modules``; returns the seconds it took (the forking process logs it)."""
    started = time.perf_counter()
    for name in modules:
        importlib.import_module(name)
    return time.perf_counter() - started


if __name__ == "__main__":
    print(SETTINGS_FOLDER)
