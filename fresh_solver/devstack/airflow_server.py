"""A real Airflow for the local stacks: its environment, its admin password, the trial pool,
and its components (api-server, scheduler, dag-processor, triggerer) started and waited for."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

from fresh_solver.devstack.processes import (
    HOST,
    Service,
    StackError,
    log_tail,
    spawn,
    stop,
    venv_bin,
    wait_ready,
)

AIRFLOW_USER = "admin"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DEFAULT_AIRFLOW_PORT = 8080


def wait_airflow(service: Service, timeout: float) -> None:
    """Wait until the api-server answers its health check and its execution API, the one the
    tasks call. The execution API builds itself on its first request (about 2 s on the
    project's 2-core machine): asked here, at start-up, instead of by the stack's first task
    (measured: that task's first call took 2.2 s, 0.02 s after this)."""
    for path in ("/api/v2/monitor/health", "/execution/health"):
        wait_ready(service, path, timeout)



def airflow_env(home: Path, dags_folder: Path, port: int, env_extra: dict | None = None) -> dict:
    """The environment every Airflow process of the stack shares: everything is set here (not
    in airflow.cfg) so a user's own AIRFLOW_* settings or a stale cfg cannot leak in, and the
    task processes reach this api-server instead of Airflow's default localhost:8080."""
    home = Path(home).resolve()
    airflow_home = home / "airflow"
    bin_dir = venv_bin()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW__") and k not in ("AIRFLOW_HOME", "AIRFLOW_CONFIG")}
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW_HOME": str(airflow_home),
        "FRESH_SOLVER_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dags_folder).resolve()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        # Where the LocalExecutor's task supervisors call home (default: localhost:8080).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{port}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file(home)),
    }
    env |= {k: str(v) for k, v in (env_extra or {}).items()}
    return env


def with_preload(env: dict) -> dict:
    """``env`` for a process that forks Airflow tasks (the LocalExecutor's scheduler, a Celery
    worker): Airflow finds the project's ``airflow_local_settings`` there, which imports the
    tasks' modules once before any fork (``fresh_solver.preload``)."""
    from fresh_solver.preload import SETTINGS_FOLDER

    folder, path = str(SETTINGS_FOLDER), env.get("PYTHONPATH")
    return env | {"PYTHONPATH": f"{folder}{os.pathsep}{path}" if path else folder}


def password_file(home: Path) -> Path:
    """Where SimpleAuthManager reads the Airflow login's password (JSON {user: password})."""
    return Path(home).resolve() / "airflow" / "simple_auth_manager_passwords.json.generated"


def airflow_password(home: Path, user: str = AIRFLOW_USER) -> str:
    """The Airflow password of ``user``, for the CLI's message and for API clients."""
    return json.loads(password_file(home).read_text())[user]


def _ensure_password(home: Path) -> None:
    # Written before the api-server starts (it only adds users missing from the file), so the
    # login is known at once and survives restarts; 0600 as Airflow's own.
    path = password_file(home)
    passwords = json.loads(path.read_text()) if path.exists() else {}
    if AIRFLOW_USER not in passwords:
        passwords[AIRFLOW_USER] = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(passwords) + "\n")


def create_trial_pool(env: dict, log: Path, timeout: float = 120.0) -> int:
    """The pool the retune DAG's trial tasks run in, sized so trials do not share cores
    (``fresh_solver.lifecycle.pool``); set again at every start, as the machine may differ."""
    from fresh_solver.lifecycle.pool import TRIAL_POOL, trial_pool_slots

    slots = trial_pool_slots()
    with open(log, "ab") as out:
        done = subprocess.run(
            [str(venv_bin() / "airflow"), "pools", "set", TRIAL_POOL, str(slots),
             "fresh-solver trials: cores // the most CP-SAT workers a trial may use"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            timeout=timeout, start_new_session=True, check=False)
    if done.returncode != 0:
        raise StackError(f"airflow pools set failed ({done.returncode}); {log} ends:\n"
                         f"{log_tail(log)}")
    return slots


def start_airflow(home: Path, dags_folder: Path, port: int, env_extra: dict | None = None,
                  wait: bool = True, timeout: float = 180.0) -> Service:
    """Airflow 3 the embedded way (SQLite metadata DB, LocalExecutor) as four processes
    (api-server, scheduler, dag-processor, triggerer) with the api-server on 127.0.0.1:``port``,
    after ``airflow db migrate``. Returns once the api-server answers its health check."""
    home = Path(home).resolve()
    env = airflow_env(home, dags_folder, port, env_extra)
    # One JWT secret for all components of this start (api-server and scheduler must agree);
    # Airflow's generated one is 16 bytes, which PyJWT warns about on every token.
    env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))
    return run_airflow(home, env, port, wait=wait, timeout=timeout)


def run_airflow(home: Path, env: dict, port: int, pool: bool = True,
                 wait: bool = True, timeout: float = 180.0) -> Service:
    # What both stacks share: migrate the metadata DB, set the trial pool (the distributed
    # stack sets its own over REST once the api-server answers: one airflow CLI start less),
    # start the four components each in its own session.
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _ensure_password(home)
    airflow = str(venv_bin() / "airflow")
    migrate_log = logs / "airflow-db-migrate.log"
    with open(migrate_log, "ab") as out:
        done = subprocess.run([airflow, "db", "migrate"], env=env, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=timeout, start_new_session=True, check=False)
    if done.returncode != 0:
        raise StackError(f"airflow db migrate failed ({done.returncode}); {migrate_log} ends:\n"
                         f"{log_tail(migrate_log)}")
    if pool:
        create_trial_pool(env, migrate_log, timeout)
    service = Service("airflow", f"http://{HOST}:{port}", port, info={
        "user": AIRFLOW_USER, "password_file": str(password_file(home)),
        "airflow_home": env["AIRFLOW_HOME"], "dags_folder": env["AIRFLOW__CORE__DAGS_FOLDER"]})
    argv = {
        "api-server": ["api-server", "--host", HOST, "--port", str(port), "--workers", "1"],
        # Log serving is skipped: every component writes under the same AIRFLOW_HOME, so the
        # api-server reads task logs from disk, and serve-logs would bind 0.0.0.0:8793/8794.
        "scheduler": ["scheduler", "--skip-serve-logs"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer", "--skip-serve-logs"],
    }
    try:
        for name in AIRFLOW_COMPONENTS:
            # The LocalExecutor forks every task from the scheduler: it imports their modules.
            forks_tasks = name == "scheduler" and env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
            spawn(service, name, [airflow, *argv[name]],
                   with_preload(env) if forks_tasks else env, logs / f"airflow-{name}.log")
        if wait:
            wait_airflow(service, timeout)
    except BaseException:
        stop(service)
        raise
    return service
