"""The hands-on stack (fresh_solver.devstack): a real Airflow started as `make up` starts it runs a
mapped TaskFlow DAG triggered over its REST API; the `up`/`down` commands refuse what they must.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from fresh_solver import devstack
from fresh_solver.devstack import airflow_server, processes

ROOT = Path(__file__).resolve().parents[1]

DAG_ID = "fresh_solver_retune"
# A tiny retune: small generated instances and short solves (the wiring is under test).
# One round of two trials (FRESH_SOLVER_RETUNE_ROUNDS=1 unrolls one): every kind of task runs.
TINY = {"template_id": "live", "generator_scale": "small", "generator_seed": 3,
        "train_instances": 2, "held_out_instances": 2, "trials": 2, "batch_size": 2,
        "trial_time_limit": 0.2, "race": 0, "validation_seeds": 3,
        "validation_time_limit": 0.3}


def devstack_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fresh_solver.devstack", "--home", str(home),
                           *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_up_refuses_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = devstack_cli(tmp_path, "up", "--airflow-port", str(port),
                            "--mlflow-port", str(devstack.free_port()))
    assert done.returncode == 2, done.stderr
    assert f"Airflow port {port} already in use" in done.stderr
    assert not (tmp_path / "stack.json").exists()
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_up_refuses_a_running_stack_and_down_stops_it(tmp_path):
    # A stand-in server (its own session, as devstack starts them), recorded as `up` records.
    sleeper = subprocess.Popen(["sleep", "120"], start_new_session=True)
    service = devstack.Service("airflow", "http://127.0.0.1:1", 1,
                               [{"name": "scheduler", "pid": sleeper.pid, "pgid": sleeper.pid,
                                 "log": str(tmp_path / "x.log")}])
    try:
        devstack.write_state(tmp_path, [service])
        done = devstack_cli(tmp_path, "up", "--airflow-port", str(devstack.free_port()),
                            "--mlflow-port", str(devstack.free_port()))
        assert done.returncode == 2, done.stderr
        assert "already runs" in done.stderr
        assert "scheduler" in devstack_cli(tmp_path, "status").stdout

        done = devstack_cli(tmp_path, "down")
        assert done.returncode == 0, done.stderr
        assert sleeper.wait(timeout=10) == -15
        assert not (tmp_path / "stack.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def _listening_addresses(service: devstack.Service) -> set[str]:
    import psutil

    addresses = set()
    for row in service.processes:
        for pid in processes._session_members(row["pid"]):
            try:
                connections = psutil.Process(pid).net_connections(kind="inet")
            except psutil.Error:
                continue
            addresses |= {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN}
    return addresses


def mlflow_records(home: Path) -> dict:
    """What the retune run left in the stack's MLflow store (read as the CLI would)."""
    from fresh_solver import tracking
    from fresh_solver.registry.registry import ParameterRegistry

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRESH_SOLVER_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        client = tracking.client()
        tuning = client.get_experiment_by_name(tracking.tuning_experiment("live"))
        sessions = client.search_runs(
            [tuning.experiment_id], filter_string="tags.fresh_solver.kind = 'tuning-session'")
        trials = client.search_runs(
            [tuning.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{sessions[0].info.run_id}'")
        validation = client.get_experiment_by_name(tracking.validation_experiment("live"))
        validations = [] if validation is None else client.search_runs(
            [validation.experiment_id])
        versions = ParameterRegistry(client).versions("live")
    return {"sessions": sessions, "trials": trials, "validations": validations,
            "versions": versions}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_airflow_runs_the_retune_dag_triggered_over_rest(tmp_path):
    """The project's own DAG folder on a real Airflow (scheduler, dag-processor, triggerer,
    api-server; SQLite, LocalExecutor). Unpaused on a schedule whose last time was two hours
    ago, Airflow starts that missed run at once: it retunes nothing. Triggered with a tiny
    budget, the DAG finishes and leaves one tuning session with its trials, and a version
    exactly when validation passed."""
    from datetime import UTC, datetime, timedelta

    home = tmp_path / "home"
    started = time.monotonic()
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    service = devstack.start_airflow(home, ROOT / "dags", devstack.free_port(), env_extra={
        "FRESH_SOLVER_RETUNE_SCHEDULE": f"{two_hours_ago:%M %H} * * *",
        "FRESH_SOLVER_RETRY_DELAY_S": "1", "FRESH_SOLVER_RETUNE_ROUNDS": "1"})
    try:
        up = time.monotonic() - started
        # up waited for the tasks' execution API too (its first request builds it: ~2 s that
        # the stack's first task would otherwise wait for)
        assert processes.http_get(service.url + "/execution/health")[0] == 200
        assert service.info["password_file"] == str(devstack.password_file(home))
        api = devstack.AirflowAPI(service.url, service.info["user"],
                                  devstack.airflow_password(home))
        api.wait_for_dag(DAG_ID, timeout=120)
        api.unpause(DAG_ID)
        deadline = time.monotonic() + 90
        while not (missed := api.dag_runs(DAG_ID, "scheduled")) and time.monotonic() < deadline:
            time.sleep(1)
        assert len(missed) == 1, "unpausing made no scheduled run for the missed time"
        assert api.wait(DAG_ID, missed[0]["dag_run_id"], timeout=120) == "success"
        ran = {ti["task_id"]: (ti["state"], ti["try_number"])
               for ti in api.task_instances(DAG_ID, missed[0]["dag_run_id"])}
        assert ran.pop("route") == ("success", 1)
        assert set(ran.values()) == {("skipped", 0)}, ran  # nothing else even started
        run_id = api.trigger(DAG_ID, TINY)
        state = api.wait(DAG_ID, run_id, timeout=420, poll=1.0)
        logs = "\n".join(f"--- {r['log']}\n{processes.log_tail(r['log'], 20)}"
                         for r in service.processes)
        assert state == "success", logs

        instances = api.task_instances(DAG_ID, run_id)
        trials = sorted((ti["map_index"], ti["state"]) for ti in instances
                        if ti["task_id"] == "trial_0")
        assert trials == [(0, "success")]  # TINY's two short trials share a task
        assert {ti["pool"] for ti in instances if ti["task_id"].startswith("trial_")} == \
            {"fresh_solver_trials"}
        outcome = api.xcom(DAG_ID, run_id, "notify")
        assert _listening_addresses(service) == {"127.0.0.1"}
        preloaded = [r["name"] for r in service.processes
                     if "imported the tasks' modules" in Path(r["log"]).read_text()]
        assert preloaded == ["scheduler"]  # the LocalExecutor forks every task from it
        durations = {ti["task_id"]: ti.get("duration") for ti in instances}
        print(f"stack up in {up:.1f} s; retune run in {time.monotonic() - started - up:.1f} s; "
              f"task durations {durations}")
    finally:
        stopping = time.monotonic()
        # Short grace: Airflow's triggerer may wait 10 s for its helper before exiting.
        devstack.stop(service, timeout=5)
        print(f"stopped in {time.monotonic() - stopping:.1f} s")
    assert devstack.alive(service) == []

    records = mlflow_records(home)
    [session] = records["sessions"]
    assert session.info.status == "FINISHED"
    assert session.data.tags["fresh_solver.session_key"] == run_id
    assert sorted(int(r.data.tags["fresh_solver.trial"]) for r in records["trials"]) == \
        [0, 1, 2]  # the reference and the two trials
    if outcome["passed"]:
        [version] = records["versions"]
        # the lifecycle names versions as MLflow's REST API does (strings); the store's
        # ModelVersion may hold an int
        assert version.current_stage == "Staging" and outcome["version"] == str(version.version)
        assert version.tags["tuning_run_id"] == session.info.run_id
    else:
        assert records["versions"] == [] and outcome["version"] is None
        assert "Nothing registered" in outcome["message"]


def test_airflow_is_ready_when_its_execution_api_answers_too(monkeypatch):
    asked = []
    monkeypatch.setattr(airflow_server, "wait_ready", lambda service, path, timeout: asked.append(
        (service, path, timeout)))
    devstack.wait_airflow("airflow", 30.0)
    assert asked == [("airflow", "/api/v2/monitor/health", 30.0),
                     ("airflow", "/execution/health", 30.0)]


def test_the_workers_hostname_callable_names_the_importable_module():
    """Airflow imports the callable by name in every worker. ``python -m fresh_solver.devstack``
    (``make up-distributed``) runs the package's ``__main__``, never the module that defines
    it, so the name is always the importable one."""
    import importlib

    module, _, attribute = devstack.HOSTNAME_CALLABLE.rpartition(".")
    assert module == "fresh_solver.devstack.distributed"
    assert getattr(importlib.import_module(module), attribute) is devstack.worker_hostname


def test_a_stack_name_makes_its_own_databases_keys_and_workers():
    dist = devstack.Distributed.resolve(environ={}, name="stack_b")
    assert dist.airflow_db_url.endswith("/stack_b_airflow")
    assert dist.mlflow_db_url.endswith("/stack_b_mlflow")
    assert (dist.key_prefix, dist.worker_prefix) == ("stack_b:", "stack-b")
    default = devstack.Distributed.resolve(environ={})
    assert default.airflow_db_url.endswith("/fresh_solver_airflow")
    assert default.key_prefix == "fresh_solver:"
    for bad in ("Stack", "1stack", "a-b", "", "x" * 41):
        with pytest.raises(devstack.BadSetting, match="stack name"):
            devstack.Distributed.resolve(environ={}, name=bad)
    with pytest.raises(devstack.BadSetting, match="one set per worker"):
        devstack.Distributed.resolve(environ={}, workers=2, worker_cpus=[[0]])


@pytest.mark.parametrize("text, sets", [("0 0,1", [[0], [0, 1]]), ("1-3,0", [[0, 1, 2, 3]]),
                                        ("2 2", [[2], [2]])])
def test_worker_cpu_sets_parse_as_taskset_writes_them(text, sets):
    assert devstack.cpu_sets(text) == sets


@pytest.mark.parametrize("text", ["", "a", "3-1", "-1", "0,,1 x"])
def test_bad_worker_cpu_sets_are_refused_with_an_example(tmp_path, text):
    done = subprocess.run([sys.executable, "-m", "fresh_solver.devstack", "--home",
                           str(tmp_path), "up", "--distributed", "--worker-cpus", text],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--worker-cpus" in done.stderr and "e.g. '0 1-3'" in done.stderr
    assert "Traceback" not in done.stderr and not any(tmp_path.iterdir())


def test_ensure_database_creates_once_and_says_so(tmp_path):
    """What mlflow_config/start_server.sh runs before MLflow, which would retry a missing
    PostgreSQL database forever."""
    problems = devstack.check_postgres(devstack.DEFAULT_PG_SERVER + "/postgres")
    if problems:
        pytest.skip(f"needs PostgreSQL on 127.0.0.1:5432: {problems}")
    url = f"{devstack.DEFAULT_PG_SERVER}/fs_ensure_{uuid.uuid4().hex[:8]}"
    try:
        first = devstack_cli(tmp_path, "ensure-database", url)
        again = devstack_cli(tmp_path, "ensure-database", url)
    finally:
        devstack.drop_database(url)
    assert first.returncode == 0 and first.stdout.startswith("created database 'fs_ensure_")
    assert again.returncode == 0 and " exists on " in again.stdout
    closed = devstack.free_port()
    refused = devstack_cli(tmp_path, "ensure-database",
                           f"postgresql://postgres@127.0.0.1:{closed}/x")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("error: cannot create database 'x'")
    assert "create it yourself" in refused.stderr
