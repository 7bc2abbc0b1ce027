"""The production loader (fresh_solver.production): the served parameter set, its cache, and the
fallbacks when the registry is down or the set is invalid.

MLflow runs on an embedded SQLite store in a temporary FRESH_SOLVER_HOME shared by the module;
every test works on a template id of its own and starts with an empty in-memory cache. "Down"
is a tracking URI where nothing listens (127.0.0.1:9).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fresh_solver import production, tracking
from fresh_solver.errors import InputError
from fresh_solver.model.generate import generate
from fresh_solver.params.config import SolverConfig
from fresh_solver.registry import registry as registry_module
from fresh_solver.registry.evidence import content_hash, verdict_params
from fresh_solver.registry.registry import ALIAS, ParameterRegistry, model_name

DOWN = "http://127.0.0.1:9"
LIMIT = 0.3
_ids = itertools.count()




@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    production.clear_cache()
    yield
    # a refresh a test left running must not land in the next one
    production.wait_for_refreshes(timeout=60)
    production.clear_cache()


@pytest.fixture(scope="module")
def registry(tracking_home: Path) -> ParameterRegistry:
    return ParameterRegistry()


@pytest.fixture
def tid() -> str:
    return f"p{next(_ids)}"


def config(i: int) -> SolverConfig:
    return SolverConfig.from_dict({"cp_sat": {"num_workers": 1, "max_presolve_iterations": i},
                                   "model": {"warm_start": i % 2 == 0}})


def served(registry: ParameterRegistry, template_id: str, i: int) -> tuple[str, SolverConfig]:
    """Register ``config(i)`` and promote it (override: it is not validated)."""
    cfg = config(i)
    version = registry.register(template_id, cfg)
    registry.promote(template_id, version, "tester", override_validation=True)
    return version, cfg


def source_of(template_id: str, version: Any) -> str:
    return f"registry:{model_name(template_id)}/{version}"


def after_refresh(template_id: str) -> production.Resolved:
    """What is served once the refresh an expired entry starts has landed."""
    production.get_solver_config(template_id)
    production.wait_for_refreshes(timeout=60)
    return production.get_solver_config(template_id)


# ---- resolution and the cache ---------------------------------------------------------------


def test_no_registered_model_means_defaults(tid: str) -> None:
    assert production.get_solver_parameters(tid) == {}
    resolved = production.get_solver_config(tid)
    assert resolved.source == "defaults"
    assert resolved.config == SolverConfig()


def test_the_promoted_version_is_served(registry: ParameterRegistry, tid: str) -> None:
    version, cfg = served(registry, tid, 1)
    assert production.get_solver_parameters(tid) == cfg.cp_sat
    resolved = production.get_solver_config(tid)
    assert resolved.source == source_of(tid, version)
    assert resolved.config == cfg  # the model switches travel too


def test_a_later_promotion_is_served_after_the_cache_is_cleared(
        registry: ParameterRegistry, tid: str) -> None:
    served(registry, tid, 1)
    production.get_solver_config(tid)
    version, cfg = served(registry, tid, 2)
    production.clear_cache()
    assert production.get_solver_config(tid).source == source_of(tid, version)
    assert production.get_solver_parameters(tid) == cfg.cp_sat


def test_the_answer_is_cached(registry: ParameterRegistry, tid: str,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    version, cfg = served(registry, tid, 3)
    first = production.get_solver_config(tid)

    def unreachable(*args: Any, **kwargs: Any) -> ParameterRegistry:
        raise ConnectionError("the registry was consulted within the TTL")

    monkeypatch.setattr(registry_module, "ParameterRegistry", unreachable)
    assert production.get_solver_config(tid) is first
    assert production.get_solver_parameters(tid) == cfg.cp_sat
    # clear_cache forces a new resolution (which now fails: the disk copy is served)
    production.clear_cache()
    resolved = production.get_solver_config(tid)
    assert resolved is not first
    assert resolved.source.startswith("fallback:registry unreachable (ConnectionError)")
    assert resolved.source.endswith(f"disk {source_of(tid, version)}")
    assert resolved.config == cfg


def test_ttl_zero_resolves_every_time(registry: ParameterRegistry, tid: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    served(registry, tid, 4)
    calls: list[str] = []
    real = ParameterRegistry.serving

    def counting(self: ParameterRegistry, template_id: str):
        calls.append(template_id)
        return real(self, template_id)

    monkeypatch.setattr(ParameterRegistry, "serving", counting)
    for _ in range(3):
        production.get_solver_config(tid)
    assert calls == [tid]  # the default TTL (300 s) caches
    calls.clear()
    production.clear_cache()
    monkeypatch.setenv("FRESH_SOLVER_PARAMS_TTL", "0")
    for _ in range(3):  # the first resolves; each later one serves it and refreshes behind
        assert production.get_solver_config(tid).source.startswith("registry:")
        production.wait_for_refreshes(timeout=60)
    assert calls == [tid] * 3


def test_a_refused_ui_promotion_keeps_the_previous_set(registry: ParameterRegistry,
                                                       tid: str) -> None:
    good, cfg = served(registry, tid, 5)
    bad = registry.register(tid, config(6))  # unvalidated
    registry.client.set_registered_model_alias(model_name(tid), ALIAS, bad)
    before = len(production.recent_fallbacks())
    resolved = production.get_solver_config(tid)
    assert resolved.source == source_of(tid, good)
    assert resolved.config == cfg
    events = production.recent_fallbacks()[before:]
    assert [e["template_id"] for e in events] == [tid]
    assert events[0]["why"].startswith(f"refused v{bad} (alias)")


def test_a_refused_version_after_ui_promotions_serves_the_set_served_before(
        registry: ParameterRegistry, tid: str) -> None:
    """The served version was promoted in the UI (no promotion history): a refused one then
    makes the loader serve what it served before, named as a fallback with the reason, not
    the CP-SAT defaults as plain 'defaults'."""
    from fresh_solver.registry.registry import HISTORY_PREFIX

    good, cfg = served(registry, tid, 7)  # promoted, with its override as evidence
    for key in registry.client.get_registered_model(model_name(tid)).tags:
        if key.startswith(HISTORY_PREFIX):  # as if promoted in the UI: no history
            registry.client.delete_registered_model_tag(model_name(tid), key)
    assert production.get_solver_config(tid).source == source_of(tid, good)
    bad = registry.register(tid, config(8))  # unvalidated, given both marks in the UI
    registry.client.transition_model_version_stage(model_name(tid), bad, "Production",
                                                   archive_existing_versions=True)
    registry.client.set_registered_model_alias(model_name(tid), ALIAS, bad)
    assert registry.serving(tid).version is None  # the registry knows no earlier one
    production.clear_cache()  # memory emptied: the disk copy of what was served speaks
    resolved = production.get_solver_config(tid)
    assert resolved.source.startswith(f"fallback:refused v{bad} (alias)")
    assert resolved.source.endswith(f"; disk {source_of(tid, good)}")
    assert resolved.config == cfg


# ---- fallbacks ------------------------------------------------------------------------------


def test_registry_down_serves_the_disk_copy(registry: ParameterRegistry, tid: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    version, cfg = served(registry, tid, 7)
    assert production.get_solver_config(tid).source == source_of(tid, version)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", DOWN)
    production.clear_cache()
    before = len(production.recent_fallbacks())
    resolved = production.get_solver_config(tid)
    assert resolved.source.startswith("fallback:registry unreachable")
    assert resolved.source.endswith(f"; disk {source_of(tid, version)}")
    assert resolved.config == cfg
    assert production.get_solver_parameters(tid) == cfg.cp_sat
    [event] = production.recent_fallbacks()[before:]
    assert event["template_id"] == tid
    assert event["why"].startswith("registry unreachable")


def test_registry_down_serves_the_last_good_set_in_memory(
        registry: ParameterRegistry, tid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    version, cfg = served(registry, tid, 8)
    production.get_solver_config(tid)
    monkeypatch.setenv("FRESH_SOLVER_PARAMS_TTL", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", DOWN)
    # served at once, as it was, while the refresh finds the registry down
    assert production.get_solver_config(tid).source == source_of(tid, version)
    production.wait_for_refreshes(timeout=60)
    resolved = production.get_solver_config(tid)
    assert resolved.source.startswith("fallback:registry unreachable")
    assert resolved.source.endswith(f"; cached {source_of(tid, version)}")
    assert resolved.config == cfg


def test_registry_down_without_any_copy_serves_the_defaults(
        tid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRESH_SOLVER_HOME", str(tmp_path / "fresh"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", DOWN)
    before = len(production.recent_fallbacks())
    resolved = production.get_solver_config(tid)
    assert resolved.source.startswith("fallback:registry unreachable")
    assert resolved.source.endswith("; defaults")
    assert resolved.config == SolverConfig()
    assert production.get_solver_parameters(tid) == {}
    assert [e["template_id"] for e in production.recent_fallbacks()[before:]] == [tid]


def test_solve_never_fails_because_of_the_registry(
        registry: ParameterRegistry, tid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    version, cfg = served(registry, tid, 9)
    problem = generate("family", "small", 1)
    result = production.solve(problem, template_id=tid, time_limit=LIMIT)
    assert result.solved and result.valid
    assert result.params_source == source_of(tid, version)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", DOWN)
    production.clear_cache()
    result = production.solve(problem, template_id=tid, time_limit=LIMIT)
    assert result.solved and result.valid
    assert result.params_source.startswith("fallback:registry unreachable")
    assert result.params_source.endswith(f"disk {source_of(tid, version)}")
    assert result.num_workers == 1  # the registered set's, from the disk copy


def test_solve_defaults_to_the_problems_only_template(tid: str) -> None:
    problem = generate("family", "small", 2)
    [template] = problem.templates
    result = production.solve(problem, time_limit=LIMIT)
    assert result.solved
    expected = production.get_solver_config(template.id).source
    assert result.params_source == expected


def test_solve_of_a_multi_template_problem_needs_a_template_id() -> None:
    problem = generate("mix", "small", 0)
    assert len(problem.templates) > 1
    with pytest.raises(InputError, match="template_id"):
        production.solve(problem, time_limit=LIMIT)


def test_a_fallback_is_retried_sooner_than_a_good_answer_is_refreshed(
        registry: ParameterRegistry, tid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    version, _ = served(registry, tid, 10)
    monkeypatch.setenv("FRESH_SOLVER_FALLBACK_RETRY", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", DOWN)
    assert production.get_solver_config(tid).source.startswith("fallback:")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the registry is back
    good = after_refresh(tid)
    assert good.source == source_of(tid, version)
    assert production.get_solver_config(tid) is good  # a good answer is kept for the TTL


# ---- an invalid parameter set in the registry -----------------------------------------------


def corrupt_version(registry: ParameterRegistry, template_id: str,
                    document: dict[str, Any]) -> str:
    """A validated version whose parameters.json the installed OR-Tools does not accept (as
    after an OR-Tools upgrade that dropped a parameter)."""
    client = registry.client
    exp = tracking.experiment_id(client, tracking.validation_experiment(template_id))
    run = client.create_run(exp)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "parameters.json"
        path.write_text(json.dumps(document))
        client.log_artifact(run.info.run_id, str(path))
    for key, value in verdict_params(template_id, "passed", content_hash(json.dumps(document)),
                                     run.info.run_id).items():
        client.log_param(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id, "FINISHED")
    mv = client.create_model_version(
        model_name(template_id), source=f"{run.info.artifact_uri}/parameters.json",
        run_id=run.info.run_id, tags={"template_id": template_id, "validation_status": "passed"})
    return str(mv.version)


@pytest.mark.parametrize("keep_memory", [True, False], ids=["memory", "disk"])
def test_an_invalid_parameter_set_falls_back_to_the_last_good_one(
        registry: ParameterRegistry, tid: str, monkeypatch: pytest.MonkeyPatch,
        keep_memory: bool) -> None:
    good, cfg = served(registry, tid, 11)
    assert production.get_solver_config(tid).source == source_of(tid, good)
    bad = corrupt_version(registry, tid, {"cp_sat": {"no_such_param": 1}})
    registry.promote(tid, bad, "tester")
    assert registry.serving(tid).version == bad
    if keep_memory:
        monkeypatch.setenv("FRESH_SOLVER_PARAMS_TTL", "0")
    else:
        production.clear_cache()
    before = len(production.recent_fallbacks())
    resolved = after_refresh(tid) if keep_memory else production.get_solver_config(tid)
    assert resolved.source.startswith("fallback:invalid parameter set (cp_sat.no_such_param")
    where = "cached" if keep_memory else "disk"
    assert resolved.source.endswith(f"; {where} {source_of(tid, good)}")
    assert resolved.config == cfg
    [event] = production.recent_fallbacks()[before:]
    assert "invalid parameter set" in event["why"]


def test_an_invalid_parameter_set_without_a_good_one_serves_the_defaults(
        registry: ParameterRegistry, tid: str) -> None:
    registry.register(tid, config(12))  # the registered model exists
    bad = corrupt_version(registry, tid, {"cp_sat": {"num_workers": "many"}})
    registry.promote(tid, bad, "tester")
    resolved = production.get_solver_config(tid)
    assert resolved.source.startswith("fallback:invalid parameter set (cp_sat.num_workers")
    assert resolved.source.endswith("; defaults")
    assert resolved.config == SolverConfig()


# ---- the registry's health is never the caller's latency ------------------------------------


@pytest.fixture
def blocked_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str]]]:
    """Registry queries block until ``release`` is set (a hung registry); they are counted."""
    release, calls = threading.Event(), []
    real = production._from_registry

    def blocking(template_id: str) -> production.Resolved:
        calls.append(template_id)
        release.wait(60)
        return real(template_id)

    monkeypatch.setattr(production, "_from_registry", blocking)
    yield release, calls
    release.set()
    production.wait_for_refreshes(timeout=60)


def test_an_expired_set_is_served_at_once_while_one_refresh_runs(
        registry: ParameterRegistry, tid: str, monkeypatch: pytest.MonkeyPatch,
        blocked_registry: tuple[Any, list[str]]) -> None:
    release, calls = blocked_registry
    release.set()
    version, _ = served(registry, tid, 13)
    first = production.get_solver_config(tid)
    release.clear()
    monkeypatch.setenv("FRESH_SOLVER_PARAMS_TTL", "0")
    with ThreadPoolExecutor(8) as pool:  # eight request threads while the registry hangs
        served_now = list(pool.map(lambda _: production.get_solver_config(tid), range(8),
                                   timeout=30))
    assert all(r is first for r in served_now)
    assert calls == [tid, tid]  # the first resolution, then one refresh for all eight
    release.set()
    production.wait_for_refreshes(timeout=60)
    assert production.get_solver_config(tid).source == source_of(tid, version)


def test_templates_do_not_wait_on_each_other(registry: ParameterRegistry, tid: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """One template's hung registry query holds no lock: another resolves meanwhile."""
    version, _ = served(registry, tid, 15)
    hung = f"{tid}-hung"
    started, release = threading.Event(), threading.Event()
    real = production._from_registry

    def hangs_for_one(template_id: str) -> production.Resolved:
        if template_id == hung:
            started.set()
            release.wait(60)
        return real(template_id)

    monkeypatch.setattr(production, "_from_registry", hangs_for_one)
    with ThreadPoolExecutor(2) as pool:
        waiting = pool.submit(production.get_solver_config, hung)
        assert started.wait(30)
        other = pool.submit(production.get_solver_config, tid)
        assert other.result(timeout=30).source == source_of(tid, version)
        assert not waiting.done()
        release.set()
        assert waiting.result(timeout=60).source == "defaults"


