"""Fault injection on the production path: a real MLflow server (started as `make up` starts
it) that hangs, dies, answers 500s or malformed JSON, or answers slowly, while application code
solves. Every production solve must succeed with the last good set; loopback only, every test
bounded in time. The cost of each fault is measured by `benchmarks.registry_faults`
(a benchmark, not these tests).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from benchmarks.registry_faults import injected
from fresh_solver import devstack, production
from fresh_solver.model.generate import generate_family
from fresh_solver.params.config import SolverConfig

pytestmark = pytest.mark.timeout(300)
TEMPLATE = "part"
SERVED = SolverConfig.from_dict({"cp_sat": {"num_workers": 1}})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An MLflow server serving a promoted set for TEMPLATE; the client's disk copy of it
    exists (a healthy resolution happened first)."""
    from fresh_solver.registry.registry import ParameterRegistry, model_name

    home = tmp_path_factory.mktemp("faults")
    service = devstack.start_mlflow(home / "server", devstack.free_port())
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_URI", service.url)
            mp.setenv("FRESH_SOLVER_HOME", str(home / "client"))
            registry = ParameterRegistry()
            version = registry.register(TEMPLATE, SERVED)
            registry.promote(TEMPLATE, version, "tester", override_validation=True)
            production.clear_cache()
            assert production.get_solver_config(TEMPLATE).config == SERVED
            yield {"service": service, "home": home / "client",
                   "source": f"registry:{model_name(TEMPLATE)}/{version}"}
    finally:
        devstack.stop(service)


@pytest.mark.parametrize("fault", ["hung", "dead", "500s", "malformed", "slow"])
def test_production_solves_succeed_with_the_last_good_set(server: dict[str, Any], fault: str,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    problem = generate_family("small", 1, template_id=TEMPLATE)
    monkeypatch.setenv("FRESH_SOLVER_HOME", str(server["home"]))
    monkeypatch.setenv("FRESH_SOLVER_REGISTRY_BUDGET_S", "0.3")
    monkeypatch.setenv("FRESH_SOLVER_PARAMS_TTL", "0.05")  # every solve meets the fault
    with injected(fault, server["service"], delay=3.0) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        production.clear_cache()  # a new process: only the disk copy is left
        first = production.solve(problem, template_id=TEMPLATE, time_limit=0.2)
        assert first.solved and first.valid
        assert first.params_source.startswith("fallback:registry ")
        assert first.params_source.endswith(f"; disk {server['source']}")
        assert first.num_workers == 1  # the served set's, not the defaults' two
        with ThreadPoolExecutor(8) as pool:  # request threads while the fault lasts
            results = list(pool.map(
                lambda _: production.solve(problem, template_id=TEMPLATE, time_limit=0.1),
                range(16), timeout=120))
        assert all(r.solved and r.valid and r.num_workers == 1 for r in results)
        assert all(r.params_source.startswith("fallback:") for r in results)
        production.wait_for_refreshes(timeout=120)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["service"].url)
    production.clear_cache()
    assert production.refresh(TEMPLATE).source == server["source"]  # recovered


def test_a_corrupt_or_unwritable_disk_copy_does_not_stop_the_loader(
        server: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRESH_SOLVER_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["service"].url)
    cache = tmp_path / "production_cache"
    cache.write_text("a file where the folder should be")  # unwritable, even for root
    production.clear_cache()
    assert production.get_solver_config(TEMPLATE).source == server["source"]
    cache.unlink()
    cache.mkdir()
    (cache / f"{TEMPLATE}.json").write_text("{corrupt")
    with injected("dead", server["service"], delay=0) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        production.clear_cache()
        resolved = production.get_solver_config(TEMPLATE)
    assert resolved.source.endswith("; defaults") and resolved.config == SolverConfig()


