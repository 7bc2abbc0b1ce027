"""The distributed stack (``up --distributed``, ``make up-distributed``): PostgreSQL metadata
and MLflow stores, CeleryExecutor with Redis, one Celery worker per trial "machine" plus one
for the other tasks, the MLflow server with access control (docs/distributed.md)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fresh_solver.devstack.airflow_api import AirflowAPI
from fresh_solver.devstack.airflow_server import (
    airflow_env,
    run_airflow,
    wait_airflow,
    with_preload,
)
from fresh_solver.devstack.mlflow_server import start_mlflow
from fresh_solver.devstack.processes import (
    Service,
    StackError,
    log_tail,
    spawn,
    stop,
    venv_bin,
    wait_ready,
)

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
                    f"the distributed stack keeps its {what} on PostgreSQL; got {masked_url(url)} "
                    f"(a postgresql:// URL, e.g. {DEFAULT_PG_SERVER}/fresh_solver_airflow)")
        if workers < 1:
            raise BadSetting(f"--workers {workers}: at least one trial worker")
        cpus = options.get("worker_cpus")
        if cpus is not None and len(cpus) != workers:
            raise BadSetting(f"--worker-cpus names {len(cpus)} CPU sets for {workers} trial "
                             "workers: one set per worker")
        options = {"key_prefix": f"{name}:", "worker_prefix": name.replace("_", "-")} | options
        return cls(airflow_db, mlflow_db, broker, backend, workers, **options)


def masked_url(url: str) -> str:
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
        raise BadSetting(f"{masked_url(url)} names no database")
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
        return f"the Celery broker at {where or masked_url(url)} does not answer: {exc}"
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
            problems.append(f"database {database_name(url)!r} on {masked_url(url)} has "
                            f"{len(sessions)} open sessions ({', '.join(sessions[:4])}"
                            f"{', ...' if len(sessions) > 4 else ''})")
    if workers := workers_answering(dist.broker_url, dist.key_prefix):
        problems.append(f"Celery workers answer on {masked_url(dist.broker_url)} with key prefix "
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
        raise ServiceUnavailable(f"cannot create database {name!r} on {masked_url(url)}: "
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


# Airflow's [core] hostname_callable: the task instances' hostname is the worker's.
HOSTNAME_CALLABLE = f"{__name__}.worker_hostname"


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
                         f"ends:\n{log_tail(log)}")


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
    spawn(service, "worker", argv, with_preload(worker_env),
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
                             f"ends:\n{log_tail(row['log'])}")
        with contextlib.suppress(OSError):
            if f"{service.info['celery_hostname']} ready." in Path(row["log"]).read_text(
                    errors="replace"):
                return
        if time.monotonic() > deadline:
            raise StackError(f"{service.name} not ready within {timeout:.0f} s; {row['log']} "
                             f"ends:\n{log_tail(row['log'])}")
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
        airflow = run_airflow(home, env, airflow_port, pool=False, wait=False,
                               timeout=timeout)
        airflow.info |= {"executor": "CeleryExecutor", "trial_pool": slots,
                         "metadata_db": masked_url(dist.airflow_db_url),
                         "broker": masked_url(dist.broker_url),
                         "broker_cleanup": {"url": dist.broker_url, "prefix": dist.key_prefix}}
        mlflow.info |= {"store": masked_url(dist.mlflow_db_url)}
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
