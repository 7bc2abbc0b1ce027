"""The parameter registry (fresh_solver.registry): register, promote, rollback, the serving
decision when reviewers promote in the MLflow UI (alias editor or stage dropdown), reconcile,
concurrent promotions, and the `registry` and `solve --production` commands.

MLflow runs on an embedded SQLite store in a temporary FRESH_SOLVER_HOME shared by the module
(creating it costs seconds); every test works on a template id of its own. The UI paths are
driven through the same MlflowClient calls the UI makes, without a server.
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any

import ortools
import pytest

from fresh_solver import production
from fresh_solver.cli import main
from fresh_solver.errors import InputError
from fresh_solver.model.generate import generate_family
from fresh_solver.model.problem import problem_to_dict
from fresh_solver.params.config import SolverConfig
from fresh_solver.registry.registry import (
    ALIAS,
    ParameterRegistry,
    _parameters_run,
    model_name,
)

REQUIRED_REPORT_KEYS = ("template_id", "passed", "candidate_hash", "run_id", "speedup_factor",
                        "performance_baseline_s", "validated_at", "instance_set", "summary")
# ---- fixtures (``registry``, ``tid``: tests/conftest.py) and helpers ---------------------------


def config(i: int) -> SolverConfig:
    """Distinct, valid parameter sets."""
    return SolverConfig.from_dict({"cp_sat": {"num_workers": 1, "max_presolve_iterations": i}})


def report_for(registry: ParameterRegistry, template_id: str, cfg: SolverConfig,
               passed: bool = True, **change: Any) -> dict[str, Any]:
    """A report shaped like ValidationReport.to_dict(), with a real run holding the set."""
    report = {"template_id": template_id, "passed": passed, "reasons": [],
              "candidate_hash": cfg.hash,
              "run_id": _parameters_run(registry.client, template_id, cfg,
                                        "passed" if passed else "failed"),
              "speedup_factor": 1.2345678, "performance_baseline_s": 0.0123456,
              "validated_at": "2026-01-02T03:04:05Z", "instance_set": "0123456789abcdef",
              "summary": f"Validation {'PASSED' if passed else 'FAILED'}: a test report."}
    return report | change


def passed_version(registry: ParameterRegistry, template_id: str, i: int) -> str:
    cfg = config(i)
    return registry.register(template_id, cfg, report_for(registry, template_id, cfg))


def stages(registry: ParameterRegistry, template_id: str) -> dict[str, str]:
    return {str(v.version): v.current_stage for v in registry.versions(template_id)}


def production_versions(registry: ParameterRegistry, template_id: str) -> list[str]:
    return [v for v, stage in stages(registry, template_id).items() if stage == "Production"]


def no_stage(stage: str | None) -> bool:
    return stage in (None, "None")  # MLflow spells "no stage" as the string "None"


def ui_stage(registry: ParameterRegistry, template_id: str, version: str) -> None:
    """The classic UI's stage dropdown: the previous Production version is not archived."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        registry.client.transition_model_version_stage(
            model_name(template_id), version, "Production", archive_existing_versions=False)


def ui_alias(registry: ParameterRegistry, template_id: str, version: str) -> None:
    """The default UI's alias editor."""
    registry.client.set_registered_model_alias(model_name(template_id), ALIAS, version)


def last_event(registry: ParameterRegistry, tid: str) -> tuple:
    """The newest history entry as (event, by, from_version, to_version, path)."""
    last = registry.history(tid)[-1]
    return (last["event"], last["by"], last["from_version"], last["to_version"], last["path"])


def assert_sole_production(registry: ParameterRegistry, template_id: str,
                           version: str) -> None:
    assert production_versions(registry, template_id) == [str(version)]
    assert str(registry.alias_version(template_id)) == str(version)
    assert str(registry.serving(template_id).version) == str(version)


def promoted(registry: ParameterRegistry, template_id: str, n: int = 2) -> list[str]:
    """``n`` validated versions, the first promoted by the CLI path; the rest in Staging."""
    versions = [passed_version(registry, template_id, i) for i in range(n)]
    registry.promote(template_id, versions[0], "alice")
    return versions


# ---- register -------------------------------------------------------------------------------


