"""The local hands-on stack: an MLflow server and a real Airflow, started and stopped as processes.

``python -m fresh_solver.devstack up|down|status`` (what ``make up``/``make down`` run) starts
them in the background on 127.0.0.1 and records them in ``$FRESH_SOLVER_HOME/stack.json``, so
another process can stop them. The integration tests call :func:`start_airflow` and
:func:`stop` directly. This module only spawns processes and talks HTTP (stdlib only, plus
psycopg and redis to check and prepare the distributed stack's services); it never imports
airflow or mlflow, which cost seconds and would pin this process's configuration.

Two stacks: the embedded one (SQLite, LocalExecutor: ``make up``) and the distributed one
(``up --distributed``, ``make up-distributed``, :func:`start_distributed`): PostgreSQL,
CeleryExecutor with Redis, one Celery worker per trial "machine" plus one for the other
tasks, and the MLflow server on PostgreSQL with proxied artifacts (docs/distributed.md).

Every server and worker runs in its own session (``start_new_session``) and is stopped as a
whole session: MLflow's and uvicorn's workers, LocalExecutor's and Celery's workers and the
task runners (which Airflow puts in process groups of their own) all outlive a stopped main
process otherwise. A Celery worker's session can be killed alone (:func:`send_signal`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
AIRFLOW_USER = "admin"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
STATE_FILE = "stack.json"
DEFAULT_MLFLOW_PORT = 5000
DEFAULT_AIRFLOW_PORT = 8080


@dataclass
class Service:
    """A started server: its URL and the sessions (one per process) that make it up.

    ``processes`` rows are JSON-able (name, pid, log) so a later process can stop them from
    ``stack.json``; ``info`` holds what a user needs to log in (Airflow's password file)."""

    name: str
    url: str
    port: int
    processes: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    popens: list[subprocess.Popen] = field(default_factory=list, repr=False, compare=False)

    def to_json(self) -> dict:
        """What stack.json records (no Popen objects: they do not outlive this process)."""
        return {"name": self.name, "url": self.url, "port": self.port,
                "processes": self.processes, "info": self.info}

    @classmethod
    def from_json(cls, data: dict) -> Service:
        """A service read back from stack.json, enough to check and stop it elsewhere."""
        return cls(data["name"], data["url"], data["port"], list(data["processes"]),
                   dict(data.get("info", {})))


class StackError(RuntimeError):
    """A server could not start (the message carries the tail of its log)."""


# --------------------------------------------------------------------------------------------
# processes


def venv_bin() -> Path:
    """The bin/ folder of the running interpreter's environment: the servers must run the same
    airflow/mlflow (and see the same fresh_solver) as the process that starts them."""
    return Path(sys.executable).parent


def port_in_use(port: int, host: str = HOST) -> bool:
    """Whether something listens on ``host:port`` (or a wildcard address), so ``up`` can refuse
    before starting anything. SO_REUSEADDR: a just-stopped stack's TIME_WAIT sockets do not
    count, as they do not stop the servers (which set it too) from binding."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    """A port free on 127.0.0.1 now (for tests and side-by-side stacks)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _tail(path: Path | str, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _spawn(service: Service, name: str, argv: list[str], env: dict, log: Path,
           cwd: Path | None = None, cpus: list[int] | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
    if cpus:
        # Pinned from here, not in a preexec_fn (unsafe in a process with threads): the
        # worker's pool processes, forked seconds later at start-up, inherit it.
        os.sched_setaffinity(process.pid, cpus)
    service.popens.append(process)
    service.processes.append({"name": name, "pid": process.pid, "pgid": process.pid,
                              "log": str(log)})
    return process


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgrp, session) of ``pid`` from /proc, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[2]), int(fields[3])


def _session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``: the server and everything it spawned,
    whatever process group they moved to. Without /proc, the session leader's group."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(sid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [sid]
    members = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat and stat[2] == sid and stat[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def _signal_session(sid: int, sig: int) -> None:
    # One killpg per process group, so a server and its helpers get the signal together; the
    # groups that Airflow's task runners make for themselves within the session are reached
    # as well. (Airflow's triggerer may still take ~10 s: it waits for its trigger runner.)
    groups = {sid}
    if Path("/proc").is_dir():
        groups |= {stat[1] for pid in _session_members(sid) if (stat := _proc_stat(pid))}
    for pgid in sorted(groups, key=lambda g: g != sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def send_signal(service: Service, sig: int) -> None:
    """Signal every process of the service (fault injection: SIGSTOP hangs a server with its
    sockets still accepting, SIGCONT resumes it)."""
    for row in service.processes:
        _signal_session(row["pid"], sig)


def alive(service: Service) -> list[str]:
    """Names of the service's processes that still run (anything left in their session)."""
    for process in service.popens:
        process.poll()  # reap our own children, or they count as alive (zombies)
    return [p["name"] for p in service.processes if _session_members(p["pid"])]


def stop(handle: Service | list[Service], timeout: float = 20.0) -> None:
    """Stop services by session: SIGTERM everything in them, SIGKILL what is left after
    ``timeout`` s. Idempotent, and works from another process (``down``)."""
    services = handle if isinstance(handle, list) else [handle]
    sids = [p["pid"] for s in services for p in s.processes]
    for sid in sids:
        _signal_session(sid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(s) for s in services):
            break
        time.sleep(0.2)
    else:
        for sid in sids:
            _signal_session(sid, signal.SIGKILL)
        time.sleep(0.5)
    for s in services:
        for process in s.popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(service: Service, path: str, timeout: float) -> None:
    """Wait until ``service.url + path`` answers 200; raise StackError with the log tail as
    soon as one of its processes dies, or when ``timeout`` s pass."""
    url = service.url.rstrip("/") + path
    deadline = time.monotonic() + timeout
    while True:
        for process, row in zip(service.popens, service.processes):
            if process.poll() is not None:
                raise StackError(f"{service.name} {row['name']} exited with {process.returncode} "
                                 f"before {url} answered; {row['log']} ends:\n"
                                 f"{_tail(row['log'])}")
        try:
            if _get(url)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {r['log']}\n{_tail(r['log'], 15)}" for r in service.processes)
            raise StackError(f"{url} did not answer within {timeout:.0f} s\n{logs}")
        time.sleep(0.3)


def wait_airflow(service: Service, timeout: float) -> None:
    """Wait until the api-server answers its health check and its execution API, the one the
    tasks call. The execution API builds itself on its first request (about 2 s on the
    project's 2-core machine): asked here, at start-up, instead of by the stack's first task
    (measured: that task's first call took 2.2 s, 0.02 s after this)."""
    for path in ("/api/v2/monitor/health", "/execution/health"):
        wait_ready(service, path, timeout)


# --------------------------------------------------------------------------------------------
# MLflow


def start_mlflow(home: Path, port: int, wait: bool = True, timeout: float = 120.0,
                 backend_store_uri: str | None = None, env_extra: dict | None = None) -> Service:
    """Run mlflow_config/start_server.sh (what a deployment runs) on 127.0.0.1:``port`` over
    the embedded store the CLI writes (``home``/mlflow.db), so the UI shows the main job's runs
    and versions; or over ``backend_store_uri`` (the distributed stack's PostgreSQL), where
    clients see only the server: artifacts are proxied (``mlflow-artifacts:`` URIs) into
    ``home``/server-artifacts (start_server.sh's default)."""
    home = Path(home).resolve()
    env = os.environ | {
        "FRESH_SOLVER_HOME": str(home),
        "MLFLOW_PORT": str(port),
        "MLFLOW_HOST": HOST,
        "MLFLOW": str(venv_bin() / "mlflow"),
        "MLFLOW_BACKEND_STORE_URI": backend_store_uri or f"sqlite:///{home / 'mlflow.db'}",
    } | (env_extra or {})
    service = Service("mlflow", f"http://{HOST}:{port}", port)
    _spawn(service, "server", ["bash", str(ROOT / "mlflow_config" / "start_server.sh")], env,
           home / "logs" / "mlflow.log")
    if wait:
        try:
            wait_ready(service, "/health", timeout)
        except BaseException:
            stop(service)
            raise
    return service


# --------------------------------------------------------------------------------------------
# Airflow


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
                         f"{_tail(log)}")
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
    return _run_airflow(home, env, port, wait=wait, timeout=timeout)


def _run_airflow(home: Path, env: dict, port: int, pool: bool = True,
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
                         f"{_tail(migrate_log)}")
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
            _spawn(service, name, [airflow, *argv[name]],
                   with_preload(env) if forks_tasks else env, logs / f"airflow-{name}.log")
        if wait:
            wait_airflow(service, timeout)
    except BaseException:
        stop(service)
        raise
    return service


# --------------------------------------------------------------------------------------------
# distributed mode: PostgreSQL metadata DB, CeleryExecutor with Redis, Celery workers


DEFAULT_PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "default"  # Airflow's [operators] default_queue: every non-measuring task
WORKER_PREFIX = "fresh-solver"
# A stack's name makes its own databases (<name>_airflow, <name>_mlflow), Redis key prefix
# (<name>:, so its own queues) and worker names (<name with dashes>-trials-1@host): two stacks
# with different names share a PostgreSQL server and a Redis without meeting.
DEFAULT_STACK_NAME = "fresh_solver"
STACK_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
MLFLOW_ADMIN = "admin"  # start_server.sh's MLFLOW_AUTH_ADMIN_USERNAME default


class ServiceUnavailable(StackError):
    """PostgreSQL or the broker does not answer (or refuses what the stack asks): the user's
    setup to fix (``up`` exits 2), not a server of the stack that failed to start."""


class StackConflict(StackError):
    """Another running stack uses this one's databases or queues (``up`` exits 2)."""


class BadSetting(StackError):
    """A URL or option the distributed stack cannot use (``up`` exits 2)."""


@dataclass
class Distributed:
    """Where the distributed stack keeps what its processes share (DESIGN §7): Airflow's
    metadata DB and Celery's result backend on PostgreSQL, the broker (Redis), MLflow's store
    on PostgreSQL; and how many trial workers run (one per simulated machine).

    ``key_prefix`` (Redis ``global_keyprefix``) keeps the queues of several stacks sharing one
    Redis apart; ``worker_prefix`` starts the Celery hostnames, which must be unique among the
    workers on one broker. Both, and the databases' default names, come from the stack's name
    (:meth:`resolve`). ``worker_cpus`` pins each trial
    worker to given CPUs (one list per worker, e.g. to simulate unlike machines); by default
    :func:`worker_layout` splits this machine's CPUs among ``workers``. ``mlflow_auth`` runs
    the MLflow server with access control (the fresh-solver-auth app) and the tasks as its
    service account (:func:`mlflow_passwords`)."""

    airflow_db_url: str
    mlflow_db_url: str
    broker_url: str
    result_backend: str
    workers: int = 2
    default_concurrency: int = 2
    key_prefix: str = ""
    worker_prefix: str = WORKER_PREFIX
    worker_cpus: list[list[int]] | None = None
    mlflow_auth: bool = False

    @classmethod
    def resolve(cls, airflow_db_url: str | None = None, mlflow_db_url: str | None = None,
                broker_url: str | None = None, workers: int = 2,
                environ: dict | None = None, name: str = DEFAULT_STACK_NAME,
                **options) -> Distributed:
        """Each URL from the argument, else the fresh-solver variable
        (``FRESH_SOLVER_AIRFLOW_DB_URL``, ``FRESH_SOLVER_MLFLOW_DB_URL``,
        ``FRESH_SOLVER_CELERY_BROKER_URL``), else Airflow's own (``AIRFLOW__DATABASE__
        SQL_ALCHEMY_CONN``, ``AIRFLOW__CELERY__BROKER_URL``, ``..._RESULT_BACKEND``) if the user
        set them, else this machine's services, in databases named after the stack (``name``):
        so the defaults just work here and a real deployment names its own. The Redis key
        prefix and the worker names come from ``name`` unless ``options`` give them.
        BadSetting for a name or URLs the stack cannot use."""
        if not STACK_NAME_PATTERN.fullmatch(name):
            raise BadSetting(f"stack name {name!r}: lower-case letters, digits and '_', "
                             "starting with a letter, at most 40 characters")
        env = os.environ if environ is None else environ
        airflow_db = (airflow_db_url or env.get("FRESH_SOLVER_AIRFLOW_DB_URL")
                      or env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
                      or f"{DEFAULT_PG_SERVER}/{name}_airflow")
        mlflow_db = (mlflow_db_url or env.get("FRESH_SOLVER_MLFLOW_DB_URL")
                     or f"{DEFAULT_PG_SERVER}/{name}_mlflow")
        broker = (broker_url or env.get("FRESH_SOLVER_CELERY_BROKER_URL")
                  or env.get("AIRFLOW__CELERY__BROKER_URL") or DEFAULT_BROKER_URL)
        backend = env.get("AIRFLOW__CELERY__RESULT_BACKEND") or f"db+{airflow_db}"
        for what, url in (("Airflow metadata DB", airflow_db), ("MLflow store", mlflow_db)):
            if not urllib.parse.urlsplit(url).scheme.startswith("postgresql"):
                raise BadSetting(
                    f"the distributed stack keeps its {what} on PostgreSQL; got {_safe(url)} "
                    f"(a postgresql:// URL, e.g. {DEFAULT_PG_SERVER}/fresh_solver_airflow)")
        if workers < 1:
            raise BadSetting(f"--workers {workers}: at least one trial worker")
        cpus = options.get("worker_cpus")
        if cpus is not None and len(cpus) != workers:
            raise BadSetting(f"--worker-cpus names {len(cpus)} CPU sets for {workers} trial "
                             "workers: one set per worker")
        options = {"key_prefix": f"{name}:", "worker_prefix": name.replace("_", "-")} | options
        return cls(airflow_db, mlflow_db, broker, backend, workers, **options)


def _safe(url: str) -> str:
    """A URL fit for messages and logs: the password replaced by *** (the operations store's
    rule, imported here only when a message needs it)."""
    from fresh_solver.operations.store import safe_url

    return safe_url(url)


def _libpq(url: str, database: str | None = None) -> str:
    # A SQLAlchemy URL (postgresql+psycopg://...) as libpq takes it, optionally on another
    # database of the same server.
    parts = urllib.parse.urlsplit(url)
    path = f"/{database}" if database else parts.path
    return urllib.parse.urlunsplit(parts._replace(scheme="postgresql", path=path))


def database_name(url: str) -> str:
    """The database a PostgreSQL URL names."""
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    if not name:
        raise BadSetting(f"{_safe(url)} names no database")
    return name


def check_postgres(url: str, timeout: float = 5.0) -> str | None:
    """Why the PostgreSQL server of ``url`` cannot be used (None when it answers): checked on
    its maintenance database, before anything is started."""
    import psycopg

    try:
        with psycopg.connect(_libpq(url, "postgres"), connect_timeout=max(1, int(timeout))):
            return None
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        host = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
        return f"PostgreSQL at {host} does not answer: {reason}"


def check_broker(url: str, timeout: float = 3.0) -> str | None:
    """Why the Celery broker cannot be used (None when it answers): Redis must answer PING;
    another broker must accept a TCP connection."""
    parts = urllib.parse.urlsplit(url)
    where = f"{parts.hostname}:{parts.port or ''}"
    if parts.scheme in ("redis", "rediss"):
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=timeout,
                                 socket_timeout=timeout).ping()
        except redis.RedisError as exc:
            return f"Redis at {where} does not answer: {exc}"
        return None
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=timeout).close()
    except (OSError, TypeError) as exc:
        return f"the Celery broker at {where or _safe(url)} does not answer: {exc}"
    return None


