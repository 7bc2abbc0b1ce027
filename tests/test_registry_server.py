"""The registry against a real `mlflow server`, driven by the same REST calls the UI sends.

MLflow 3.17's UI promotes by one of two paths that do not update each other: the alias editor
(`POST /ajax-api/2.0/mlflow/registered-models/alias`) and the classic stage dropdown
(`POST /ajax-api/2.0/mlflow/model-versions/transition-stage`, archive box unticked by
default). The project serves the most recent promotion by either path and `reconcile` leaves
one Production version with the alias.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from fresh_solver.params.config import SolverConfig
from fresh_solver.registry.registry import ALIAS, ParameterRegistry, _parameters_run, model_name
from tests.servers import using_mlflow_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with using_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


def ui_post(url: str, endpoint: str, body: dict) -> dict:
    """What the browser sends when a reviewer clicks."""
    request = urllib.request.Request(
        f"{url}/ajax-api/2.0/mlflow/{endpoint}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def passed_version(registry: ParameterRegistry, template_id: str, workers: int) -> str:
    """A version that passed validation (the report is fabricated; validation has its own
    tests)."""
    config = SolverConfig.from_dict({"num_workers": workers})
    run_id = _parameters_run(registry.client, template_id, config, "passed")
    report = {"template_id": template_id, "passed": True, "candidate_hash": config.hash,
              "run_id": run_id,
              "speedup_factor": 2.0, "performance_baseline_s": 0.5,
              "validated_at": "2026-11-27T00:00:00Z", "instance_set": "test",
              "summary": "fabricated for the test"}
    return registry.register(template_id, config, report)


def production_versions(registry: ParameterRegistry, template_id: str) -> list[str]:
    return [v.version for v in registry.versions(template_id) if v.current_stage == "Production"]


def test_stage_dropdown_without_archiving_serves_the_newest(server: str) -> None:
    registry = ParameterRegistry()
    v1, v2 = passed_version(registry, "stage", 1), passed_version(registry, "stage", 2)
    registry.promote("stage", v1, "alice")
    ui_post(server, "model-versions/transition-stage",
            {"name": model_name("stage"), "version": str(v2), "stage": "Production",
             "archive_existing_versions": False})
    assert sorted(production_versions(registry, "stage")) == sorted([v1, v2])
    decision = registry.serving("stage")
    assert (decision.version, decision.path) == (v2, "stage")

    found = registry.reconcile("stage")
    assert found["changed"] is True and found["production_stage"] == [v1, v2]
    assert production_versions(registry, "stage") == [v2]
    assert registry.alias_version("stage") == v2
    last = registry.history("stage")[-1]
    assert (last["event"], last["path"], last["to_version"]) == ("reconcile", "ui-stage", v2)
    assert registry.reconcile("stage")["changed"] is False  # idempotent
    assert len(registry.history("stage")) == 2


def test_alias_editor_serves_the_newest(server: str) -> None:
    registry = ParameterRegistry()
    v1, v2 = passed_version(registry, "alias", 1), passed_version(registry, "alias", 2)
    registry.promote("alias", v1, "alice")
    ui_post(server, "registered-models/alias",
            {"name": model_name("alias"), "alias": ALIAS, "version": str(v2)})
    assert production_versions(registry, "alias") == [v1]  # the alias path moves no stage
    assert registry.serving("alias").version == v2
    registry.reconcile("alias")
    assert production_versions(registry, "alias") == [v2]
    assert registry.alias_version("alias") == v2


def test_an_unvalidated_ui_promotion_is_refused(server: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from fresh_solver import production

    # about the refusal, not the first resolution's budget (a busy machine overran 0.9 s)
    monkeypatch.setenv("FRESH_SOLVER_REGISTRY_BUDGET_S", "60")
    registry = ParameterRegistry()
    good = passed_version(registry, "refuse", 1)
    registry.promote("refuse", good, "alice")
    bad = registry.register("refuse", SolverConfig.from_dict({"num_workers": 3}))
    ui_post(server, "registered-models/alias",
            {"name": model_name("refuse"), "alias": ALIAS, "version": str(bad)})
    decision = registry.serving("refuse")
    assert decision.version == good
    assert any(f"v{bad}" in r for r in decision.refused)
    production.clear_cache()
    resolved = production.get_solver_config("refuse")
    assert resolved.source == f"registry:{model_name('refuse')}/{good}"
    assert any("refused" in f["why"] for f in production.recent_fallbacks())


def test_two_processes_promoting_at_once_leave_one_production(server: str,
                                                             tmp_path: Path) -> None:
    registry = ParameterRegistry()
    versions = [passed_version(registry, "race", w) for w in (1, 2)]
    cli = str(Path(sys.executable).parent / "fresh-solver")
    processes = [subprocess.Popen([cli, "registry", "promote", "race", str(v),
                                   "--approved-by", f"reviewer-{v}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for v in versions]
    for p in processes:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    registry.reconcile("race")
    served = production_versions(registry, "race")
    assert len(served) == 1 and served[0] in versions
    assert registry.alias_version("race") == served[0]
    assert registry.serving("race").version == served[0]


def run_cli(server: str, *argv: str) -> subprocess.CompletedProcess:
    """A reviewer's command as typed, with Python reporting every module it imports."""
    env = os.environ | {"MLFLOW_TRACKING_URI": server, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run([str(Path(sys.executable).parent / "fresh-solver"), *argv], env=env,
                          capture_output=True, text=True, timeout=120)
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    assert not [m for m in imported if m == "mlflow" or m.startswith("mlflow.")], argv
    return done


def test_reviewer_commands_speak_rest_without_loading_mlflow(server: str) -> None:
    """`registry show/list/history/promote` against a server never import MLflow (its import
    was most of their 8-30 s), and what they read and write is what MLflow's client sees."""
    registry = ParameterRegistry()
    v1, v2 = passed_version(registry, "rest", 1), passed_version(registry, "rest", 2)
    registry.promote("rest", v1, "alice")

    show = json.loads(run_cli(server, "registry", "show", "rest", "--json").stdout)
    assert (show["serving"], show["path"], show["alias"]) == (v1, "both", v1)
    assert {v["version"]: v["stage"] for v in show["versions"]} == {
        v1: "Production", v2: "Staging"}
    promote = run_cli(server, "registry", "promote", "rest", v2, "--approved-by", "bob")
    assert promote.returncode == 0 and json.loads(promote.stdout) == {"serving": v2}
    last = json.loads(run_cli(server, "registry", "history", "rest", "--json").stdout)[-1]
    assert (last["event"], last["by"], last["from_version"], last["to_version"]) == (
        "promote", "bob", v1, v2)
    listed = json.loads(run_cli(server, "registry", "list", "--json").stdout)
    assert {"template_id": "rest", "model": model_name("rest"), "serving": v2,
            "versions": 2} in listed
    # MLflow's client sees the same registry the REST calls left
    assert production_versions(registry, "rest") == [v2]
    assert registry.alias_version("rest") == v2
    assert registry.serving("rest").version == v2

    missing = run_cli(server, "registry", "promote", "rest", "99", "--approved-by", "bob")
    assert missing.returncode == 2 and "has no version 99" in missing.stderr


def test_a_reviewer_command_on_an_unreachable_server_says_so_without_a_traceback() -> None:
    from fresh_solver.devstack import free_port

    done = run_cli(f"http://127.0.0.1:{free_port()}", "registry", "show", "rest", "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "fresh-solver registry: error:" in done.stderr and "UNREACHABLE" in done.stderr
