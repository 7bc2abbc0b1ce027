"""``python -m fresh_solver.devstack up|down|status|ensure-database``: what ``make up``,
``make up-distributed`` and ``make down`` run; the stack is recorded in
``$FRESH_SOLVER_HOME/stack.json`` so another process can stop it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from fresh_solver.devstack.airflow_server import (
    AIRFLOW_USER,
    DEFAULT_AIRFLOW_PORT,
    airflow_password,
    password_file,
    start_airflow,
    wait_airflow,
)
from fresh_solver.devstack.distributed import (
    DEFAULT_BROKER_URL,
    DEFAULT_PG_SERVER,
    DEFAULT_STACK_NAME,
    MLFLOW_ADMIN,
    BadSetting,
    Distributed,
    ServiceUnavailable,
    StackConflict,
    database_name,
    ensure_database,
    masked_url,
    mlflow_password_file,
    mlflow_passwords,
    start_distributed,
    wait_distributed,
)
from fresh_solver.devstack.mlflow_server import DEFAULT_MLFLOW_PORT, start_mlflow
from fresh_solver.devstack.processes import (
    HOST,
    Service,
    StackError,
    alive,
    http_get,
    port_in_use,
    stop,
    wait_ready,
)

STATE_FILE = "stack.json"



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
                answer = f", HTTP {http_get(s.url + path)[0]}"
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
    print(f"created database {name!r} on {masked_url(args.url)}" if created
          else f"database {name!r} exists on {masked_url(args.url)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``up``/``down``/``status`` of the local stack (``make up``/``make down``)."""
    parser = argparse.ArgumentParser(prog="python -m fresh_solver.devstack",
                                     description="The local hands-on stack: an MLflow "
                                     "server and a real Airflow, started and stopped as "
                                     "processes.")
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