def check_services(dist: Distributed) -> list[str]:
    """Everything the distributed stack needs from outside that does not answer now."""
    servers = {urllib.parse.urlsplit(u).netloc: u
               for u in (dist.airflow_db_url, dist.mlflow_db_url)}
    problems = [p for url in servers.values() if (p := check_postgres(url))]
    if problem := check_broker(dist.broker_url):
        problems.append(problem)
    return problems


def stack_conflicts(dist: Distributed) -> list[str]:
    """What another running stack holds of ``dist``'s: open sessions on its databases (a
    scheduler, an api-server, an MLflow server of that stack) and Celery workers answering on
    its broker and key prefix. Two stacks on one metadata DB run two schedulers on one state;
    on one queue, each consumes the other's tasks."""
    problems = []
    for url in dict.fromkeys((dist.airflow_db_url, dist.mlflow_db_url)):
        if sessions := database_sessions(url):
            problems.append(f"database {database_name(url)!r} on {_safe(url)} has "
                            f"{len(sessions)} open sessions ({', '.join(sessions[:4])}"
                            f"{', ...' if len(sessions) > 4 else ''})")
    if workers := workers_answering(dist.broker_url, dist.key_prefix):
        problems.append(f"Celery workers answer on {_safe(dist.broker_url)} with key prefix "
                        f"{dist.key_prefix!r}: {', '.join(workers)}")
    return problems