def test_a_tag_two_processes_create_at_once_is_written_again(registry: ParameterRegistry,
                                                             monkeypatch) -> None:
    """MLflow's SQL store sets a tag by read-then-insert; of two first writers (two reviewers
    promoting at once) one fails on the unique key and writes again, as an update."""
    from mlflow.exceptions import MlflowException

    calls = []

    def racing(name, key, value):
        calls.append((name, key, value))
        if len(calls) == 1:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: "
                                  "registered_model_tags.key, registered_model_tags.name")

    monkeypatch.setattr(registry.client, "set_registered_model_tag", racing)
    registry._upsert_model_tag("fresh-solver-x", "k", "v")
    assert calls == [("fresh-solver-x", "k", "v")] * 2

    def refusing(name, key, value):
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: no model fresh-solver-x")

    monkeypatch.setattr(registry.client, "set_registered_model_tag", refusing)
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):  # not retried
        registry._upsert_model_tag("fresh-solver-x", "k", "v")


def test_register_without_a_report(registry: ParameterRegistry, tid: str) -> None:
    cfg = config(7)
    version = registry.register(tid, cfg)
    mv = registry.version(tid, version)
    assert mv.tags["validation_status"] == "unvalidated"
    assert no_stage(mv.current_stage)
    assert mv.tags["template_id"] == tid
    assert mv.tags["ortools_version"] == ortools.__version__
    assert mv.tags["config_hash"] == cfg.hash
    assert registry.load_config(tid, version) == cfg
    assert registry.serving(tid).version is None  # registered is not served


def test_register_with_a_passing_report(registry: ParameterRegistry, tid: str) -> None:
    cfg = config(3)
    report = report_for(registry, tid, cfg)
    version = registry.register(tid, cfg, report)
    mv = registry.version(tid, version)
    assert mv.current_stage == "Staging"
    assert mv.tags["validation_status"] == "passed"
    assert float(mv.tags["speedup_factor"]) == pytest.approx(report["speedup_factor"], rel=1e-3)
    assert float(mv.tags["performance_baseline_s"]) == pytest.approx(
        report["performance_baseline_s"], rel=1e-3)
    assert mv.tags["validated_at"] == report["validated_at"]
    assert mv.tags["instance_set"] == report["instance_set"]
    assert mv.tags["validation_run_id"] == report["run_id"]
    assert mv.tags["config_hash"] == cfg.hash
    assert mv.description == report["summary"]
    assert mv.run_id == report["run_id"]
    assert registry.load_config(tid, version) == cfg


def test_register_with_a_failing_report(registry: ParameterRegistry, tid: str) -> None:
    cfg = config(4)
    version = registry.register(tid, cfg, report_for(registry, tid, cfg, passed=False))
    mv = registry.version(tid, version)
    assert mv.tags["validation_status"] == "failed"
    assert no_stage(mv.current_stage)


def test_register_refuses_a_report_of_another_set(registry: ParameterRegistry,
                                                  tid: str) -> None:
    cfg, other = config(1), config(2)
    with pytest.raises(InputError) as exc:
        registry.register(tid, cfg, report_for(registry, tid, other))
    assert any(other.hash in p and cfg.hash in p for p in exc.value.problems)
    assert registry.versions(tid) == []


def test_register_lists_the_missing_report_keys(registry: ParameterRegistry, tid: str) -> None:
    cfg = config(1)
    report = report_for(registry, tid, cfg)
    del report["run_id"], report["summary"], report["instance_set"]
    with pytest.raises(InputError) as exc:
        registry.register(tid, cfg, report)
    assert sorted(exc.value.problems) == sorted(
        f"--validation: missing {k!r}" for k in ("run_id", "summary", "instance_set"))
    assert registry.versions(tid) == []


def test_register_refuses_an_empty_report(registry: ParameterRegistry, tid: str) -> None:
    with pytest.raises(InputError) as exc:
        registry.register(tid, config(1), {})
    assert len(exc.value.problems) == len(REQUIRED_REPORT_KEYS)


def test_register_refuses_a_report_of_another_template(registry: ParameterRegistry,
                                                       tid: str) -> None:
    cfg = config(1)
    report = report_for(registry, "some-other-template", cfg)
    with pytest.raises(InputError):
        registry.register(tid, cfg, report)


# ---- promote --------------------------------------------------------------------------------


