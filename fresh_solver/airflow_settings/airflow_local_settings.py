"""Airflow's local settings for the processes that fork tasks (scheduler, Celery workers).

Airflow imports a module named ``airflow_local_settings`` from its path when a process starts.
The stacks (``fresh_solver.devstack``, ``docker/compose.yaml``) put this folder on PYTHONPATH
of the LocalExecutor's scheduler and of the Celery workers only, so that the modules every task
needs are imported once there and inherited by each forked task (``fresh_solver.preload`` says
why); the api-server, the dag-processor and the triggerer start without them. Printed, not
logged: Airflow configures its logging after this import.
"""

import sys

from fresh_solver.preload import preload

print(f"fresh_solver: imported the tasks' modules before forking tasks in {preload():.1f} s",
      file=sys.stderr, flush=True)
