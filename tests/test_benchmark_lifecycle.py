"""The daily benchmark's task functions (``fresh_solver.lifecycle.benchmark``), without Airflow.

Real solves only where the wiring is under test (a tiny benchmark, a tiny re-validation); the
regression statistics are tested on synthetic benchmark runs (``runs.csv`` with known ratios),
so nothing here depends on how fast this machine is today.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest

from fresh_solver.errors import InputError
from fresh_solver.lifecycle import benchmark as lifecycle
from fresh_solver.lifecycle.benchmark_settings import resolve

pytestmark = pytest.mark.timeout(300)

TINY = {"instances": 1, "repetitions": 2, "time_limit": 0.2, "revalidation_seeds": 2,
        "revalidation_time_limit": 0.2}


def client():
    from fresh_solver import tracking

    return tracking.client()


def register(template_id: str, cp_sat: dict[str, Any], *, promote: bool = True,
             validated_on: list[str] | None = None) -> str:
    """A version that passed a (fabricated) validation, promoted to Production; with
    ``validated_on`` its validation run holds a report naming those instance files."""
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.registry.registry import ParameterRegistry, _parameters_run
    from fresh_solver.tuning.session import instance_set_hash

    registry = ParameterRegistry()
    config = SolverConfig.from_dict({"cp_sat": cp_sat})
    run_id = _parameters_run(registry.client, template_id, config, "passed")
    report = {"template_id": template_id, "passed": True, "reasons": [],
              "candidate_hash": config.hash, "run_id": run_id, "speedup_factor": 1.5,
              "performance_baseline_s": 0.1, "validated_at": "2026-01-02T03:04:05Z",
              "instance_set": "0123456789abcdef", "summary": "Validation PASSED: a test."}
    if validated_on:
        report |= {"instances": sorted(Path(p).name for p in validated_on),
                   "instance_set": instance_set_hash(validated_on)}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "validation_report.json"
            path.write_text(json.dumps(report))
            registry.client.log_artifact(run_id, str(path))
    version = registry.register(template_id, config, report)
    if promote:
        registry.promote(template_id, version, "tester")
    return version


def registered_run(template_id: str) -> str:
    from fresh_solver.registry.registry import ParameterRegistry

    return ParameterRegistry().version(template_id, "1").tags["validation_run_id"]


def write_toml(path: Path, template_id: str) -> Path:
    path.write_text(f'[[retune]]\ntemplate_id = "{template_id}"\ngenerator_scale = "small"\n'
                    'generator_seed = 2\ntrain_instances = 1\nheld_out_instances = 2\n')
    return path


@pytest.fixture(scope="module")
def toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toml(tmp_path_factory.mktemp("dags") / "retune_templates.toml", "bm-gen")


@pytest.fixture(scope="module")
def empty_plan(tracking_home: Path, toml: Path) -> dict[str, Any]:
    """The plan of this module's registry before anything is registered in it."""
    return lifecycle.plan({}, toml)


@pytest.fixture(scope="module")
def served(empty_plan: dict[str, Any], toml: Path) -> dict[str, Any]:
    """Template ``bm-gen``: promoted, instances from its retune_templates.toml entry."""
    register("bm-gen", {"num_workers": 1})
    [template_plan] = lifecycle.plan({"templates": "bm-gen", **TINY}, toml)["templates"]
    return template_plan


# ---- plan -----------------------------------------------------------------------------------


def test_plan_without_registered_templates(empty_plan: dict[str, Any], served: dict[str, Any],
                                           tmp_path: Path) -> None:
    assert empty_plan == {"templates": [], "skipped": []}
    assert lifecycle.plan({"templates": "bm-gen"}, tmp_path / "absent.toml") == {
        "templates": [], "skipped": [{"template_id": "bm-gen", "reason": (
            "not in retune_templates.toml, and v1's validation run "
            f"{registered_run('bm-gen')} has no readable validation_report.json")}]}


