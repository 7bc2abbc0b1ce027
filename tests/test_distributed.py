"""Distributed mode (issues 11, 29): the retune DAG on Airflow's CeleryExecutor, PostgreSQL as
metadata DB and Celery result backend, Redis as broker, two Celery trial workers, and the MLflow
server on PostgreSQL with proxied artifacts, started as the README says: `make up-distributed`.

One stack and one DAG run serve the module's tests, twice: with MLFLOW_AUTH=1 (the tasks run
as MLflow's service account) and without (a run costs minutes on 2 cores). The stack is
started with `make up-distributed`; with access control it is stopped with `make down` and
started again on the kept databases (the restart a user makes), under a name of its own
(STACK: its databases, Redis keys and worker names), with the two trial workers pinned to
unlike CPU sets (WORKER_CPUS: one CPU, two CPUs), so their fingerprints differ as two
machines' would. A second `make up-distributed` under the same name from another home is
refused while the first runs. The run's one round maps six trials, two at a time (the pool
holds the workers' two slots); once each worker has finished one, the worker running one of
the next two is SIGKILLed with its whole session: the run must still succeed, the trial
retried on the other worker, and every trial keep exactly one MLflow run. The last tests need
no services: the record's retry and fingerprint rules on the embedded store, and `up
--distributed` refusing a missing broker.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from fresh_solver import devstack

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "fresh_solver_retune"
PG = "postgresql://postgres@127.0.0.1:5432"
TOKEN = f"fsd_{os.getpid()}_{uuid.uuid4().hex[:6]}"
# One searched knob, a single CP-SAT worker: on these tiny instances clearly faster than the
# defaults' portfolio, so the run tunes something and (with a lenient pass rule) registers it:
# the registry path is under test here, not the tuner.
# One point, clearly faster than the defaults on these tiny instances (presolve costs more than
# the solve: ~2 ms vs ~4 ms median here), so the run reaches validation and Staging instead of
# keeping the defaults on noise; the test is about the wiring, not the tuner.
ONE_WORKER_SPACE = ('[cp_sat.num_workers]\nkind = "categorical"\nvalues = [1]\n'
                    '[cp_sat.cp_model_presolve]\nkind = "categorical"\nvalues = [false]\n')
# 10 training instances x 20 seeds: a trial solves for about 4 s, long enough to be seen
# running and killed (its task no longer pays seconds of imports: fresh_solver/preload.py).
CONF = {"template_id": "dist", "generator_scale": "small", "generator_seed": 3,
        "train_instances": 10, "held_out_instances": 2, "seeds": 20, "trials": 6,
        "batch_size": 6, "trial_time_limit": 0.3, "estimator": "random", "race": 0,
        "validation_seeds": 3, "validation_time_limit": 0.3, "min_speedup": 0.1,
        "max_p_value": 1.0, "min_speedup_vs_production": 0.1, "quality_tolerance": 1.0}
# The killed worker's task is failed and retried at the stack's own heartbeat timeout (45 s).
ENV = {"FRESH_SOLVER_RETUNE_SCHEDULE": "none", "FRESH_SOLVER_RETRY_DELAY_S": "1",
       "FRESH_SOLVER_RETUNE_ROUNDS": "1"}


def phase(timings: dict, name: str, started: float) -> float:
    timings[name] = round(time.monotonic() - started, 1)
    print(f"[test_distributed] {name}: {timings[name]} s", flush=True)
    return time.monotonic()


def make(target: str, home: Path, *variables: str, timeout: float = 420):
    """``make TARGET VARIABLE=value ...`` in the checkout, as a user runs it, with the stack's
    home and the test's retune settings in the environment."""
    env = os.environ | ENV | {"FRESH_SOLVER_HOME": str(home)}
    return subprocess.run(["make", "--no-print-directory", target, *variables], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def up_variables(name: str, auth: bool) -> list[str]:
    cpus = sorted(os.sched_getaffinity(0))
    worker_cpus = " ".join(",".join(map(str, c)) for c in (cpus[:1], cpus[:2]))
    return [f"STACK={name}", f"MLFLOW_PORT={devstack.free_port()}",
            f"AIRFLOW_PORT={devstack.free_port()}", "WORKERS=2",
            f"WORKER_CPUS={worker_cpus}"] + (["MLFLOW_AUTH=1"] if auth else [])


def _made(done, what: str) -> None:
    assert done.returncode == 0, f"{what} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module", params=["access control", "open"])