def test_promote_archives_the_previous_version(registry: ParameterRegistry, tid: str) -> None:
    v1, v2 = promoted(registry, tid)
    assert_sole_production(registry, tid, v1)
    registry.promote(tid, v2, "bob")
    assert_sole_production(registry, tid, v2)
    assert stages(registry, tid)[str(v1)] == "Archived"
    assert registry.version(tid, v2).tags["approved_by"] == "bob"
    assert "override_validation" not in registry.version(tid, v2).tags
    assert registry.serving(tid).path == "both"
    history = registry.history(tid)
    assert [(e["event"], e["by"], e["from_version"], e["to_version"], e["path"])
            for e in history] == [("promote", "alice", None, v1, "cli"),
                                  ("promote", "bob", v1, v2, "cli")]
    assert all(e["at"].endswith("Z") for e in history)


def test_promote_refuses_an_unvalidated_version(registry: ParameterRegistry, tid: str) -> None:
    [v1] = promoted(registry, tid, n=1)
    v2 = registry.register(tid, config(9))
    before = (stages(registry, tid), registry.history(tid), registry.serving(tid))
    with pytest.raises(InputError, match="--override-validation"):
        registry.promote(tid, v2, "bob")
    assert (stages(registry, tid), registry.history(tid), registry.serving(tid)) == before
    assert registry.serving(tid).version == v1
    assert "approved_by" not in registry.version(tid, v2).tags


@pytest.mark.parametrize("status", ["failed", "unvalidated"])
def test_promote_with_override_validation(registry: ParameterRegistry, tid: str,
                                          status: str) -> None:
    [v1] = promoted(registry, tid, n=1)
    cfg = config(5)
    report = report_for(registry, tid, cfg, passed=False) if status == "failed" else None
    v2 = registry.register(tid, cfg, report)
    registry.promote(tid, v2, "carol", override_validation=True)
    mv = registry.version(tid, v2)
    assert mv.tags["validation_status"] == status
    assert mv.tags["override_validation"] == "carol"
    assert mv.tags["approved_by"] == "carol"
    assert_sole_production(registry, tid, v2)
    assert stages(registry, tid)[str(v1)] == "Archived"
    assert last_event(registry, tid)[1:] == ("carol", v1, v2, "cli")


def test_promote_needs_a_reviewer(registry: ParameterRegistry, tid: str) -> None:
    v1 = passed_version(registry, tid, 1)
    with pytest.raises(InputError, match="--approved-by"):
        registry.promote(tid, v1, "  ")
    assert registry.serving(tid).version is None


def test_promote_an_unknown_version(registry: ParameterRegistry, tid: str) -> None:
    passed_version(registry, tid, 1)
    with pytest.raises(InputError, match="has no version 99"):
        registry.promote(tid, 99, "bob")


# ---- rollback -------------------------------------------------------------------------------


def test_rollback_returns_to_the_previous_version(registry: ParameterRegistry,
                                                  tid: str) -> None:
    v1, v2 = promoted(registry, tid)
    registry.promote(tid, v2, "bob")
    assert str(registry.rollback(tid, "dave")) == str(v1)
    assert_sole_production(registry, tid, v1)
    assert stages(registry, tid)[str(v2)] == "Archived"
    assert last_event(registry, tid) == ("promote", "dave", v2, v1, "rollback")


def test_rollback_without_an_earlier_version(registry: ParameterRegistry, tid: str) -> None:
    with pytest.raises(InputError, match="no registered model"):
        registry.rollback(tid, "dave")  # nothing registered at all
    [v1] = promoted(registry, tid, n=1)
    history = registry.history(tid)
    with pytest.raises(InputError, match="no earlier Production version"):
        registry.rollback(tid, "dave")
    assert registry.history(tid) == history
    assert_sole_production(registry, tid, v1)


def test_rollback_after_a_reconcile_that_kept_the_served_version(
        registry: ParameterRegistry, tid: str) -> None:
    v1, v2 = promoted(registry, tid)
    registry.promote(tid, v2, "bob")
    ui_alias(registry, tid, registry.register(tid, config(9)))  # refused: unvalidated
    assert registry.reconcile(tid)["changed"]
    assert_sole_production(registry, tid, v2)
    assert str(registry.rollback(tid, "dave")) == str(v1)


