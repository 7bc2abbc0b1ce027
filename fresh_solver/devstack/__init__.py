"""The local hands-on stack: an MLflow server and a real Airflow, started and stopped as processes.

``python -m fresh_solver.devstack up|down|status`` (what ``make up``/``make down`` run) starts
them in the background on 127.0.0.1 and records them in ``$FRESH_SOLVER_HOME/stack.json``, so
another process can stop them. The integration tests call :func:`start_airflow` and
:func:`stop` directly. This package only spawns processes and talks HTTP (stdlib only, plus
psycopg and redis to check and prepare the distributed stack's services); it never imports
airflow or mlflow, which cost seconds and would pin this process's configuration.

Its parts: ``processes`` (sessions, signals, waiting over HTTP), ``mlflow_server``,
``airflow_server``, ``distributed``, ``airflow_api`` (a REST client) and ``cli``; the names
below are what the demo, the benchmarks and the tests use.

Two stacks: the embedded one (SQLite, LocalExecutor: ``make up``) and the distributed one
(``up --distributed``, ``make up-distributed``, :func:`start_distributed`): PostgreSQL,
CeleryExecutor with Redis, one Celery worker per trial "machine" plus one for the other
tasks, and the MLflow server on PostgreSQL with proxied artifacts (docs/distributed.md).

Every server and worker runs in its own session (``start_new_session``) and is stopped as a
whole session: MLflow's and uvicorn's workers, LocalExecutor's and Celery's workers and the
task runners (which Airflow puts in process groups of their own) all outlive a stopped main
process otherwise. A Celery worker's session can be killed alone (:func:`send_signal`).
"""

from fresh_solver.devstack.airflow_api import AirflowAPI, AirflowAPIError
from fresh_solver.devstack.airflow_server import (
    AIRFLOW_USER,
    DEFAULT_AIRFLOW_PORT,
    airflow_env,
    airflow_password,
    password_file,
    start_airflow,
    wait_airflow,
)
from fresh_solver.devstack.cli import cpu_sets, main, read_state, write_state
from fresh_solver.devstack.distributed import (
    DEFAULT_PG_SERVER,
    HOSTNAME_CALLABLE,
    MLFLOW_ADMIN,
    BadSetting,
    Distributed,
    check_postgres,
    check_services,
    distributed_env,
    drop_database,
    ensure_database,
    mlflow_passwords,
    start_distributed,
    worker_hostname,
    worker_layout,
)
from fresh_solver.devstack.mlflow_server import DEFAULT_MLFLOW_PORT, start_mlflow
from fresh_solver.devstack.processes import (
    HOST,
    ROOT,
    Service,
    StackError,
    alive,
    free_port,
    send_signal,
    stop,
    venv_bin,
    wait_ready,
)

__all__ = [
    "AIRFLOW_USER", "DEFAULT_AIRFLOW_PORT", "DEFAULT_MLFLOW_PORT", "DEFAULT_PG_SERVER", "HOST",
    "HOSTNAME_CALLABLE", "MLFLOW_ADMIN", "ROOT", "AirflowAPI", "AirflowAPIError", "BadSetting",
    "Distributed", "Service", "StackError", "airflow_env", "airflow_password", "alive",
    "check_postgres", "check_services", "cpu_sets", "distributed_env", "drop_database",
    "ensure_database", "free_port", "main", "mlflow_passwords", "password_file", "read_state",
    "send_signal", "start_airflow", "start_distributed", "start_mlflow", "stop", "venv_bin",
    "wait_airflow", "wait_ready", "worker_hostname", "worker_layout", "write_state",
]