def test_plan_lists_served_templates_with_their_instances(served: dict[str, Any],
                                                          tmp_path: Path) -> None:
    from fresh_solver import tracking
    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.problem import problem_to_dict

    assert served["template_id"] == "bm-gen" and served["version"] == "1"
    assert served["model"] == "fresh-solver-bm-gen"
    assert len(served["held_out"]) == 2 and served["instances"] == served["held_out"][:1]
    assert all(Path(p).is_file() and "-i100" in Path(p).name for p in served["held_out"])
    assert served["settings"]["repetitions"] == 2

    register("bm-staged", {"num_workers": 1}, promote=False)
    register("bm-unknown", {"num_workers": 1})
    folder = tracking.home() / "instances" / "bm-valset" / "by-hand"
    folder.mkdir(parents=True)
    files = []
    for i in range(2):
        path = folder / f"case-{i}.json"
        path.write_text(json.dumps(problem_to_dict(
            generate_family("small", 4, i, template_id="bm-valset"))))
        files.append(str(path))
    register("bm-valset", {"num_workers": 1}, validated_on=files)

    toml = write_toml(tmp_path / "retune_templates.toml", "bm-gen")
    planned = lifecycle.plan({"templates": "bm-gen,bm-staged,bm-unknown,bm-valset"}, toml)
    by_id = {t["template_id"]: t for t in planned["templates"]}
    assert sorted(by_id) == ["bm-gen", "bm-valset"]
    assert by_id["bm-valset"]["held_out"] == files
    assert by_id["bm-valset"]["source"] == "the held-out set v1 was validated on"
    skipped = {s["template_id"]: s["reason"] for s in planned["skipped"]}
    assert skipped["bm-staged"] == "no served Production version"
    assert "has no readable validation_report.json" in skipped["bm-unknown"]

    every = lifecycle.plan({}, toml)  # '*': every registered template
    assert {t["template_id"] for t in every["templates"]} >= {"bm-gen", "bm-valset"}