def test_rollback_after_a_ui_promotion(registry: ParameterRegistry, tid: str) -> None:
    v1, v2 = promoted(registry, tid)
    ui_alias(registry, tid, v2)
    assert registry.serving(tid).version == v2
    assert str(registry.rollback(tid, "dave")) == str(v1)


# ---- the MLflow UI's two promotion paths and reconcile --------------------------------------


def test_ui_stage_dropdown(registry: ParameterRegistry, tid: str) -> None:
    v1, v2 = promoted(registry, tid)
    ui_stage(registry, tid, v2)
    assert sorted(production_versions(registry, tid)) == sorted([str(v1), str(v2)])
    decision = registry.serving(tid)
    assert (decision.version, decision.path, decision.refused) == (v2, "stage", ())
    found = registry.reconcile(tid)
    assert found["changed"] is True
    assert sorted(found["production_stage"]) == sorted([v1, v2])
    assert (found["alias"], found["serving"], found["path"]) == (v1, v2, "stage")
    assert_sole_production(registry, tid, v2)
    assert stages(registry, tid)[str(v1)] == "Archived"
    assert last_event(registry, tid) == ("reconcile", "reconcile", v1, v2, "ui-stage")


def test_ui_alias_editor(registry: ParameterRegistry, tid: str) -> None:
    v1, v2 = promoted(registry, tid)
    ui_alias(registry, tid, v2)
    decision = registry.serving(tid)
    assert (decision.version, decision.path) == (v2, "alias")
    assert production_versions(registry, tid) == [str(v1)]  # the UI did not move the stage
    found = registry.reconcile(tid, by="ops")
    assert found["changed"] is True
    assert_sole_production(registry, tid, v2)
    assert stages(registry, tid)[str(v1)] == "Archived"
    assert last_event(registry, tid) == ("reconcile", "ops", v1, v2, "ui-alias")


@pytest.mark.parametrize("order", ["stage-then-alias", "alias-then-stage"])
def test_ui_both_paths_since_the_last_look_the_alias_wins(
        registry: ParameterRegistry, tid: str, order: str) -> None:
    v1, v2, v3 = promoted(registry, tid, n=3)
    moves = [lambda: ui_stage(registry, tid, v2), lambda: ui_alias(registry, tid, v3)]
    for move in moves if order == "stage-then-alias" else reversed(moves):
        move()
    decision = registry.serving(tid)
    assert (decision.version, decision.path) == (v3, "alias")
    assert registry.reconcile(tid)["changed"] is True
    assert_sole_production(registry, tid, v3)
    assert stages(registry, tid)[str(v1)] == stages(registry, tid)[str(v2)] == "Archived"


def test_ui_stage_after_a_reconciled_alias_move(registry: ParameterRegistry, tid: str) -> None:
    """Once reconcile has seen the alias move, a later stage transition is newer."""
    v1, v2, v3 = promoted(registry, tid, n=3)
    ui_alias(registry, tid, v2)
    registry.reconcile(tid)
    ui_stage(registry, tid, v3)
    assert (registry.serving(tid).version, registry.serving(tid).path) == (v3, "stage")
    registry.reconcile(tid)
    assert_sole_production(registry, tid, v3)


def test_reconcile_is_idempotent(registry: ParameterRegistry, tid: str) -> None:
    v1, v2 = promoted(registry, tid)
    ui_stage(registry, tid, v2)
    assert registry.reconcile(tid)["changed"] is True
    history, state = registry.history(tid), stages(registry, tid)
    again = registry.reconcile(tid)
    assert again["changed"] is False
    assert (again["serving"], again["production_stage"], again["alias"]) == (v2, [v2], v2)
    assert registry.history(tid) == history
    assert stages(registry, tid) == state
    assert_sole_production(registry, tid, v2)


def test_reconcile_of_a_consistent_registry_changes_nothing(registry: ParameterRegistry,
                                                            tid: str) -> None:
    [v1] = promoted(registry, tid, n=1)
    history = registry.history(tid)
    assert registry.reconcile(tid)["changed"] is False
    assert registry.history(tid) == history
    assert_sole_production(registry, tid, v1)


def test_reconcile_of_an_unknown_template(capsys: pytest.CaptureFixture[str],
                                          registry: ParameterRegistry, tid: str) -> None:
    code, out, err = cli(capsys, "registry", "reconcile", tid, "--json")
    assert code in (0, 2)
    assert "Traceback" not in err
    if code == 0:
        assert json.loads(out)[tid]["changed"] is False


