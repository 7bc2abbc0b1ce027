"""Serving rests on evidence nobody can edit in the MLflow UI (fresh_solver.registry.evidence),
and alias moves are ordered by observations (every promote, reconcile, loader resolution).

Threat model: a person with the MLflow UI can edit version tags, run tags, registered-model
tags and descriptions (pencil icons) and move the alias or the stage. Each such tag edit,
alone, followed by a UI promotion of the edited version, must get nothing unvalidated served.
The UI actions are driven through the same MlflowClient calls the UI makes.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fresh_solver import production, tracking
from fresh_solver.errors import InputError
from fresh_solver.params.config import SolverConfig
from fresh_solver.registry import evidence as ev
from fresh_solver.registry.registry import (
    HISTORY_PREFIX,
    ParameterRegistry,
    _parameters_run,
    model_name,
)
from fresh_solver.registry.rest import RestClient
from fresh_solver.tracking import names
from tests.servers import using_mlflow_server
from tests.test_registry import (
    assert_sole_production,
    config,
    passed_version,
    promoted,
    report_for,
    ui_alias,
    ui_stage,
)


@pytest.fixture(scope="module", params=["embedded", "server-rest"])
def registry(request: pytest.FixtureRequest, tracking_home: Path,
             tmp_path_factory: pytest.TempPathFactory):
    """Every test on the embedded store through MLflow's client, and on a real `mlflow
    server` through the REST client the reviewer commands use (the UI's edits and the test's
    set-up go through MLflow's client there, as the UI's requests would)."""
    if request.param == "embedded":
        yield ParameterRegistry()
        return
    with using_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield ParameterRegistry(RestClient(url))


def unvalidated(registry: ParameterRegistry, tid: str) -> str:
    return registry.register(tid, config(50))


def failed(registry: ParameterRegistry, tid: str) -> str:
    cfg = config(51)
    return registry.register(tid, cfg, report_for(registry, tid, cfg, passed=False))


def _version_tag(key: str, value: Callable[[ParameterRegistry, str, str, str], str]):
    def edit(registry: ParameterRegistry, tid: str, good: str, bad: str) -> None:
        registry.client.set_model_version_tag(model_name(tid), bad, key,
                                              value(registry, tid, good, bad))
    return edit


def _run_tags(registry: ParameterRegistry, tid: str, good: str, bad: str) -> None:
    run_id = registry.version(tid, bad).run_id
    registry.client.set_tag(run_id, "validation_status", "passed")
    registry.client.set_tag(run_id, "fresh_solver.config_hash",
                            registry.load_config(tid, bad).hash)


def _history(registry: ParameterRegistry, tid: str, good: str, bad: str) -> None:
    entry = {"at_ms": int(time.time() * 1000) + 60_000, "id": "forged", "event": "promote",
             "by": "mallory", "from_version": good, "to_version": bad, "path": "cli"}
    registry.client.set_registered_model_tag(
        model_name(tid), f"{HISTORY_PREFIX}{entry['at_ms']:013d}.forged", json.dumps(entry))


def _observed(registry: ParameterRegistry, tid: str, good: str, bad: str) -> None:
    state = {"alias": bad, "alias_seen_ms": 0, "production": [bad],
             "at_ms": int(time.time() * 1000) + 60_000}
    registry.client.set_registered_model_tag(model_name(tid), names.OBSERVED, json.dumps(state))


def _override_of_another_version(registry: ParameterRegistry, tid: str, good: str,
                                 bad: str) -> None:
    """An override really recorded for another version, pointed at from this one's tags."""
    other = registry.register(tid, config(52))
    registry.promote(tid, other, "carol", override_validation=True)
    registry.promote(tid, good, "alice")  # back to the validated one
    run_id = registry.version(tid, other).tags["override_run_id"]
    registry.client.set_model_version_tag(model_name(tid), bad, "override_run_id", run_id)
    registry.client.set_model_version_tag(model_name(tid), bad, "override_validation", "carol")


EDITS = {
    "version validation_status=passed": _version_tag("validation_status",
                                                     lambda *_: "passed"),
    "version override_validation": _version_tag("override_validation", lambda *_: "mallory"),
    "version config_hash of the good set": _version_tag(
        "config_hash", lambda r, t, good, bad: r.load_config(t, good).hash),
    "version validation_run_id of the good run": _version_tag(
        "validation_run_id", lambda r, t, good, bad: r.version(t, good).run_id),
    "run tags validation_status and hash": _run_tags,
    "model history entry promoting it": _history,
    "model observation naming it": _observed,
    "version override_run_id of another version": _override_of_another_version,
}


@pytest.mark.parametrize("make_bad", [unvalidated, failed], ids=["unvalidated", "failed"])
@pytest.mark.parametrize("edit", list(EDITS.values()), ids=list(EDITS))
def test_a_ui_tag_edit_alone_gets_nothing_unvalidated_served(
        registry: ParameterRegistry, tid: str, make_bad, edit) -> None:
    [good] = promoted(registry, tid, n=1)
    bad = make_bad(registry, tid)
    edit(registry, tid, good, bad)
    assert not registry.evidence(tid, bad).servable
    for move in (ui_alias, ui_stage):  # the UI's two ways to promote it
        move(registry, tid, bad)
        # (a forged observation may even hide the move; either way the good set is served)
        assert registry.serving(tid).version == good
    registry.reconcile(tid)
    assert_sole_production(registry, tid, good)
    with pytest.raises(InputError, match="not validated"):
        registry.promote(tid, bad, "mallory")  # and the CLI path asks for an override


def test_a_rewritten_parameters_file_is_not_served(registry: ParameterRegistry,
                                                   tid: str) -> None:
    """The validated run's params pin the content: another set written over the version's
    parameters.json (through the API; the UI cannot) no longer matches the verdict."""
    good, other = promoted(registry, tid, n=2)
    rewrite_parameters(registry, tid, other, config(60))
    ui_alias(registry, tid, other)
    found = registry.evidence(tid, other)
    assert not found.servable and config(60).hash in found.detail
    assert registry.serving(tid).version == good


def test_an_override_is_an_attributed_run_and_survives_tag_edits(
        registry: ParameterRegistry, tid: str) -> None:
    promoted(registry, tid, n=1)
    bad = unvalidated(registry, tid)
    registry.promote(tid, bad, "carol", override_validation=True)
    found = registry.evidence(tid, bad)
    assert (found.servable, found.basis) == (True, "override")
    params = registry.client.get_run(found.run_id).data.params
    assert params[ev.OVERRIDE_BY] == "carol"
    assert params[ev.MODEL_VERSION] == bad
    assert params[ev.CANDIDATE_HASH] == config(50).hash
    for key in ("override_validation", "override_run_id"):  # a UI edit removing the notes
        registry.client.delete_model_version_tag(model_name(tid), bad, key)
    assert registry.serving(tid).version == bad


def test_a_version_without_recorded_verdict_is_refused_with_the_way_out(
        registry: ParameterRegistry, tid: str) -> None:
    """Registered from a run that logged no verdict params (as before they existed)."""
    [good] = promoted(registry, tid, n=1)
    cfg = config(61)
    run_id = _parameters_run(registry.client, tid, cfg)
    legacy_exp = registry.client.get_run(run_id).info.experiment_id
    legacy = registry.client.create_run(legacy_exp, tags={"validation_status": "passed"})
    registry.client.log_artifact(
        legacy.info.run_id, _write(registry, tid, cfg))
    mv = registry.client.create_model_version(
        model_name(tid), source=f"{legacy.info.artifact_uri}/parameters.json",
        run_id=legacy.info.run_id, tags={"validation_status": "passed"})
    found = registry.evidence(tid, mv.version)
    assert not found.servable and "re-validate or override" in found.detail
    ui_alias(registry, tid, str(mv.version))
    assert registry.serving(tid).version == good


def _write(registry: ParameterRegistry, tid: str, cfg) -> str:
    """``cfg`` as a parameters.json in a folder of its own in the data folder."""
    path = tracking.home() / f"params-{tid}-{cfg.hash}" / "parameters.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(cfg.to_dict()))
    return str(path)


def rewrite_parameters(registry: ParameterRegistry, tid: str, version: str, cfg) -> None:
    """Another set written over a version's parameters.json (the API can, the UI cannot)."""
    registry.client.log_artifact(registry.version(tid, version).run_id,
                                 _write(registry, tid, cfg))


# ---- ordering alias moves against stage moves by observation ------------------------------

def test_alias_then_loader_resolution_then_stage_then_reconcile(
        registry: ParameterRegistry, tid: str) -> None:
    """A loader resolution between a UI alias move and a later UI stage move observes the
    alias, so the stage move is known to be newer and wins; reconcile keeps it."""
    v1, v2, v3 = promoted(registry, tid, n=3)
    ui_alias(registry, tid, v2)
    production.clear_cache()
    assert production.refresh(tid).source.endswith(f"/{v2}")  # the loader observes
    production.wait_for_refreshes()  # (in the background)
    time.sleep(0.01)
    ui_stage(registry, tid, v3)
    decision = registry.serving(tid)
    assert (decision.version, decision.path) == (v3, "stage")
    found = registry.reconcile(tid)
    assert found["changed"] is True
    assert_sole_production(registry, tid, v3)


def test_reobserving_an_unchanged_alias_does_not_make_it_newer(
        registry: ParameterRegistry, tid: str) -> None:
    """A stage move after the alias was first seen stays newer than it, however often the
    unchanged alias is observed again afterwards."""
    v1, v2 = promoted(registry, tid, n=2)
    time.sleep(0.01)
    ui_stage(registry, tid, v2)
    time.sleep(0.01)
    registry.observe(tid)
    registry.observe(tid)
    assert (registry.serving(tid).version, registry.serving(tid).path) == (v2, "stage")
    registry.reconcile(tid)
    assert_sole_production(registry, tid, v2)


def test_passed_version_evidence_names_its_run(registry: ParameterRegistry, tid: str) -> None:
    version = passed_version(registry, tid, 3)
    found = registry.evidence(tid, version)
    assert (found.servable, found.basis, found.run_id) == (
        True, "validation", registry.version(tid, version).run_id)


def test_a_description_edit_does_not_make_an_old_production_version_newest(
        registry: ParameterRegistry, tid: str) -> None:
    """MLflow bumps last_updated_timestamp on a description edit; a version already seen in
    Production keeps the time it was first seen."""
    v1, v2 = promoted(registry, tid, n=2)
    ui_alias(registry, tid, v2)  # the alias editor; v1 still holds the stage
    registry.observe(tid)
    time.sleep(0.01)
    registry.client.update_model_version(model_name(tid), v1, description="edited in the UI")
    assert registry.serving(tid).version == v2
    registry.reconcile(tid)
    assert_sole_production(registry, tid, v2)


def test_rollback_records_no_override_on_the_reviewers_behalf(
        registry: ParameterRegistry, tid: str) -> None:
    promoted(registry, tid, n=1)
    bad = unvalidated(registry, tid)
    registry.promote(tid, bad, "carol", override_validation=True)
    third = passed_version(registry, tid, 62)
    registry.promote(tid, third, "alice")
    # the override run of `bad` is for its content; rewriting it breaks the evidence
    rewrite_parameters(registry, tid, bad, config(63))
    with pytest.raises(InputError, match=f"v{bad} is not servable"):
        registry.rollback(tid, "alice")
    assert registry.serving(tid).version == third


def test_a_version_whose_parameters_file_is_gone_is_refused_not_fatal(
        registry: ParameterRegistry, tid: str) -> None:
    [good] = promoted(registry, tid, n=1)
    run = registry.client.get_run(registry.version(tid, good).run_id)
    gone = registry.client.create_model_version(
        model_name(tid), source=f"{run.info.artifact_uri}/nothing-here.json",
        run_id=run.info.run_id)
    ui_alias(registry, tid, str(gone.version))
    decision = registry.serving(tid)
    assert decision.version == good and "gone" in decision.refused[0]


def test_a_copy_made_by_mlflows_promote_model_button_is_followed_to_its_original(
        registry: ParameterRegistry, tid: str, capsys: pytest.CaptureFixture[str]) -> None:
    """MLflow 3's "Promote model" copies a version (copy_model_version: the same run, source
    models:/NAME/VERSION). Given the alias, the copy is judged on its original's evidence and
    file; no command ends in a traceback on it (before: IsADirectoryError everywhere)."""
    from tests.test_registry import cli

    [good] = promoted(registry, tid, n=1)
    copy = registry.client.copy_model_version(f"models:/{model_name(tid)}/{good}",
                                              model_name(tid))
    assert copy.source == f"models:/{model_name(tid)}/{good}"
    ui_alias(registry, tid, str(copy.version))
    decision = registry.serving(tid)
    assert decision.version == str(copy.version) and not decision.refused
    assert registry.load_config(tid, copy.version) == registry.load_config(tid, good)
    production.clear_cache()
    assert production.refresh(tid).source.endswith(f"/{copy.version}")
    production.wait_for_refreshes()
    for argv in (["registry", "show", tid, "--json"], ["registry", "reconcile", tid]):
        code, out, err = cli(capsys, *argv)
        assert code == 0 and "Traceback" not in err, err
    assert str(json.loads(cli(capsys, "registry", "show", tid, "--json")[1])["serving"]) == \
        str(copy.version)


def test_a_chain_of_model_links_that_loops_is_refused_not_followed_forever() -> None:
    looped = "models:/fresh-solver-x/2"
    with pytest.raises(FileNotFoundError, match="model copies in a row"):
        ev.file_source(_LoopingClient(looped), looped)


class _LoopingClient:
    """Every version a link names links back to itself."""

    def __init__(self, source: str):
        self.source = source

    def get_model_version(self, name, version):
        return type("MV", (), {"source": self.source})()


# ---- forged evidence ------------------------------------------------------------------------

FORGED = SolverConfig.from_dict({"cp_sat": {"max_time_in_seconds": 0.5}})


def _forged_version(registry: ParameterRegistry, tid: str, experiment_id: str,
                    signature: str | None = None) -> str:
    """What issue 25 did through the API: a run with verdict=passed, the template and the
    matching hash of a set nobody validated, a version from it, the alias on it."""
    from mlflow.entities import Param

    client = registry.client
    run = client.create_run(experiment_id, tags={"mlflow.runName": "forged"})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "parameters.json"
        path.write_text(json.dumps(FORGED.to_dict(), indent=1))
        client.log_artifact(run.info.run_id, str(path))
    params = {ev.VERDICT: ev.PASSED, ev.TEMPLATE: tid,
              ev.CANDIDATE_HASH: ev.content_hash(json.dumps(FORGED.to_dict(), indent=1))}
    if signature is not None:
        params[ev.SIGNATURE] = signature
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    client.set_terminated(run.info.run_id, "FINISHED")
    mv = client.create_model_version(model_name(tid),
                                     f"{run.info.artifact_uri}/parameters.json",
                                     run_id=run.info.run_id)
    ui_alias(registry, tid, str(mv.version))
    return str(mv.version)


def test_a_forged_verdict_in_another_experiment_is_refused(registry: ParameterRegistry,
                                                           tid: str, tmp_path: Path) -> None:
    """As in MLflow's Default experiment (not used here: its artifacts would go to ./mlruns
    in the directory the tests run from)."""
    [good] = promoted(registry, tid, n=1)
    elsewhere = registry.client.create_experiment(f"someone-else-{tid}",
                                                  artifact_location=tmp_path.as_uri())
    forged = _forged_version(registry, tid, elsewhere)
    decision = registry.serving(tid)
    assert decision.version == good
    assert f"v{forged} (alias): its run" in decision.refused[0]
    assert f"is not in the experiment fresh-solver/validation/{tid}" in decision.refused[0]


def test_with_a_key_only_signed_evidence_is_served(registry: ParameterRegistry, tid: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The key on the hosts that validate and serve: a validated (signed) version serves; a
    forged run in the validation experiment itself is refused, unsigned or with a signature
    copied from a genuine run (it covers another hash and run)."""
    from fresh_solver import tracking

    monkeypatch.setenv(ev.KEY_ENV, "a-long-random-deployment-secret")
    [good] = promoted(registry, tid, n=1)  # validated and signed here
    signed = registry.client.get_run(registry.version(tid, good).run_id).data.params
    assert len(signed[ev.SIGNATURE]) == 64
    validation = tracking.experiment_id(registry.client, tracking.validation_experiment(tid))
    for signature in (None, signed[ev.SIGNATURE]):
        forged = _forged_version(registry, tid, validation, signature)
        decision = registry.serving(tid)
        assert decision.version == good
        assert f"v{forged} (alias): its verdict is not signed with this deployment's " \
            f"evidence key ({ev.KEY_ENV})" in decision.refused[0]
    monkeypatch.setenv(ev.KEY_ENV, "another-deployments-key")
    assert not registry.evidence(tid, good).servable  # signed with a key this host lacks


def test_with_a_key_an_unsigned_override_is_no_override(registry: ParameterRegistry, tid: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    unvalidated = registry.register(tid, config(53))
    registry.promote(tid, unvalidated, "carol", override_validation=True)  # no key: unsigned
    assert registry.evidence(tid, unvalidated).basis == ev.OVERRIDE
    monkeypatch.setenv(ev.KEY_ENV, "a-long-random-deployment-secret")
    assert not registry.evidence(tid, unvalidated).servable
    registry.promote(tid, unvalidated, "carol", override_validation=True)  # signed now
    assert registry.evidence(tid, unvalidated).basis == ev.OVERRIDE
