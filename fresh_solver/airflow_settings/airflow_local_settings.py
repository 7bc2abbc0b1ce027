"""Airflow's local settings for the processes that fork tasks (scheduler, Celery workers).

Airflow imports a module named ``airflow_local_settings`` from its path when a process starts.
The stacks (``fresh_solver.devstack``, ``docker/compose.yaml``) put this folder on PYTHONPATH
of the LocalExecutor's scheduler and of the Celery workers only, so that the modules every task
needs are imported once there and inherited by each forked task (``fresh_solver.preload`` says
why); the api-server, the dag-processor and the triggerer start without them. Printed, not
logged: Airflow configures its logging after this import. The DAG files' own imports come
from the folder ``AIRFLOW__CORE__DAGS_FOLDER`` names (every stack here sets it).
"""

import os
import sys
from pathlib import Path

from fresh_solver.preload import preload

_folder = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
_seconds, _failed = preload(dags_folder=Path(_folder) if _folder else None)
print(f"fresh_solver: imported the tasks' modules before forking tasks in {_seconds:.1f} s"
      + (f" (with the imports of the DAG files in {_folder})" if _folder else
         " (AIRFLOW__CORE__DAGS_FOLDER is unset: the DAG files' own imports are not preloaded)")
      + (f"; not importable, left to the DAG files' parse: {', '.join(_failed)}"
         if _failed else ""),
      file=sys.stderr, flush=True)