@pytest.mark.parametrize("path", ["alias", "stage"])
def test_ui_promotion_of_an_unvalidated_version_is_refused(
        registry: ParameterRegistry, tid: str, path: str) -> None:
    [v1] = promoted(registry, tid, n=1)
    bad = registry.register(tid, config(9))
    (ui_alias if path == "alias" else ui_stage)(registry, tid, bad)
    decision = registry.serving(tid)
    assert decision.version == v1
    assert len(decision.refused) == 1
    assert decision.refused[0].startswith(f"v{bad} ({path}): ")
    assert "unvalidated" in decision.refused[0]
    found = registry.reconcile(tid)
    assert found["changed"] is True and found["refused"] == list(decision.refused)
    assert_sole_production(registry, tid, v1)
    assert registry.serving(tid).refused == ()


def test_ui_promotion_of_a_failed_version_is_refused_and_history_serves(
        registry: ParameterRegistry, tid: str) -> None:
    """The stage dropdown with archiving: the good version is no longer Production at all;
    the alias still names it, so it keeps serving."""
    [v1] = promoted(registry, tid, n=1)
    cfg = config(8)
    bad = registry.register(tid, cfg, report_for(registry, tid, cfg, passed=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        registry.client.transition_model_version_stage(
            model_name(tid), bad, "Production", archive_existing_versions=True)
    assert production_versions(registry, tid) == [str(bad)]
    decision = registry.serving(tid)
    assert decision.version == v1
    assert decision.refused and "failed" in decision.refused[0]


# ---- two promotions at once -----------------------------------------------------------------


def test_two_registries_promote_one_after_the_other(registry: ParameterRegistry,
                                                    tid: str) -> None:
    v1, v2, v3 = promoted(registry, tid, n=3)
    first, second = ParameterRegistry(), ParameterRegistry()
    first.promote(tid, v2, "erin")
    second.promote(tid, v3, "frank")
    registry.reconcile(tid)
    assert_sole_production(registry, tid, v3)
    assert [e["to_version"] for e in registry.history(tid) if e["event"] == "promote"] == [
        v1, v2, v3]


@pytest.mark.parametrize("round_", range(2))
def test_two_threads_promote_at_once(registry: ParameterRegistry, tid: str,
                                     round_: int) -> None:
    v1, v2, v3 = promoted(registry, tid, n=3)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def promote(version: str, reviewer: str) -> None:
        try:
            own = ParameterRegistry()
            barrier.wait(timeout=30)
            own.promote(tid, version, reviewer)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v, f"r{v}")) for v in (v2, v3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    registry.reconcile(tid)
    [served] = production_versions(registry, tid)
    assert served in (str(v2), str(v3))
    assert_sole_production(registry, tid, served)
    assert stages(registry, tid)[str(v1)] == "Archived"
    assert registry.reconcile(tid)["changed"] is False


def _failing_alias_setter(registry: ParameterRegistry, errors: list[Exception]):
    """The client's alias setter, failing with ``errors`` first (one per call)."""
    real = registry.client.set_registered_model_alias

    def set_alias(*args, **kwargs):
        if errors:
            raise errors.pop(0)
        return real(*args, **kwargs)
    return set_alias


def test_a_first_promotion_racing_another_sets_the_alias_again(
        registry: ParameterRegistry, tid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # what MLflow's store answers when a concurrent promotion inserted the alias first
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST

    v1 = passed_version(registry, tid, 1)
    collision = MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: "
                                "registered_model_aliases.name", error_code=BAD_REQUEST)
    monkeypatch.setattr(registry.client, "set_registered_model_alias",
                        _failing_alias_setter(registry, [collision]))
    registry.promote(tid, v1, "alice")
    assert_sole_production(registry, tid, v1)


def test_other_alias_errors_are_not_retried(registry: ParameterRegistry, tid: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST

    v1 = passed_version(registry, tid, 1)
    other = MlflowException("some other refusal", error_code=BAD_REQUEST)
    monkeypatch.setattr(registry.client, "set_registered_model_alias",
                        _failing_alias_setter(registry, [other]))
    with pytest.raises(MlflowException, match="some other refusal"):
        registry.promote(tid, v1, "alice")


# ---- the `registry` command -----------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_reports_an_mlflow_refusal_without_a_traceback(
        capsys: pytest.CaptureFixture[str], registry: ParameterRegistry, tid: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

    v1 = passed_version(registry, tid, 1)

    def refuse(*args, **kwargs):
        raise MlflowException("Permission denied for the alias", error_code=PERMISSION_DENIED)
    monkeypatch.setattr(ParameterRegistry, "promote", refuse)
    code, out, err = cli(capsys, "registry", "promote", tid, str(v1), "--approved-by", "x")
    assert code == 1 and out == ""
    assert "MLflow answered PERMISSION_DENIED: Permission denied for the alias" in err
    assert "Traceback" not in err


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.json"
    path.write_text(json.dumps(config(11).to_dict()))
    return path


def test_cli_registry_lifecycle(capsys: pytest.CaptureFixture[str], registry: ParameterRegistry,
                                tid: str, params_file: Path) -> None:
    code, out, err = cli(capsys, "registry", "register", tid, "--params", str(params_file),
                         "--json")
    assert code == 0, err
    v1 = json.loads(out)["version"]
    assert registry.load_config(tid, v1) == config(11)

    code, out, err = cli(capsys, "registry", "promote", tid, str(v1), "--approved-by", "x")
    assert code == 2
    assert "--override-validation" in err
    assert "Traceback" not in err and out == ""
    assert registry.serving(tid).version is None

    code, out, err = cli(capsys, "registry", "promote", tid, str(v1), "--approved-by", "x",
                         "--override-validation", "--json")
    assert code == 0, err
    assert str(json.loads(out)["serving"]) == str(v1)

    v2 = passed_version(registry, tid, 12)
    code, out, err = cli(capsys, "registry", "promote", tid, str(v2), "--approved-by", "y")
    assert code == 0, err

    code, out, err = cli(capsys, "registry", "show", tid, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["model"] == model_name(tid)
    assert str(shown["serving"]) == str(v2) and str(shown["alias"]) == str(v2)
    assert shown["path"] == "both" and shown["refused"] == []
    assert {str(v["version"]): v["stage"] for v in shown["versions"]} == {
        str(v1): "Archived", str(v2): "Production"}
    assert shown["versions"][1]["tags"]["approved_by"] == "y"

    code, out, err = cli(capsys, "registry", "list", "--json")
    assert code == 0, err
    [entry] = [e for e in json.loads(out) if e["template_id"] == tid]
    assert entry == {"template_id": tid, "model": model_name(tid), "serving": v2,
                     "versions": 2}

    code, out, err = cli(capsys, "registry", "rollback", tid, "--approved-by", "z", "--json")
    assert code == 0, err
    assert str(json.loads(out)["serving"]) == str(v1)
    assert_sole_production(registry, tid, v1)

    code, out, err = cli(capsys, "registry", "history", tid, "--json")
    assert code == 0, err
    assert [(e["by"], e["from_version"], e["to_version"], e["path"])
            for e in json.loads(out)] == [("x", None, v1, "cli"), ("y", v1, v2, "cli"),
                                          ("z", v2, v1, "rollback")]


def test_cli_registry_reconcile_all_templates(capsys: pytest.CaptureFixture[str],
                                              registry: ParameterRegistry) -> None:
    first, second = "all-first", "all-second"
    _, a2 = promoted(registry, first)
    promoted(registry, second)
    ui_stage(registry, first, a2)
    code, out, err = cli(capsys, "registry", "reconcile", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert {first, second} <= set(found)
    assert found[first]["changed"] is True and found[first]["serving"] == a2
    assert found[second]["changed"] is False
    assert_sole_production(registry, first, a2)
    code, out, err = cli(capsys, "registry", "reconcile", first, "--json")
    assert code == 0, err
    assert set(json.loads(out)) == {first}
    assert json.loads(out)[first]["changed"] is False


@pytest.mark.parametrize("argv", [
    ["promote", "{tid}", "99", "--approved-by", "x"],
    ["promote", "{tid}", "abc", "--approved-by", "x"],
    ["promote", "no-such-template", "1", "--approved-by", "x"],
    ["rollback", "{tid}", "--approved-by", "x"],
])
def test_cli_registry_unknown_version(capsys: pytest.CaptureFixture[str],
                                      registry: ParameterRegistry, tid: str,
                                      argv: list[str]) -> None:
    passed_version(registry, tid, 1)
    code, out, err = cli(capsys, "registry", *[a.format(tid=tid) for a in argv])
    assert code == 2
    assert "fresh-solver registry: error: " in err
    assert "Traceback" not in err and out == ""


def test_cli_register_with_a_report_of_another_set(
        capsys: pytest.CaptureFixture[str], registry: ParameterRegistry, tid: str,
        params_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(report_for(registry, tid, config(1))))
    code, out, err = cli(capsys, "registry", "register", tid, "--params", str(params_file),
                         "--validation", str(report))
    assert code == 2
    assert "--validation: the report validated set" in err
    assert registry.versions(tid) == []


def test_cli_register_with_a_passing_report(
        capsys: pytest.CaptureFixture[str], registry: ParameterRegistry, tid: str,
        params_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(report_for(registry, tid, config(11))))
    code, out, err = cli(capsys, "registry", "register", tid, "--params", str(params_file),
                         "--validation", str(report), "--json")
    assert code == 0, err
    assert stages(registry, tid) == {str(json.loads(out)["version"]): "Staging"}


def test_cli_register_with_a_report_of_an_unknown_run(
        capsys: pytest.CaptureFixture[str], registry: ParameterRegistry, tid: str,
        params_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(report_for(registry, tid, config(11),
                                            run_id="0123456789abcdef0123456789abcdef")))
    code, out, err = cli(capsys, "registry", "register", tid, "--params", str(params_file),
                         "--validation", str(report))
    assert code == 2
    assert "0123456789abcdef0123456789abcdef" in err


# ---- `solve --production` -------------------------------------------------------------------


@pytest.fixture
def problem_file(tmp_path: Path, tid: str) -> Path:
    """A problem whose template is the test's template id (what --production names)."""
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(problem_to_dict(generate_family("small", 1, template_id=tid))))
    return path


def test_cli_solve_production_refuses_a_template_the_problem_lacks(
        capsys: pytest.CaptureFixture[str], problem_file: Path, tid: str) -> None:
    code, out, err = cli(capsys, "solve", str(problem_file), "--production", "part",
                         "--time-limit", "0.3")
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"--production part: family-small-1 has no template 'part' (its templates: {tid})" \
        in err


def test_cli_solve_production(capsys: pytest.CaptureFixture[str], registry: ParameterRegistry,
                              tid: str, problem_file: Path) -> None:
    production.clear_cache()
    try:
        code, out, err = cli(capsys, "solve", str(problem_file), "--production", tid,
                             "--time-limit", "0.3", "--json")
        assert code == 0, err
        assert json.loads(out)["params_source"] == "defaults"
        production.clear_cache()
        _, v2 = promoted(registry, tid)
        registry.promote(tid, v2, "bob")
        code, out, err = cli(capsys, "solve", str(problem_file), "--production", tid,
                             "--time-limit", "0.3", "--json")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["params_source"] == f"registry:{model_name(tid)}/{v2}"
        assert summary["num_workers"] == 1  # the registered set's num_workers
    finally:
        production.clear_cache()


def test_cli_solve_refuses_params_and_production(capsys: pytest.CaptureFixture[str],
                                                 problem_file: Path, params_file: Path) -> None:
    code, out, err = cli(capsys, "solve", str(problem_file), "--production", "x", "--params",
                         str(params_file), "--time-limit", "0.3")
    assert code == 2
    assert "--params or --production" in err


def test_a_database_store_the_user_names_gets_no_mlruns_in_the_callers_folder(
        tmp_path: Path) -> None:
    """With MLFLOW_TRACKING_URI=sqlite:///... (a store the project did not create), MLflow
    would put artifacts under ./mlruns wherever the command runs; the project's experiments
    keep them under FRESH_SOLVER_HOME (DESIGN §6)."""
    import os
    import subprocess
    import sys

    caller = tmp_path / "caller"
    caller.mkdir()
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"cp_sat": {"num_workers": 1}}))
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'user-store.db'}",
                        "FRESH_SOLVER_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "fresh_solver.cli", "registry", "register",
                           "mlruns-check", "--params", str(params), "--json"], cwd=caller,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(caller.iterdir()) == []
    assert list((tmp_path / "home" / "artifacts").rglob("parameters.json"))