def database_sessions(url: str) -> list[str]:
    """Who else is connected to the database ``url`` names, as ``application@client``
    (asked of the server's ``postgres`` database, so the question adds no session)."""
    import psycopg

    with psycopg.connect(_libpq(url, "postgres"), autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT coalesce(nullif(application_name, ''), usename, '?') || '@' || "
            "coalesce(host(client_addr), 'local') FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (database_name(url),)).fetchall()
    return sorted(row[0] for row in rows)


def workers_answering(broker_url: str, key_prefix: str, timeout: float = 1.0) -> list[str]:
    """The Celery workers that answer a ping on ``broker_url`` under ``key_prefix`` (Redis
    ``global_keyprefix`` covers the broadcast channel too, so only that prefix's workers)."""
    from celery import Celery

    app = Celery(broker=broker_url, set_as_current=False)
    if key_prefix:
        app.conf.broker_transport_options = {"global_keyprefix": key_prefix}
    try:
        return sorted(name for reply in app.control.ping(timeout=timeout) for name in reply)
    finally:
        app.close()


def ensure_database(url: str) -> bool:
    """Create the database ``url`` names unless it exists (True when created): the stack's
    databases are made on first start and kept across restarts."""
    import psycopg
    from psycopg import sql

    name = database_name(url)
    try:
        with psycopg.connect(_libpq(url, "postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone():
                return False
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:  # made by a concurrent start
                return False
    except psycopg.Error as exc:
        raise ServiceUnavailable(f"cannot create database {name!r} on {_safe(url)}: "
                                 f"{str(exc).strip()}") from None
    return True


def drop_database(url: str) -> None:
    """Drop the database ``url`` names (and cut its sessions): for tests, never for ``down``,
    which keeps a stack's state."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(_libpq(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(database_name(url))))


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` in the stack's Celery workers: the worker's
    Celery hostname (``FRESH_SOLVER_WORKER_NAME``, e.g. ``fresh-solver-trials-1@host``), so
    task instances show which of several workers on one machine ran them; the machine's name
    elsewhere. As a URL authority, ``name@host`` still reaches ``host``."""
    return os.environ.get("FRESH_SOLVER_WORKER_NAME") or socket.getfqdn()


# Airflow imports this by name in every worker: the module's importable name, also when this
# file runs as ``python -m fresh_solver.devstack`` (where ``__name__`` is ``__main__``).
HOSTNAME_CALLABLE = f"{__spec__.name if __spec__ else __name__}.worker_hostname"


def worker_layout(workers: int, cpus: set[int] | None = None) -> list[dict]:
    """Each trial worker's CPUs and trial slots when ``workers`` workers share this machine:
    the CPUs split into contiguous slices (one CPU each, shared round-robin, when there are
    more workers than CPUs), each worker pinned to its slice. A worker then sees its slice as
    its machine: ``trial_pool_slots`` of the slice, and a fingerprint with its core count, as
    on a real machine of that size; unpinned, every worker would size itself to the whole
    machine and N of them would oversubscribe it N times."""
    from fresh_solver.lifecycle.pool import trial_pool_slots

    cpus = sorted(cpus or os.sched_getaffinity(0))
    if workers > len(cpus):
        slices = [[cpus[i % len(cpus)]] for i in range(workers)]
    else:
        size, extra = divmod(len(cpus), workers)
        slices, start = [], 0
        for i in range(workers):
            end = start + size + (i < extra)
            slices.append(cpus[start:end])
            start = end
    return [{"cpus": s, "slots": trial_pool_slots(cores=len(s))} for s in slices]


def mlflow_password_file(home: Path) -> Path:
    """Where the distributed stack keeps its MLflow accounts' passwords (with ``mlflow_auth``)."""
    return Path(home).resolve() / "mlflow_auth_passwords.json"


def mlflow_passwords(home: Path) -> dict[str, str]:
    """The MLflow accounts of a stack with access control, ``{user: password}``: the admin
    (who may promote; MLflow creates it on the store's first start only, so the passwords are
    made once and kept, 0600), the DAGs' service account and the production loader's
    (``fresh_solver.registry.accounts``)."""
    from fresh_solver.registry.accounts import LOADER_USER, SERVICE_USER

    path = mlflow_password_file(home)
    passwords = json.loads(path.read_text()) if path.exists() else {}
    missing = [u for u in (MLFLOW_ADMIN, SERVICE_USER, LOADER_USER) if u not in passwords]
    if missing:
        passwords |= {user: secrets.token_urlsafe(16) for user in missing}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(passwords) + "\n")
    return passwords


def set_up_mlflow_accounts(mlflow: Service, home: Path, timeout: float = 120.0) -> None:
    """Create (or reset) the service and loader accounts on the stack's MLflow server, as its
    admin, with ``python -m fresh_solver.registry.accounts``: it takes the passwords from a
    file outside any checkout, so they go through a private temporary one, deleted after."""
    import tempfile

    from fresh_solver.registry.accounts import LOADER_USER, SERVICE_USER

    passwords = mlflow_passwords(home)
    log = Path(home).resolve() / "logs" / "mlflow-accounts.log"
    with tempfile.TemporaryDirectory(prefix="fresh-solver-accounts-") as tmp:
        credentials = Path(tmp) / "accounts.json"
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"service": {"password": passwords[SERVICE_USER]},
                       "loader": {"password": passwords[LOADER_USER]}}, out)
        env = os.environ | {"MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN,
                            "MLFLOW_TRACKING_PASSWORD": passwords[MLFLOW_ADMIN],
                            "MLFLOW_DISABLE_TELEMETRY": "true"}
        with open(log, "ab") as out:
            done = subprocess.run(
                [sys.executable, "-m", "fresh_solver.registry.accounts", "--credentials",
                 str(credentials), "--tracking-uri", mlflow.url], env=env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout,
                check=False)
    if done.returncode != 0:
        raise StackError(f"setting up the MLflow accounts failed ({done.returncode}); {log} "
                         f"ends:\n{_tail(log)}")