def stack(request, tmp_path_factory):
    """The distributed stack as a user starts it: `make up-distributed` (with MLFLOW_AUTH=1,
    and without); with access control also `make down` and `make up-distributed` again on the
    kept databases (the restart costs a minute on 2 cores: once is enough); at the end `make
    down`, and the test's databases and Redis keys deleted."""
    auth = request.param == "access control"
    name = f"{TOKEN}_{'a' if auth else 'o'}"
    dist = devstack.Distributed.resolve(environ={}, name=name, mlflow_auth=auth)
    problems = devstack.check_services(dist)
    if problems:
        pytest.skip("distributed mode needs PostgreSQL (127.0.0.1:5432) and Redis "
                    f"(127.0.0.1:6379): {'; '.join(problems)}")
    home = tmp_path_factory.mktemp("distributed") / "home"
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        _made(make("up-distributed", home, *up_variables(name, auth)), "make up-distributed")
        started = phase(timings, "make up-distributed", started)
        if auth:  # the restart once, on the stack with the most to keep (its users)
            _made(make("down", home), "make down")
            started = phase(timings, "make down", started)
            _made(make("up-distributed", home, *up_variables(name, auth)),
                  "make up-distributed again, on the kept databases")
            phase(timings, "make up-distributed again", started)
        services = devstack.read_state(home)
        yield {"services": services, "dist": dist, "home": home, "timings": timings,
               "name": name, "auth": auth}
    finally:
        stopping = time.monotonic()
        services = devstack.read_state(home)
        down = make("down", home)
        left = [s.name for s in services if devstack.alive(s)]
        devstack.stop(services, timeout=5)  # whatever `make down` could not
        import redis

        unacked = list(redis.Redis.from_url(dist.broker_url).scan_iter(
            match=f"{dist.key_prefix}unacked*"))  # the killed worker's message, if any
        for url in (dist.airflow_db_url, dist.mlflow_db_url):
            devstack.drop_database(url)
        _delete_keys(dist.broker_url, dist.key_prefix)
        phase(timings, "make down, databases dropped", stopping)
        print(f"[test_distributed] timings: {timings}")
        assert down.returncode == 0 and not left, \
            f"make down exited {down.returncode}, still running: {left}\n{down.stderr}"
        assert unacked == [], f"make down left {unacked} in the broker\n{down.stdout}"