def test_a_tuning_session_killed_mid_trial_resumes_without_losing_or_repeating_a_trial(
        tmp_path: Path) -> None:
    """SIGKILL the `tune` process while its trials run, then `--resume`: every finished trial
    is kept, none is logged twice, and the budget is completed."""
    import json
    import os
    import subprocess
    import sys
    import time

    from fresh_solver import tracking
    from fresh_solver.model.problem import problem_to_dict

    paths = []
    for i in range(2):
        path = tmp_path / f"i{i}.json"
        path.write_text(json.dumps(problem_to_dict(generate_family("small", 4, i))))
        paths.append(str(path))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["FRESH_SOLVER_HOME"] = str(tmp_path / "home")
    argv = [sys.executable, "-m", "fresh_solver.cli", "tune", "--template-id", "killed",
            "--instances", *paths, "--trials", "8", "--trial-time-limit", "0.4",
            "--race", "0", "--json"]
    tune = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)

    def trial_runs() -> list:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FRESH_SOLVER_HOME", env["FRESH_SOLVER_HOME"])
            mp.delenv("MLFLOW_TRACKING_URI", raising=False)
            client = tracking.client()
            experiment = client.get_experiment_by_name(tracking.tuning_experiment("killed"))
            if experiment is None:
                return []
            return client.search_runs([experiment.experiment_id],
                                      filter_string="tags.fresh_solver.role = 'trial'")

    deadline = time.monotonic() + 240
    while len([r for r in trial_runs() if r.info.status != "RUNNING"]) < 3:
        assert tune.poll() is None and time.monotonic() < deadline, "no trials to kill"
        time.sleep(0.2)
    os.killpg(tune.pid, signal.SIGKILL)
    tune.wait()
    kept = {int(r.data.tags["fresh_solver.trial"]): r.info.run_id for r in trial_runs()
            if r.info.status in ("FINISHED", "FAILED")}
    [session] = {r.data.tags["mlflow.parentRunId"] for r in trial_runs()}

    done = subprocess.run([*argv, "--resume", session], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["trials"] == 8
    finished = [r for r in trial_runs() if r.info.status in ("FINISHED", "FAILED")]
    indices = sorted(int(r.data.tags["fresh_solver.trial"]) for r in finished)
    assert indices == list(range(1, 9))  # none lost, none twice
    for index, run_id in kept.items():  # the trials finished before the kill are kept
        assert any(r.info.run_id == run_id for r in finished), index


def test_the_embedded_store_under_concurrent_writers(tmp_path: Path) -> None:
    """A tuning session, a validation and registry commands at once on one fresh SQLite store:
    every command succeeds (no "database is locked" reaches a user) and nothing is lost."""
    import json
    import os
    import subprocess
    import sys

    from fresh_solver import tracking
    from fresh_solver.model.problem import problem_to_dict
    from fresh_solver.registry.registry import ParameterRegistry

    paths = []
    for i in range(2):
        path = tmp_path / f"i{i}.json"
        path.write_text(json.dumps(problem_to_dict(generate_family("small", 5, i))))
        paths.append(str(path))
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"cp_sat": {"num_workers": 1}}))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["FRESH_SOLVER_HOME"] = str(tmp_path / "home")
    cli = [sys.executable, "-m", "fresh_solver.cli"]
    commands = [
        [*cli, "tune", "--template-id", "busy", "--instances", *paths, "--trials", "4",
         "--trial-time-limit", "0.3", "--race", "0"],
        [*cli, "validate", "--template-id", "busy", "--params", str(params), "--instances",
         *paths, "--seeds", "2", "--time-limit", "0.3", "--min-speedup", "0.01",
         "--max-p-value", "1", "--quality-tolerance", "1"],
        *[[*cli, "registry", "register", f"busy{k}", "--params", str(params)]
          for k in range(4)],
    ]
    running = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for c in commands]
    outcomes = [(p.wait(timeout=240), p.stderr.read()) for p in running]
    for (code, err), command in zip(outcomes, commands):
        assert "database is locked" not in err, command
        assert code in (0, 1) if command[3] == "validate" else code == 0, (command, err[-1500:])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRESH_SOLVER_HOME", env["FRESH_SOLVER_HOME"])
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        client = tracking.client()
        experiment = client.get_experiment_by_name(tracking.tuning_experiment("busy"))
        trials = client.search_runs([experiment.experiment_id],
                                    filter_string="tags.fresh_solver.role = 'trial'")
        assert len(trials) == 4
        registry = ParameterRegistry(client)
        assert [len(registry.versions(f"busy{k}")) for k in range(4)] == [1, 1, 1, 1]
        assert client.get_experiment_by_name(tracking.validation_experiment("busy"))


def test_promotions_racing_a_loader_in_another_process_never_serve_an_unvalidated_set(
        server: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process keeps moving the `production` alias between a validated version and
    an unvalidated one (as a careless reviewer in the UI would) while this process resolves:
    the unvalidated set is never served."""
    import os
    import subprocess
    import sys

    from fresh_solver.registry.registry import ParameterRegistry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["service"].url)
    monkeypatch.setenv("FRESH_SOLVER_HOME", str(tmp_path))
    unvalidated = ParameterRegistry().register(TEMPLATE, SolverConfig.from_dict(
        {"cp_sat": {"num_workers": 2}}))
    good = server["source"].rsplit("/", 1)[1]
    mover = subprocess.Popen([sys.executable, "-c", f"""
import time
from fresh_solver.registry.registry import ParameterRegistry, model_name, ALIAS
registry = ParameterRegistry()
for i in range(40):
    version = "{unvalidated}" if i % 2 == 0 else "{good}"
    registry.client.set_registered_model_alias(model_name("{TEMPLATE}"), ALIAS, version)
    time.sleep(0.05)
registry.client.set_registered_model_alias(model_name("{TEMPLATE}"), ALIAS, "{good}")
"""], env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = set()
    while mover.poll() is None:
        resolved = production.refresh(TEMPLATE)
        seen.add(resolved.source)
        assert resolved.config == SERVED, resolved.source
    assert mover.returncode == 0, mover.stderr.read()[-1500:]
    assert all(s == server["source"] or s.startswith("fallback:") for s in seen), seen
    assert server["source"] in seen
