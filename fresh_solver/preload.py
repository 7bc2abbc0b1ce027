"""Import what the lifecycle's tasks use, once, in the process that forks them.

Airflow runs each task in a process of its own, forked from a long-lived one: the
LocalExecutor's workers are forked from the scheduler and each forks its tasks; a Celery worker
forks its pool processes, and they fork the tasks. A task that imports MLflow, scikit-optimize
and OR-Tools itself pays several seconds of imports (MLflow about 4 s, scikit-optimize about
4 s on this project's 2-core machine) for a trial that solves for a fraction of a second.
Imported here, in the scheduler or the Celery worker before it forks, they reach every task
already loaded (copy-on-write). Imports only: no connection, server or solver is started here
(the BLAS threads numpy starts are OpenBLAS's, which handles a fork itself).

A task also parses its DAG file before it runs, and so imports what that file imports at its
top level: the retune DAG's ``TriggerDagRunOperator`` alone took 0.4 s in every forked task
(measured in forked children of a preloaded process, on the machine busy with a benchmark:
0.38-0.45 s against 0.03 s for the rest of the file). :func:`dag_file_imports` finds those
modules so the forking process imports them too, whatever the DAG files are.

Airflow runs this through the ``airflow_local_settings`` module in ``SETTINGS_FOLDER``, which
a forking process finds on its PYTHONPATH; ``python -m fresh_solver.preload`` prints that
folder (for a worker started by hand: ``PYTHONPATH="$(python -m fresh_solver.preload)"``).
"""

from __future__ import annotations

import ast
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


def dag_file_imports(folder: Path) -> tuple[str, ...]:
    """The modules the Python files in ``folder`` import at their top level (absolute imports;
    not those inside functions, which a task imports when it runs and :data:`MODULES` covers),
    sorted. A file that does not parse adds nothing: Airflow reports it when it parses it."""
    found = set()
    for path in sorted(folder.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    found.discard("__future__")
    return tuple(sorted(found))


def preload(modules: tuple[str, ...] = MODULES,
            dags_folder: Path | None = None) -> tuple[float, list[str]]:
    """Import ``modules`` and what the DAG files in ``dags_folder`` import at their top level;
    returns the seconds it took (the forking process logs it) and the DAG files' imports that
    failed. Those are skipped, not raised: a DAG file with a broken import is Airflow's to
    report when it parses the file, not a reason for the scheduler or a worker not to start."""
    started = time.perf_counter()
    for name in modules:
        importlib.import_module(name)
    failed = []
    for name in dag_file_imports(dags_folder) if dags_folder else ():
        try:
            importlib.import_module(name)
        except ImportError:
            failed.append(name)
    return time.perf_counter() - started, failed


if __name__ == "__main__":
    print(SETTINGS_FOLDER)