def distributed_env(home: Path, dags_folder: Path, port: int, mlflow_url: str,
                    dist: Distributed, trial_slots: int,
                    env_extra: dict | None = None) -> dict:
    """The embedded stack's environment (:func:`airflow_env`) switched to PostgreSQL, the
    CeleryExecutor and the MLflow server, shared by every component and worker. Workers call
    the api-server's execution API (``AIRFLOW__CORE__EXECUTION_API_SERVER_URL``) with tokens
    the scheduler signs and the api-server checks: one ``AIRFLOW__API_AUTH__JWT_SECRET`` for
    all. Parallelism covers the trial slots plus the default worker's, no more."""
    env = airflow_env(home, dags_folder, port)
    async_url = urllib.parse.urlsplit(dist.airflow_db_url)._replace(
        scheme="postgresql+psycopg_async").geturl()
    env |= {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dist.airflow_db_url,
        # Airflow's own async default is asyncpg, which this environment does not have; psycopg
        # (the sync driver here) has an async dialect.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": async_url,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(max(4, trial_slots + dist.default_concurrency)),
        "AIRFLOW__CELERY__BROKER_URL": dist.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": dist.result_backend,
        # Airflow's default (24 h), set so that it does not warn in every process.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
        # A task whose worker machine died is failed (and retried) once its heartbeats stop
        # for this long; Airflow's 300 s stalled a retune 5 minutes per lost worker. A live
        # task's supervisor beats every 5 s (min_heartbeat_interval) from its own process, so
        # even a worker whose cores CP-SAT fills keeps well inside 45 s.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "45",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "MLFLOW_TRACKING_URI": mlflow_url,
        # MLflow 3.17's telemetry thread sets and unsets a variable in os.environ while the
        # HTTP client iterates os.environ for proxies: tasks failed at random with
        # "KeyError: '_MLFLOW_TELEMETRY_SESSION_ID'". Tasks have no use for it.
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    if dist.key_prefix:
        env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"] = dist.key_prefix
    env |= {k: str(v) for k, v in (env_extra or {}).items()}
    return env


def start_worker(home: Path, env: dict, name: str, queue: str, concurrency: int,
                 cpus: list[int] | None = None, prefix: str = WORKER_PREFIX) -> Service:
    """One ``airflow celery worker`` consuming ``queue`` with ``concurrency`` task slots, in a
    session of its own (it can be stopped or killed alone), pinned to ``cpus`` when given.
    Its Celery hostname ``<prefix>-<name>@<host>`` is also the task instances' hostname."""
    home = Path(home).resolve()
    hostname = f"{prefix}-{name}@{socket.gethostname()}"
    worker_env = env | {"FRESH_SOLVER_WORKER_NAME": hostname,
                        "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE}
    service = Service(f"celery-{name}", "", 0, info={
        "celery_hostname": hostname, "queue": queue, "concurrency": concurrency,
        "cpus": cpus or sorted(os.sched_getaffinity(0))})
    # Without mingle and gossip: nothing to sync between these workers, and start-up is faster.
    # Log serving skipped as for the scheduler: the api-server reads task logs from disk.
    argv = [str(venv_bin() / "airflow"), "celery", "worker", "--queues", queue,
            "--concurrency", str(concurrency), "--celery-hostname", hostname,
            "--skip-serve-logs", "--without-mingle", "--without-gossip",
            "--pid", str(home / "airflow" / f"celery-{name}.pid")]
    _spawn(service, "worker", argv, with_preload(worker_env),
           home / "logs" / f"celery-{name}.log", cpus=cpus)
    return service


def wait_worker(service: Service, timeout: float = 120.0) -> None:
    """Wait until the Celery worker says it is ready (consuming its queue); StackError with
    its log tail when it exits first or ``timeout`` s pass."""
    row, process = service.processes[0], service.popens[0]
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise StackError(f"{service.name} exited with {process.returncode}; {row['log']} "
                             f"ends:\n{_tail(row['log'])}")
        with contextlib.suppress(OSError):
            if f"{service.info['celery_hostname']} ready." in Path(row["log"]).read_text(
                    errors="replace"):
                return
        if time.monotonic() > deadline:
            raise StackError(f"{service.name} not ready within {timeout:.0f} s; {row['log']} "
                             f"ends:\n{_tail(row['log'])}")
        time.sleep(0.3)


def start_distributed(home: Path, dags_folder: Path, airflow_port: int, mlflow_port: int,
                      dist: Distributed, env_extra: dict | None = None, wait: bool = True,
                      timeout: float = 180.0) -> list[Service]:
    """The distributed stack on 127.0.0.1: the MLflow server on PostgreSQL (proxied
    artifacts), Airflow's four components on PostgreSQL with the CeleryExecutor, one trial
    worker per ``dist.workers`` (queue ``fresh_solver_trials``, pinned to its share of the
    cores, concurrency = its trial slots) and one ``default``-queue worker. The pool is sized
    to the trial workers' slots together (``fresh_solver.lifecycle.pool``).

    ServiceUnavailable before anything starts when PostgreSQL or the broker does not answer;
    the databases are created if missing. With ``wait``, returns once the servers answer and
    the workers consume; on any failure, stops what it started."""
    from fresh_solver.lifecycle.pool import TRIAL_QUEUE, trial_pool_slots

    home = Path(home).resolve()
    problems = check_services(dist)
    if problems:
        raise ServiceUnavailable("; ".join(problems))
    if conflicts := stack_conflicts(dist):
        raise StackConflict("; ".join(conflicts))
    for url in (dist.airflow_db_url, dist.mlflow_db_url):
        ensure_database(url)
    layout = worker_layout(dist.workers) if not dist.worker_cpus else [
        {"cpus": sorted(c), "slots": trial_pool_slots(cores=len(c))} for c in dist.worker_cpus]
    slots = sum(w["slots"] for w in layout)
    started: list[Service] = []
    mlflow_env, env_extra = {}, dict(env_extra or {})
    if dist.mlflow_auth:
        from fresh_solver.registry.accounts import SERVICE_USER

        passwords = mlflow_passwords(home)
        mlflow_env = {"MLFLOW_AUTH": "1", "MLFLOW_AUTH_ADMIN_PASSWORD": passwords[MLFLOW_ADMIN]}
        # The tasks' client: register and stage versions, never promote.
        env_extra = {"MLFLOW_TRACKING_USERNAME": SERVICE_USER,
                     "MLFLOW_TRACKING_PASSWORD": passwords[SERVICE_USER]} | env_extra
    try:
        mlflow = start_mlflow(home, mlflow_port, wait=False,
                              backend_store_uri=dist.mlflow_db_url, env_extra=mlflow_env)
        started.append(mlflow)
        if dist.mlflow_auth:
            mlflow.info["password_file"] = str(mlflow_password_file(home))
        env = distributed_env(home, dags_folder, airflow_port, mlflow.url, dist, slots,
                              env_extra)
        # Workers first: they need the broker and the result backend's own tables, not
        # Airflow's, so their start overlaps the metadata DB's migration.
        for i, worker in enumerate(layout, 1):
            started.append(start_worker(home, env, f"trials-{i}", TRIAL_QUEUE, worker["slots"],
                                        worker["cpus"], dist.worker_prefix))
        started.append(start_worker(home, env, DEFAULT_QUEUE, DEFAULT_QUEUE,
                                    dist.default_concurrency, prefix=dist.worker_prefix))
        airflow = _run_airflow(home, env, airflow_port, pool=False, wait=False,
                               timeout=timeout)
        airflow.info |= {"executor": "CeleryExecutor", "trial_pool": slots,
                         "metadata_db": _safe(dist.airflow_db_url),
                         "broker": _safe(dist.broker_url),
                         "broker_cleanup": {"url": dist.broker_url, "prefix": dist.key_prefix}}
        mlflow.info |= {"store": _safe(dist.mlflow_db_url)}
        started.insert(1, airflow)
        if wait:
            wait_distributed(started, timeout)
    except BaseException:
        stop(started)
        raise
    return started


def wait_distributed(services: list[Service], timeout: float = 180.0) -> None:
    """Wait for each server's health check and each worker's readiness; size the trial pool
    (``info['trial_pool']``) once the api-server answers."""
    from fresh_solver.lifecycle.pool import TRIAL_POOL

    for service in services:
        if service.name == "airflow":
            wait_airflow(service, timeout)
            api = AirflowAPI(service.url, service.info["user"],
                             json.loads(Path(service.info["password_file"]).read_text())[
                                 service.info["user"]])
            api.set_pool(TRIAL_POOL, service.info["trial_pool"],
                         "fresh-solver trials: the trial workers' slots together")
        elif service.name == "mlflow":
            wait_ready(service, "/health", timeout)
            if "password_file" in service.info:  # access control: the tasks' account first
                set_up_mlflow_accounts(service, Path(service.info["password_file"]).parent,
                                       timeout)
        else:
            wait_worker(service, timeout)


# --------------------------------------------------------------------------------------------
# Airflow REST API client


class AirflowAPI:
    """A minimal client of Airflow 3's REST API (stdlib only): enough to trigger a DAG run and
    follow it from tests and scripts without the airflow package or requests."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._token: str | None = None

    def token(self) -> str:
        """A JWT from the auth manager (POST /auth/token), cached until a request gets 401."""
        if self._token is None:
            body = self._call("POST", "/auth/token",
                              {"username": self.username, "password": self.password},
                              auth=False)
            self._token = body["access_token"]
        return self._token

    def _call(self, method: str, path: str, body: dict | None = None, auth: bool = True,
              retry: bool = True):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            if e.code == 401 and auth and retry:
                self._token = None
                return self._call(method, path, body, auth, retry=False)
            detail = e.read().decode(errors="replace")[:2000]
            raise AirflowAPIError(e.code, f"{method} {path}: HTTP {e.code}: {detail}") from None
        return json.loads(raw) if raw else None

    @staticmethod
    def _q(value: str) -> str:
        return urllib.parse.quote(value, safe="")

    def health(self) -> dict:
        """The api-server's view of the metadata DB, scheduler, triggerer and dag-processor."""
        return self._call("GET", "/api/v2/monitor/health", auth=False)

    def dag(self, dag_id: str) -> dict:
        """The DAG's record (paused or not, last parsed, ...); 404 until it is parsed."""
        return self._call("GET", f"/api/v2/dags/{self._q(dag_id)}")

    def wait_for_dag(self, dag_id: str, timeout: float = 60.0) -> dict:
        """Wait until the dag-processor has parsed and stored ``dag_id`` (404 before), since
        a DAG cannot be triggered or unpaused earlier."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.dag(dag_id)
            except AirflowAPIError as e:
                if e.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def set_pool(self, name: str, slots: int, description: str = "") -> dict:
        """Create pool ``name`` with ``slots`` slots, or resize it if it exists."""
        # Airflow 3.3 requires include_deferred in the PATCH body too (422 without it).
        body = {"name": name, "slots": slots, "description": description,
                "include_deferred": False}
        try:
            return self._call("PATCH", f"/api/v2/pools/{self._q(name)}", body)
        except AirflowAPIError as e:
            if e.status != 404:
                raise
        return self._call("POST", "/api/v2/pools", body)

    def unpause(self, dag_id: str) -> dict:
        """Unpause a DAG (new DAGs are paused by default, and runs of a paused DAG wait)."""
        return self._call("PATCH", f"/api/v2/dags/{self._q(dag_id)}?update_mask=is_paused",
                          {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """Start a manual run now (``logical_date`` null, as Airflow 3 allows) and return its
        run id."""
        run = self._call("POST", f"/api/v2/dags/{self._q(dag_id)}/dagRuns",
                         {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def dag_runs(self, dag_id: str, run_type: str | None = None) -> list[dict]:
        """The DAG's runs (the first 100), of one ``run_type`` (``scheduled``, ``manual``...)
        when given."""
        query = f"?limit=100&run_type={self._q(run_type)}" if run_type else "?limit=100"
        return self._call("GET", f"/api/v2/dags/{self._q(dag_id)}/dagRuns{query}")["dag_runs"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        """One run's record, whose ``state`` :meth:`wait` polls."""
        return self._call("GET", f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}")

    def wait(self, dag_id: str, run_id: str, timeout: float = 300.0, poll: float = 1.0) -> str:
        """Poll a run until it is finished; its final state (``success`` or ``failed``).
        TimeoutError when still queued or running after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.dag_run(dag_id, run_id)["state"]
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} still {state} after {timeout:.0f} s")
            time.sleep(poll)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value",
             map_index: int = -1):
        """A task's XCom value (its return value by default), deserialised."""
        path = (f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/"
                f"{self._q(task_id)}/xcomEntries/{self._q(key)}?map_index={map_index}"
                "&deserialize=true&stringify=false")
        return self._call("GET", path)["value"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """All task instances of a run, mapped ones one row per ``map_index`` (pages joined)."""
        rows: list[dict] = []
        base = f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances"
        while True:
            page = self._call("GET", f"{base}?limit=100&offset={len(rows)}")
            rows += page["task_instances"]
            if not page["task_instances"] or len(rows) >= page["total_entries"]:
                return rows


class AirflowAPIError(RuntimeError):
    """An HTTP error from the Airflow API, with its status and response body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------------------------
# command line: up / down / status


def read_state(home: Path) -> list[Service]:
    """The services ``up`` recorded in ``home``/stack.json (none when there is no file)."""
    path = Path(home) / STATE_FILE
    if not path.exists():
        return []
    return [Service.from_json(s) for s in json.loads(path.read_text())["services"]]


def write_state(home: Path, services: list[Service]) -> Path:
    """Record running services so ``down``/``status`` in another process find them."""
    path = Path(home) / STATE_FILE
    # Owner-only: a distributed stack's record holds the broker URL (its password, if any).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({"services": [s.to_json() for s in services]}, indent=2) + "\n")
    return path


def drop_unacknowledged(broker_url: str, key_prefix: str) -> int:
    """Delete a stopped stack's unacknowledged task messages from Redis (what a killed worker
    held; redelivered after the 24 h visibility timeout otherwise, to be refused as stale) and
    return how many there were. Only for Redis; only under the stack's key prefix."""
    if urllib.parse.urlsplit(broker_url).scheme not in ("redis", "rediss"):
        return 0
    import redis

    client = redis.Redis.from_url(broker_url, socket_connect_timeout=3, socket_timeout=3)
    held = client.hlen(f"{key_prefix}unacked")
    client.delete(*(f"{key_prefix}{key}" for key in ("unacked", "unacked_index",
                                                      "unacked_mutex")))
    return held


def _home(value: str | None) -> Path:
    from fresh_solver import tracking

    return Path(value).resolve() if value else tracking.home()


def cmd_up(args) -> int:
    """Start MLflow and Airflow in the background and record them; 2 when the stack already
    runs or a port is taken (nothing is started then), 1 when a server fails to start."""
    home = _home(args.home)
    running = [s for s in read_state(home) if alive(s)]
    if running:
        names = ", ".join(f"{s.name} ({s.url or s.info.get('celery_hostname')})"
                          for s in running)
        print(f"error: the stack in {home} already runs: {names}; "
              f"stop it first with `python -m fresh_solver.devstack down`", file=sys.stderr)
        return 2
    busy = [f"{name} port {port}" for name, port in
            (("MLflow", args.mlflow_port), ("Airflow", args.airflow_port)) if port_in_use(port)]
    if args.mlflow_port == args.airflow_port:
        busy.append(f"both servers asked for port {args.mlflow_port}")
    if busy:
        print(f"error: {HOST}: {'; '.join(busy)} already in use; choose another with "
              f"--mlflow-port/--airflow-port", file=sys.stderr)
        return 2
    dags = Path(args.dags).resolve()
    if not dags.is_dir():
        print(f"warning: DAG folder {dags} does not exist; Airflow will list no DAGs",
              file=sys.stderr)
    if args.distributed:
        return _up_distributed(args, home, dags)
    home.mkdir(parents=True, exist_ok=True)
    started: list[Service] = []
    started_at = time.monotonic()
    try:
        mlflow = start_mlflow(home, args.mlflow_port, wait=False)
        started.append(mlflow)
        write_state(home, started)
        airflow = start_airflow(home, dags, args.airflow_port, wait=False)
        started.append(airflow)
        write_state(home, started)
        wait_airflow(airflow, args.timeout)
        wait_ready(mlflow, "/health", args.timeout)
    except (StackError, OSError, subprocess.SubprocessError) as e:
        _abandon(started, home)
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BaseException:
        _abandon(started, home)
        raise
    print(f"stack up in {time.monotonic() - started_at:.0f} s (state: {home / STATE_FILE}, "
          f"logs: {home / 'logs'})")
    print(f"  MLflow   {mlflow.url}   store sqlite:///{home / 'mlflow.db'}")
    print(_registry_line(mlflow.url))
    print(f"  Airflow  {airflow.url}   user {AIRFLOW_USER}, password {airflow_password(home)} "
          f"(in {password_file(home)})")
    print("  stop with: make down (python -m fresh_solver.devstack down)")
    return 0


def _registry_line(mlflow_url: str) -> str:
    """Where a reviewer finds the registry in MLflow 3's UI (its GenAI mode hides Models)."""
    from fresh_solver.tracking import ui_link

    return (f"           the registry: {ui_link(mlflow_url)} (in the sidebar once it is "
            "switched to 'Model training')")


def _abandon(started: list[Service], home: Path) -> None:
    """A start that failed half-way: stop what did start and forget the stack."""
    stop(started)
    (home / STATE_FILE).unlink(missing_ok=True)


def _up_distributed(args, home: Path, dags: Path) -> int:
    # `up --distributed`: 2 when PostgreSQL or the broker is missing or a URL is unusable.
    hint = ("start it, or name another with --airflow-db-url/--mlflow-db-url/--broker-url "
            "(FRESH_SOLVER_AIRFLOW_DB_URL, FRESH_SOLVER_MLFLOW_DB_URL, "
            "FRESH_SOLVER_CELERY_BROKER_URL)")
    started: list[Service] = []
    started_at = time.monotonic()
    try:
        dist = Distributed.resolve(args.airflow_db_url, args.mlflow_db_url, args.broker_url,
                                   args.workers, name=args.name, mlflow_auth=args.mlflow_auth,
                                   worker_cpus=args.worker_cpus)
        home.mkdir(parents=True, exist_ok=True)
        started = start_distributed(home, dags, args.airflow_port, args.mlflow_port, dist,
                                    wait=False, timeout=args.timeout)
        write_state(home, started)
        wait_distributed(started, args.timeout)
    except ServiceUnavailable as e:
        print(f"error: {e}; {hint}", file=sys.stderr)
        return 2
    except StackConflict as e:
        print(f"error: another stack runs on what stack {args.name!r} would use: {e}. Stop "
              "it (make down with its FRESH_SOLVER_HOME), or give this one a name of its own: "
              "make up-distributed STACK=<name> (--name); nothing was started", file=sys.stderr)
        return 2
    except BadSetting as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (StackError, OSError, subprocess.SubprocessError) as e:
        _abandon(started, home)
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BaseException:
        _abandon(started, home)
        raise
    by_name = {s.name: s for s in started}
    mlflow, airflow = by_name["mlflow"], by_name["airflow"]
    print(f"distributed stack {args.name!r} up in {time.monotonic() - started_at:.0f} s (state: "
          f"{home / STATE_FILE}, logs: {home / 'logs'})")
    print(f"  MLflow   {mlflow.url}   store {mlflow.info['store']}, artifacts proxied into "
          f"{home / 'server-artifacts'}")
    print(_registry_line(mlflow.url))
    if dist.mlflow_auth:
        print(f"           access control: login {MLFLOW_ADMIN}, password "
              f"{mlflow_passwords(home)[MLFLOW_ADMIN]}; every account's in "
              f"{mlflow_password_file(home)}")
    print(f"  Airflow  {airflow.url}   user {AIRFLOW_USER}, password {airflow_password(home)} "
          f"(in {password_file(home)})")
    print(f"           CeleryExecutor, metadata DB {airflow.info['metadata_db']}, broker "
          f"{airflow.info['broker']}, pool fresh_solver_trials: {airflow.info['trial_pool']}")
    for s in started:
        if s.name.startswith("celery-"):
            print(f"  worker   {s.info['celery_hostname']}  queue {s.info['queue']}, "
                  f"concurrency {s.info['concurrency']}, CPUs {s.info['cpus']}")
    print("  stop with: make down (python -m fresh_solver.devstack down)")
    return 0


def cmd_down(args) -> int:
    """Stop what stack.json records, by session, and forget it."""
    home = _home(args.home)
    services = read_state(home)
    if not services:
        print(f"nothing recorded in {home / STATE_FILE}")
        return 0
    stop(services, timeout=args.timeout)
    left = [f"{s.name}: {', '.join(names)}" for s in services if (names := alive(s))]
    if left:
        print(f"error: still running after SIGKILL: {'; '.join(left)}", file=sys.stderr)
        return 1
    (home / STATE_FILE).unlink(missing_ok=True)
    print("stopped: " + ", ".join(s.name for s in services))
    for cleanup in (s.info["broker_cleanup"] for s in services if "broker_cleanup" in s.info):
        import redis  # only for a distributed stack's broker

        try:
            dropped = drop_unacknowledged(cleanup["url"], cleanup["prefix"])
        except redis.RedisError as exc:
            print(f"warning: the broker's unacknowledged messages were not dropped: {exc}",
                  file=sys.stderr)
            continue
        if dropped:
            print(f"dropped {dropped} unacknowledged task messages (a killed worker's) from "
                  "the broker")
    return 0


def cmd_status(args) -> int:
    """Print each recorded server's live processes and whether it answers HTTP."""
    home = _home(args.home)
    services = read_state(home)
    if not services:
        print(f"not running (no {home / STATE_FILE})")
        return 0
    for s in services:
        running = alive(s)
        down = [p["name"] for p in s.processes if p["name"] not in running]
        if not s.url:  # a Celery worker: no HTTP to ask
            print(f"{s.name:15} {s.info.get('celery_hostname')}  "
                  f"{'running' if running else 'stopped'}, queue {s.info.get('queue')}")
            continue
        answer = ""
        if running:
            path = "/api/v2/monitor/health" if s.name == "airflow" else "/health"
            try:
                answer = f", HTTP {_get(s.url + path)[0]}"
            except (urllib.error.URLError, OSError):
                answer = ", not answering"
        print(f"{s.name:15} {s.url}  running: {', '.join(running) or '-'}"
              f"{'  stopped: ' + ', '.join(down) if down else ''}{answer}")
        if s.name == "airflow" and running:
            print(f"{'':15} login {s.info.get('user')}, password in "
                  f"{s.info.get('password_file')}")
    return 0


def cpu_sets(text: str) -> list[list[int]]:
    """``'0 1-3,5'`` → ``[[0], [1, 2, 3, 5]]``: one CPU list per worker, as taskset writes
    them (argparse type: a clear message, exit 2, for anything else)."""
    try:
        sets = [sorted({cpu for part in word.split(",")
                        for cpu in _cpu_range(*map(int, part.split("-")))})
                for word in text.split()]
    except (TypeError, ValueError):
        sets = []
    if not sets:
        raise argparse.ArgumentTypeError(
            f"{text!r}: CPU sets separated by spaces, each a comma list of CPUs or ranges, "
            "e.g. '0 1-3'")
    return sets


def _cpu_range(first: int, last: int | None = None) -> range:
    last = first if last is None else last
    if first < 0 or last < first:
        raise ValueError(f"{first}-{last}")
    return range(first, last + 1)


def cmd_ensure_database(args) -> int:
    """Create the PostgreSQL database a store URL names unless it exists (for
    ``mlflow_config/start_server.sh``: MLflow retries a missing database forever)."""
    try:
        created = ensure_database(args.url)
    except (ServiceUnavailable, BadSetting) as e:
        print(f"error: {e}; create it yourself, or name one that exists", file=sys.stderr)
        return 2
    name = database_name(args.url)
    print(f"created database {name!r} on {_safe(args.url)}" if created
          else f"database {name!r} exists on {_safe(args.url)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``up``/``down``/``status`` of the local stack (``make up``/``make down``)."""
    parser = argparse.ArgumentParser(prog="python -m fresh_solver.devstack",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--home",
                        help="data folder (default $FRESH_SOLVER_HOME, else ./.fresh_solver)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start MLflow and Airflow in the background")
    up.add_argument("--mlflow-port", type=int, default=DEFAULT_MLFLOW_PORT)
    up.add_argument("--airflow-port", type=int, default=DEFAULT_AIRFLOW_PORT)
    up.add_argument("--dags", default="dags", help="Airflow's DAG folder (default ./dags)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each server")
    up.add_argument("--distributed", action="store_true",
                    help="PostgreSQL + CeleryExecutor (Redis) + Celery workers instead of "
                         "SQLite + LocalExecutor (docs/distributed.md)")
    up.add_argument("--workers", type=int, default=2,
                    help="--distributed: trial workers, each pinned to its share of the cores "
                         "(default 2)")
    up.add_argument("--airflow-db-url", help="--distributed: Airflow's metadata DB (default "
                    f"$FRESH_SOLVER_AIRFLOW_DB_URL, else {DEFAULT_PG_SERVER}/"
                    "fresh_solver_airflow); created if missing")
    up.add_argument("--mlflow-db-url", help="--distributed: MLflow's store (default "
                    f"$FRESH_SOLVER_MLFLOW_DB_URL, else {DEFAULT_PG_SERVER}/"
                    "fresh_solver_mlflow); created if missing")
    up.add_argument("--broker-url", help="--distributed: Celery broker (default "
                    f"$FRESH_SOLVER_CELERY_BROKER_URL, else {DEFAULT_BROKER_URL})")
    up.add_argument("--name", default=DEFAULT_STACK_NAME,
                    help="--distributed: the stack's name, which makes its own databases "
                         "(NAME_airflow, NAME_mlflow), Redis key prefix and worker names "
                         f"(default {DEFAULT_STACK_NAME})")
    up.add_argument("--worker-cpus", type=cpu_sets, metavar="SETS",
                    help="--distributed: each trial worker's CPUs, e.g. '0 1-3' (one set per "
                         "worker; default: the machine's CPUs split among them)")
    up.add_argument("--mlflow-auth", action="store_true",
                    help="--distributed: MLflow with access control (fresh-solver-auth app); "
                         "tasks log in as the service account, the admin promotes")
    down = sub.add_parser("down", help="stop what `up` started")
    down.add_argument("--timeout", type=float, default=20.0, help="seconds before SIGKILL")
    sub.add_parser("status", help="show what runs")
    ensure = sub.add_parser("ensure-database",
                            help="create a PostgreSQL store's database unless it exists")
    ensure.add_argument("url", help="the store's URL, e.g. postgresql://user@host:5432/mlflow")
    args = parser.parse_args(argv)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status,
            "ensure-database": cmd_ensure_database}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