def test_the_first_resolution_waits_for_a_hung_server_only_its_budget(
        registry: ParameterRegistry, tid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    version, cfg = served(registry, tid, 14)
    production.get_solver_config(tid)  # a disk copy exists
    production.clear_cache()
    with socket.socket() as hung:  # accepts connections (backlog), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{hung.getsockname()[1]}")
        monkeypatch.setenv("FRESH_SOLVER_REGISTRY_BUDGET_S", "0.2")
        resolved = production.get_solver_config(tid)
        assert resolved.source.startswith("fallback:registry slow (no answer within 0.2 s)")
        assert resolved.source.endswith(f"disk {source_of(tid, version)}")
        assert resolved.config == cfg
        assert production.get_solver_config(tid) is resolved  # later calls do not wait
        # the refresh still waiting on the server cannot hold the process at exit
        assert all(t.daemon for t in threading.enumerate()
                   if t.name.startswith(("fresh-solver-registry", "fresh-solver-observe")))
    production.wait_for_refreshes(timeout=60)  # it gives up at MLflow's HTTP timeout


@pytest.mark.timeout(120)
def test_a_one_shot_production_solve_exits_without_waiting_for_a_hung_registry(
        tmp_path: Path) -> None:
    """The CLI prints within the budget and then exits: the refresh blocked on the registry
    (here for up to MLflow's HTTP timeout, 100 s) is not joined at exit."""
    import subprocess
    import sys

    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.problem import problem_to_dict

    problem = tmp_path / "part.json"
    problem.write_text(json.dumps(problem_to_dict(generate_family("small", 1,
                                                                  template_id="part"))))
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        env = os.environ | {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{hung.getsockname()[1]}",
                            "MLFLOW_HTTP_REQUEST_TIMEOUT": "100",
                            "FRESH_SOLVER_HOME": str(tmp_path / "home"),
                            "FRESH_SOLVER_MONITOR": "0"}
        done = subprocess.run([sys.executable, "-m", "fresh_solver.cli", "solve", str(problem),
                               "--production", "part", "--time-limit", "1", "--json"],
                              capture_output=True, text=True, env=env, timeout=60,
                              cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params_source"].startswith("fallback:registry slow")


def test_a_bug_in_resolution_is_raised_not_served_as_a_fallback(
        tid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(template_id: str) -> production.Resolved:
        raise TypeError("a bug of ours")

    monkeypatch.setattr(production, "_from_registry", buggy)
    with pytest.raises(TypeError, match="a bug of ours"):
        production.get_solver_config(tid)