def _delete_keys(broker_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(broker_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def _service(stack, name: str) -> devstack.Service:
    return next(s for s in stack["services"] if s.name == name)


@contextlib.contextmanager
def _as_admin(stack):
    """An MLflow client of the stack's server, logged in as its admin where there is
    access control."""
    from mlflow.tracking import MlflowClient

    with pytest.MonkeyPatch.context() as mp:
        if stack["auth"]:
            mp.setenv("MLFLOW_TRACKING_USERNAME", devstack.MLFLOW_ADMIN)
            mp.setenv("MLFLOW_TRACKING_PASSWORD",
                      devstack.mlflow_passwords(stack["home"])[devstack.MLFLOW_ADMIN])
        yield MlflowClient(tracking_uri=_service(stack, "mlflow").url)


def _worker_processes(hostname: str) -> list[int]:
    """Live processes started as (or by) the Celery worker ``hostname``, whatever session or
    group they moved to: devstack gives each worker its name in the environment."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("FRESH_SOLVER_WORKER_NAME") == hostname and \
                    process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module")
def retune(stack, tmp_path_factory):
    """One retune run triggered over REST; once both workers have finished a trial, the worker
    running one of the next is SIGKILLed (its whole session). Returns the run's task instances
    and what was killed."""
    airflow = _service(stack, "airflow")
    home, timings = stack["home"], stack["timings"]
    workers = {s.info["celery_hostname"]: s for s in stack["services"]
               if s.name.startswith("celery-trials-")}
    space = tmp_path_factory.mktemp("space") / "one_worker.toml"
    space.write_text(ONE_WORKER_SPACE)
    api = devstack.AirflowAPI(airflow.url, airflow.info["user"], devstack.airflow_password(home))
    started = time.monotonic()
    api.wait_for_dag(DAG_ID, timeout=180)
    api.unpause(DAG_ID)
    run_id = api.trigger(DAG_ID, CONF | {"space": str(space)})
    killed, state, deadline = None, None, time.monotonic() + 540
    while time.monotonic() < deadline:
        state = api.dag_run(DAG_ID, run_id)["state"]
        if state in ("success", "failed"):
            break
        if killed is None:
            trials = [ti for ti in api.task_instances(DAG_ID, run_id)
                      if ti["task_id"] == "trial_0"]
            finished_on = {ti["hostname"] for ti in trials if ti["state"] == "success"}
            running = [ti for ti in trials
                       if ti["state"] == "running" and ti["hostname"] in workers]
            if finished_on == set(workers) and running:
                ti = running[0]
                victim = workers[ti["hostname"]]
                devstack.send_signal(victim, signal.SIGKILL)
                gone = time.monotonic() + 30  # not this process's child: `make` started it
                while devstack.alive(victim) and time.monotonic() < gone:
                    time.sleep(0.2)
                killed = {"hostname": ti["hostname"], "map_index": ti["map_index"],
                          "try_number": ti["try_number"], "service": victim,
                          "after_s": round(time.monotonic() - started, 1)}
                print(f"[test_distributed] killed {killed}", flush=True)
        time.sleep(0.5)
    phase(timings, "retune run (with a worker killed)", started)
    logs = "\n".join(f"--- {r['log']}\n{devstack.processes.log_tail(r['log'], 15)}"
                     for s in stack["services"] for r in s.processes)
    assert state == "success", f"run {run_id} ended {state}\n{logs}"
    assert killed, "no trial was seen running after each worker had finished one: " \
        "nothing was killed"
    return {"run_id": run_id, "killed": killed, "workers": workers,
            "instances": api.task_instances(DAG_ID, run_id), "outcome":
            api.xcom(DAG_ID, run_id, "notify")}


@pytest.fixture(scope="module")
def records(stack, retune):
    """What the run left on the MLflow server, read over HTTP as its admin (anonymous
    clients get 401)."""
    import urllib.error
    import urllib.request

    from mlflow.entities import ViewType

    url = _service(stack, "mlflow").url
    anonymous = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    if stack["auth"]:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(anonymous)
        assert refused.value.code == 401
    else:
        assert urllib.request.urlopen(anonymous).status == 200
    with _as_admin(stack) as client:
        experiment = client.get_experiment_by_name("fresh-solver/tuning/dist")
        [session] = client.search_runs([experiment.experiment_id],
                                       "tags.fresh_solver.kind = 'tuning-session'")
        trials = client.search_runs(
            [experiment.experiment_id], f"tags.mlflow.parentRunId = '{session.info.run_id}'",
            run_view_type=ViewType.ALL)
        versions = client.search_model_versions("name = 'fresh-solver-dist'")
    return {"session": session, "trials": trials, "versions": versions}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_trials_spread_over_both_workers_with_one_run_each(stack, retune, records):
    instances = retune["instances"]
    trial_tis = [ti for ti in instances if ti["task_id"].startswith("trial_")]
    assert {ti["hostname"] for ti in trial_tis} == set(retune["workers"])
    preloaded = {(s.name, r["name"]) for s in stack["services"] for r in s.processes
                 if "imported the tasks' modules" in Path(r["log"]).read_text()}
    assert preloaded == {(s.name, "worker") for s in stack["services"]
                         if s.name.startswith("celery-")}  # they fork the tasks
    measuring = {"start", "race", "validate"} | {ti["task_id"] for ti in trial_tis}
    for ti in instances:
        if ti["state"] == "success":
            queue = "fresh_solver_trials" if ti["task_id"] in measuring else "default"
            assert ti["queue"] == queue, ti
            assert (ti["hostname"] in retune["workers"]) == (queue == "fresh_solver_trials"), ti
    assert {ti["pool"] for ti in trial_tis} == {"fresh_solver_trials"}

    session, trials = records["session"], records["trials"]
    assert session.info.status == "FINISHED"
    assert session.data.tags["fresh_solver.session_key"] == retune["run_id"]
    per_index = collections.Counter(int(r.data.tags["fresh_solver.trial"]) for r in trials)
    # the reference + 6 trials (two waves over 3 slots: a trial is still running on one
    # worker after each has finished one, when the test kills that worker)
    assert per_index == {i: 1 for i in range(7)}, per_index
    assert {r.info.status for r in trials} == {"FINISHED"}
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in trials + [session])

    # The registry on the PostgreSQL-backed server: a Staging version, its artifact proxied.
    assert retune["outcome"]["passed"], retune["outcome"]["message"]
    [version] = records["versions"]
    assert version.current_stage == "Staging"
    assert version.tags["tuning_run_id"] == session.info.run_id
    assert version.source.startswith("mlflow-artifacts:")
    import psycopg

    with psycopg.connect(f"{PG}/{stack['name']}_mlflow") as conn:
        stored = conn.execute("SELECT count(*) FROM model_versions WHERE name = %s",
                              ("fresh-solver-dist",)).fetchone()[0]
    assert stored == 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_killed_worker_s_trial_is_retried_on_the_other(stack, retune, records):
    killed = retune["killed"]
    victim = killed["service"]
    assert devstack.alive(victim) == []
    assert _worker_processes(killed["hostname"]) == []  # the task it ran died with it
    [ti] = [ti for ti in retune["instances"]
            if ti["task_id"] == "trial_0" and ti["map_index"] == killed["map_index"]]
    assert ti["state"] == "success"
    assert ti["try_number"] > killed["try_number"]
    [survivor] = set(retune["workers"]) - {killed["hostname"]}
    assert ti["hostname"] == survivor
    index = 1 + killed["map_index"]  # the reference is trial 0
    runs = [r for r in records["trials"] if r.data.tags["fresh_solver.trial"] == str(index)]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_unlike_workers_flag_the_session_and_the_version(stack, retune, records):
    fingerprints = {r.data.tags["fresh_solver.fingerprint"] for r in records["trials"]}
    cores = {len(w.info["cpus"]) for w in retune["workers"].values()}
    if len(cores) < 2:
        pytest.skip("one CPU: the two workers cannot be pinned to unlike CPU sets")
    # Each worker finished a trial: a 1-CPU and a 2-CPU machine.
    assert len(fingerprints) == 2
    listed = ",".join(sorted(fingerprints))
    assert records["session"].data.tags["fresh_solver.mixed_fingerprints"] == listed
    [version] = records["versions"]
    assert version.tags["mixed_fingerprints"] == listed
    logs = Path(_service(stack, "airflow").info["airflow_home"]) / "logs"
    register_log = "\n".join(p.read_text() for p in logs.rglob("*.log")
                             if "task_id=register" in str(p))
    assert "measured on several machines" in register_log


# ---- no services: the record's rules on the embedded store ----------------------------------


def _trial(index: int, seconds: float):
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.tuning.scoring import Evaluation, RunScore
    from fresh_solver.tuning.session import Trial

    run = RunScore("i0.json", 0, seconds, "OPTIMAL", 10, seconds)
    return Trial(index, [1], SolverConfig.from_dict({"cp_sat": {"num_workers": 1}}),
                 Evaluation(seconds, [run]))


@pytest.fixture
def record(tmp_path):
    from fresh_solver import tracking
    from fresh_solver.params.space import load_space
    from fresh_solver.tuning.record import SessionRecord

    space_file = tmp_path / "space.toml"
    space_file.write_text(ONE_WORKER_SPACE)
    client = tracking.client()
    experiment = tracking.experiment_id(client, f"fresh-solver/tuning/unit-{uuid.uuid4().hex[:6]}")
    parent = client.create_run(experiment).info.run_id
    return SessionRecord(client, experiment, parent), load_space(str(space_file))


def test_a_retry_completes_the_run_a_killed_attempt_left(record):
    """A worker killed while logging leaves its trial run RUNNING; the retry (another worker)
    writes into that run instead of adding a second one for the same point."""
    from fresh_solver.fingerprint import fingerprint_id

    record, space = record
    client = record.client
    left = client.create_run(record.experiment_id, tags={  # that attempt's solves failed
        "mlflow.parentRunId": record.run_id, "fresh_solver.trial": "1",
        "fresh_solver.error": "MemoryError"}).info.run_id
    client.log_param(left, "cp_sat.num_workers", "1")  # the killed attempt got this far

    assert record.log_trial(_trial(1, 0.5), space) == left
    assert record.log_trial(_trial(1, 0.7), space) == left  # finished: returned as it is
    runs = client.search_runs([record.experiment_id],
                              f"tags.mlflow.parentRunId = '{record.run_id}'")
    assert [r.info.run_id for r in runs] == [left]
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["score"] == 0.5
    assert runs[0].data.tags["fresh_solver.fingerprint"] == fingerprint_id()
    assert "fresh_solver.error" not in runs[0].data.tags  # this attempt's solves did not fail
    assert record.fingerprints() == {fingerprint_id(): [1]}
    assert [t.index for t in record.load_trials()] == [1]


def test_trials_from_two_machines_flag_the_session(record, caplog):
    from fresh_solver.fingerprint import fingerprint_id
    from fresh_solver.lifecycle.retune import flag_mixed_fingerprints

    record, space = record
    record.log_trial(_trial(0, 0.5), space)
    plan = {"template_id": "unit"}
    assert flag_mixed_fingerprints(plan, record, "round 0") == [fingerprint_id()]
    assert "fresh_solver.mixed_fingerprints" not in record.client.get_run(record.run_id).data.tags

    other = record.client.create_run(record.experiment_id, tags={
        "mlflow.parentRunId": record.run_id, "fresh_solver.trial": "1",
        "fresh_solver.fingerprint": "0123456789ab"}).info.run_id
    record.client.set_terminated(other)
    with caplog.at_level("WARNING", logger="fresh_solver.lifecycle"):
        ids = flag_mixed_fingerprints(plan, record, "race")
    assert ids == sorted([fingerprint_id(), "0123456789ab"])
    tags = record.client.get_run(record.run_id).data.tags
    assert tags["fresh_solver.mixed_fingerprints"] == ",".join(ids)
    assert "measured on 2 machines" in caplog.text and "trials 1" in caplog.text


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_second_stack_on_the_same_databases_and_queues_is_refused(stack, tmp_path):
    other = tmp_path / "other-home"
    name = stack["name"]
    done = make("up-distributed", other, *up_variables(name, stack["auth"]), timeout=120)
    assert done.returncode == 2, done.stderr
    assert "another stack runs on what stack" in done.stderr
    assert f"{name}_airflow" in done.stderr and f"{name}_mlflow" in done.stderr
    assert f"key prefix '{name}:'" in done.stderr  # its workers answer on the same queues
    assert "STACK=<name>" in done.stderr and "Traceback" not in done.stderr
    assert not (other / "stack.json").exists()
    servers = [s for s in stack["services"] if s.name in ("mlflow", "airflow")]
    assert all(devstack.alive(s) for s in servers)  # the first stack untouched


def test_up_distributed_refuses_a_broker_that_does_not_answer(tmp_path):
    closed = devstack.free_port()  # nothing listens there
    done = subprocess.run(
        [sys.executable, "-m", "fresh_solver.devstack", "--home", str(tmp_path), "up",
         "--distributed", "--broker-url", f"redis://127.0.0.1:{closed}/0",
         "--airflow-port", str(devstack.free_port()), "--mlflow-port", str(devstack.free_port())],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert f"127.0.0.1:{closed} does not answer" in done.stderr
    assert "--broker-url" in done.stderr  # says how to name another
    assert not (tmp_path / "stack.json").exists() and not (tmp_path / "logs").exists()