@pytest.mark.parametrize("conf, expected", [
    ({"templates": "nope"}, "nope not registered"),
    ({"templates": "a b"}, "is not '[*]' or comma-separated names"),
    ({"repetitions": 0}, "params.repetitions"),
    ({"time_limit": -1}, "params.time_limit"),
    ({"colour": "red"}, "Additional properties"),
])
def test_plan_refuses_bad_settings(served: dict[str, Any], conf: dict[str, Any],
                                   expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        lifecycle.plan(conf, None)


def test_plan_refuses_a_malformed_templates_file(served: dict[str, Any],
                                                 tmp_path: Path) -> None:
    bad = tmp_path / "retune_templates.toml"
    bad.write_text("[[retune]\n")
    with pytest.raises(InputError, match="malformed TOML"):
        lifecycle.plan({"templates": "bm-gen"}, bad)


# ---- benchmark and detect on real solves ----------------------------------------------------


def test_benchmark_is_idempotent_and_its_first_verdict_establishes_the_baseline(
        served: dict[str, Any]) -> None:
    first = lifecycle.benchmark(served, run_key="manual__bench-1")
    again = lifecycle.benchmark(served, run_key="manual__bench-1")
    assert again == {**first, "reused": True} and first["reused"] is False
    assert first["params_source"] == "registry:fresh-solver-bm-gen/1"
    assert set(first["solved"]) == {"template", "production"}
    run = client().get_run(first["run_id"])
    assert run.data.tags["fresh_solver.airflow_run"] == "manual__bench-1"
    assert run.data.params["configurations"] == "template,production"  # defaults set targets

    verdict = lifecycle.detect(served, first["run_id"])
    assert verdict["status"] == "baseline_established"
    assert verdict["baseline_source_run"] == first["run_id"]
    assert lifecycle.detect(served, first["run_id"]) == verdict  # recorded, not redone
    tags = client().get_run(first["run_id"]).data.tags
    assert tags["fresh_solver.regression"] == "baseline_established"
    assert tags["fresh_solver.baseline_run"] == verdict["baseline_run"]


def test_bad_input_to_the_tasks(served: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="missing 'instances'"):
        lifecycle.benchmark({"template_id": "bm-gen"})
    with pytest.raises(InputError, match="params.repetitions"):
        lifecycle.benchmark({**served, "settings": {**served["settings"], "repetitions": 0}})
    with pytest.raises(InputError, match="non-empty list of problem files"):
        lifecycle.revalidate({**served, "held_out": []})
    with pytest.raises(InputError, match="no MLflow run"):
        lifecycle.detect(served, "0" * 32)
    from fresh_solver.registry.registry import ParameterRegistry

    version_run = ParameterRegistry().version("bm-gen", "1").run_id  # not a benchmark run
    with pytest.raises(InputError, match="is not a benchmark of template 'bm-gen'"):
        lifecycle.detect(served, version_run)


# ---- detect on synthetic runs ---------------------------------------------------------------

BASE_TIMES = {"inst-a": 0.05, "inst-b": 0.2, "inst-c": 0.8}


def synthetic_run(template_id: str, *, machine: float, relative: float, seed: int,
                  config_hash: str = "c0ffee", repetitions: int = 8,
                  source: str | None = None) -> str:
    """A finished benchmark run whose defaults take ``machine`` x the base times and whose
    Production set takes ``relative`` x the defaults (both with 15 % log-normal noise)."""
    import ortools
    import pandas as pd
    from mlflow.entities import Param

    from fresh_solver import tracking
    from fresh_solver.fingerprint import fingerprint_id
    from fresh_solver.performance.mlflow_run import EXPERIMENT
    from fresh_solver.performance.runner import COLUMNS

    rng = random.Random(seed)
    c = client()
    here = fingerprint_id()
    run = c.create_run(tracking.experiment_id(c, EXPERIMENT), tags={
        "fresh_solver.kind": "benchmark", "fresh_solver.template_id": template_id,
        "fresh_solver.fingerprint": here, "ortools_version": ortools.__version__})
    rid = run.info.run_id
    params = {"configurations": "template,production", "reference": "template",
              "template_id": template_id, "config_hash.template": "defaults0",
              "config_hash.production": config_hash,
              "params_source.template": "defaults",
              "params_source.production": source or f"registry:fresh-solver-{template_id}/1",
              "instance_set": "synthetic", "seeds": "[0]", "time_limit_s": "5.0",
              "fingerprint": here, "ortools_version": ortools.__version__}
    c.log_batch(rid, params=[Param(k, v) for k, v in params.items()])
    rows = []
    for instance, base in BASE_TIMES.items():
        for repetition in range(repetitions):
            defaults = base * machine * rng.lognormvariate(0, 0.15)
            for name, t in (("template", defaults),
                            ("production", defaults * relative * rng.lognormvariate(0, 0.15))):
                rows.append({"configuration": name, "instance": instance, "seed": 0,
                             "repetition": repetition, "status": "OPTIMAL",
                             "time_to_target_s": t, "ortools_version": ortools.__version__,
                             "fingerprint": here})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.csv"
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(path, index=False)
        (Path(tmp) / "summary.json").write_text("{}")
        c.log_artifact(rid, str(path))
        c.log_artifact(rid, str(Path(tmp) / "summary.json"))
    c.set_terminated(rid, "FINISHED")
    return rid


@pytest.fixture
def alerts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every AlertManager.notify call (the real one runs) with what it returned."""
    from fresh_solver.operations.alerts import AlertManager

    calls: list[dict[str, Any]] = []
    real = AlertManager.notify

    def recording(self, name, summary, **kwargs):
        queued = real(self, name, summary, **kwargs)
        calls.append({"name": name, "summary": summary, "queued": queued, **kwargs})
        return queued

    monkeypatch.setattr(AlertManager, "notify", recording)
    return calls


def test_detect_judges_production_relative_to_the_defaults(
        served: dict[str, Any], alerts: list[dict[str, Any]]) -> None:
    template_plan = {**served, "template_id": "bm-syn", "model": "fresh-solver-bm-syn"}
    first = synthetic_run("bm-syn", machine=1.0, relative=0.5, seed=1)
    assert lifecycle.detect(template_plan, first)["status"] == "baseline_established"

    # The machine is 1.6x slower today: both configurations slow down, the ratio holds.
    loaded = synthetic_run("bm-syn", machine=1.6, relative=0.5, seed=2)
    quiet = lifecycle.detect(template_plan, loaded)
    assert quiet["status"] == "no_regression" and quiet["severity"] == "none"
    assert quiet["baseline_source_run"] == first
    assert quiet["machine_drift"] > 0.3 and quiet["absolute_change"] > 0.3
    assert abs(quiet["performance_change"]) < 0.2

    # Production became 2.5x slower relative to the defaults, on a normal day.
    slower = synthetic_run("bm-syn", machine=1.0, relative=1.25, seed=3)
    verdict = lifecycle.detect(template_plan, slower)
    assert verdict["status"] == "regression" and verdict["severity"] == "critical"
    assert sorted(verdict["regressed"]) == sorted(BASE_TIMES)
    assert verdict["performance_change"] > 1.0 and verdict["p_value"] < 0.05
    run = client().get_run(slower)
    assert run.data.tags["fresh_solver.regression"] == "regression"
    assert run.data.params["regression.status"] == "regression"
    assert run.data.params["regression.baseline_run"] == verdict["baseline_run"]
    assert run.data.metrics["regression.performance_change"] == verdict["performance_change"]

    assert lifecycle.detect(template_plan, slower) == verdict  # a retried task
    assert [(a["name"], a["severity"], a["key"], a["queued"]) for a in alerts] == [
        ("benchmark_regression", "critical", slower, True),
        ("benchmark_regression", "critical", slower, False)]  # queued once

    # An identical rerun of the baseline's conditions stays quiet.
    same = synthetic_run("bm-syn", machine=1.0, relative=0.5, seed=4)
    assert lifecycle.detect(template_plan, same)["status"] == "no_regression"

    # Another Production set (config hash) gets its own baseline.
    other = synthetic_run("bm-syn", machine=1.0, relative=1.25, seed=5, config_hash="beef")
    assert lifecycle.detect(template_plan, other)["status"] == "baseline_established"
    assert len(alerts) == 2


def test_a_benchmark_on_the_fallback_set_is_not_compared(served: dict[str, Any]) -> None:
    template_plan = {**served, "template_id": "bm-fallback"}
    run_id = synthetic_run("bm-fallback", machine=1.0, relative=1.0, seed=6,
                           source="fallback:registry unreachable (OSError); defaults")
    verdict = lifecycle.detect(template_plan, run_id)
    assert verdict["status"] == "not_compared" and "fallback:" in verdict["message"]
    assert client().get_run(run_id).data.tags["fresh_solver.regression"] == "not_compared"


def test_ratios_pair_the_configurations_by_instance_seed_and_repetition() -> None:
    import pandas as pd

    runs = pd.DataFrame([
        {"configuration": "template", "instance": "a", "seed": 0, "repetition": 0,
         "time_to_target_s": 2.0},
        {"configuration": "production", "instance": "a", "seed": 0, "repetition": 0,
         "time_to_target_s": 1.0},
        {"configuration": "template", "instance": "a", "seed": 0, "repetition": 1,
         "time_to_target_s": 4.0},
        {"configuration": "production", "instance": "a", "seed": 0, "repetition": 1,
         "time_to_target_s": 1.0},
        {"configuration": "template", "instance": "b", "seed": 1, "repetition": 0,
         "time_to_target_s": 0.0},  # floored, never a division by zero
        {"configuration": "production", "instance": "b", "seed": 1, "repetition": 0,
         "time_to_target_s": 0.0},
    ])
    from fresh_solver.performance.regression_stats import relative_ratios

    assert relative_ratios(runs, "production", "template") == {"a": [0.5, 0.25], "b": [1.0]}


# ---- revalidate -----------------------------------------------------------------------------


def test_revalidation_reasons() -> None:
    assert lifecycle.revalidation_reasons({}, "9.15", "abc") == []
    assert lifecycle.revalidation_reasons(
        {"ortools_version": "9.15", "machine_fingerprint": "abc"}, "9.15", "abc") == []
    assert lifecycle.revalidation_reasons(
        {"ortools_version": "9.14", "machine_fingerprint": "def"}, "9.15", "abc") == [
        "validated on OR-Tools 9.14, this is 9.15", "validated on machine def, this is abc"]


def test_revalidate_on_a_tag_mismatch_records_the_verdict_on_the_version(
        served: dict[str, Any]) -> None:
    from fresh_solver.fingerprint import fingerprint_id
    from fresh_solver.registry.registry import ParameterRegistry

    assert lifecycle.revalidate(served)["status"] == "not_needed"
    registry = ParameterRegistry()
    registry.client.set_model_version_tag("fresh-solver-bm-gen", "1", "ortools_version",
                                          "9.0.0")
    result = lifecycle.revalidate(served, run_key="manual__reval")
    assert result["status"] in ("passed", "failed")
    assert result["reasons"][0].startswith("validated on OR-Tools 9.0.0")
    tags = registry.version("bm-gen", "1").tags
    assert tags["revalidation_status"] == result["status"]
    assert tags["revalidation_run_id"] == result["validation_run_id"]
    assert tags["revalidated_machine_fingerprint"] == fingerprint_id()
    assert tags["revalidated_at"]
    run = client().get_run(result["validation_run_id"])
    assert run.data.params["revalidates"] == "fresh-solver-bm-gen/1"
    assert run.data.params["machine_fingerprint"] == fingerprint_id()
    assert run.data.params["seeds"] == "2" and run.data.params["time_limit_s"] == "0.2"
    assert run.data.tags["validation_status"] == result["status"]

    again = lifecycle.revalidate(served)  # on this machine and OR-Tools: reused
    assert again["validation_run_id"] == result["validation_run_id"]
    validations = client().search_runs(
        [client().get_experiment_by_name("fresh-solver/validation/bm-gen").experiment_id],
        filter_string="tags.`fresh_solver.revalidates` = 'fresh-solver-bm-gen/1'")
    assert len(validations) == 1


# ---- summarise ------------------------------------------------------------------------------


def test_summarise_reports_every_template_and_the_skipped() -> None:
    measured = {"template_id": "t1", "run_id": "r1", "params_source": "registry:m/1",
                "speedup": {"geomean": 1.5, "min": 1.1, "max": 2.0, "n": 8}}
    outcomes = [{"benchmark": measured,
                 "detection": {"status": "regression", "message": "REGRESSION (major)"},
                 "revalidation": {"status": "not_needed"}}]
    report = lifecycle.summarise({"skipped": [{"template_id": "t2", "reason": "why"}]},
                                 outcomes)
    assert report["regressions"] == ["t1"] and report["benchmarked"] == ["t1"]
    assert report["lines"] == [
        "t1: Production (registry:m/1) 1.50x geomean speedup [1.10-2.00] over 8 pairs vs "
        "the CP-SAT defaults (run r1); REGRESSION (major); re-validation not needed",
        "t2: skipped (why)"]
    assert lifecycle.summarise({"skipped": []}, [])["lines"] == [
        "no registered template: nothing to benchmark"]


def test_settings_defaults_are_the_modest_daily_budget() -> None:
    settings = resolve({})
    assert (settings["instances"], settings["repetitions"], settings["time_limit"]) == (3, 8, 2.0)


def test_relative_power_runs_on_detector_power_results(tmp_path: Path) -> None:
    """The measurement behind the relative design, on a small synthetic results.json: a
    block-2 slow-down of the whole machine alarms the absolute check, not the relative one."""
    from benchmarks import relative_power

    rng = random.Random(0)
    seeds = list(range(10))
    series = {}
    for name, scale in (("A1", 1.0), ("B1", 2.0), ("A2", 3.0), ("B2", 6.0)):
        series[name] = {i: [scale * base * rng.lognormvariate(0, 0.05) for _ in seeds]
                        for i, base in BASE_TIMES.items()}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"series": series, "instances": list(BASE_TIMES),
                                   "seeds": seeds, "command": "synthetic"}))
    assert relative_power.main([str(results), "--repetitions", "5", "--trials", "20",
                                "--out", str(tmp_path / "out")]) == 0
    [row] = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert row["relative_aa"] == 0.0 and row["absolute_aa"] == 1.0
    assert row["relative_1.5x"] == 1.0
    assert "| 5 | 0.0% | 100.0% | 100.0% | 100.0% |" in (tmp_path / "out" / "report.md"
                                                          ).read_text()
