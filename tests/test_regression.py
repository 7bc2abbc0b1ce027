"""RegressionDetector: statistical verdicts on synthetic distributions with known shifts,
baselines stored in MLflow, refusal of mixed contexts, change points, `benchmark regress`.

Benchmark runs are made here the way `fresh-solver benchmark run` logs them (runs.csv with the
runner's columns, tags fresh_solver.kind=benchmark and fresh_solver.template_id), so these
tests do not depend on the runner.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fresh_solver.errors import InputError
from fresh_solver.performance.regression import RegressionDetector
from fresh_solver.performance.regression_stats import (
    SEVERITIES,
    change_points,
    compare_instances,
    severity_of,
)

COLUMNS = ("configuration", "instance", "jobs", "tasks", "seed", "repetition", "status",
           "objective", "best_bound", "wall_time_s", "time_to_first_s", "time_to_target_s",
           "time_to_optimum_s", "num_workers", "build_time_s", "peak_rss_mb", "params_source",
           "ortools_version", "fingerprint")


def sample(median: float, n: int, seed: int, spread: float = 0.15) -> list[float]:
    """Log-normal solve times around ``median``: the shape repeated CP-SAT times have."""
    return list(median * np.random.default_rng(seed).lognormal(0, spread, n))


def instances(factor: float, n: int = 12, seed: int = 0) -> dict[str, list[float]]:
    return {f"inst-{k}": sample((k + 1) * 0.5 * factor, n, seed + 100 * k) for k in range(3)}


def log_benchmark(tmp_path: Path, template_id: str, configs: dict[str, dict[str, list[float]]],
                  *, fingerprint: str = "fp-a", ortools_version: str = "9.15.6755") -> str:
    """A finished benchmark run with a runs.csv of the runner's columns."""
    import pandas as pd

    from fresh_solver import tracking

    rows = []
    for name, per_instance in configs.items():
        for instance, times in per_instance.items():
            for rep, t in enumerate(times):
                rows.append({"configuration": name, "instance": instance, "jobs": 4, "tasks": 12,
                             "seed": 0, "repetition": rep, "status": "OPTIMAL", "objective": 50,
                             "best_bound": 50, "wall_time_s": t, "time_to_first_s": t / 4,
                             "time_to_target_s": t, "time_to_optimum_s": t, "num_workers": 1,
                             "build_time_s": 0.001, "peak_rss_mb": 100.0,
                             "params_source": "defaults", "ortools_version": ortools_version,
                             "fingerprint": fingerprint})
    client = tracking.client()
    run = client.create_run(tracking.experiment_id(client, "fresh-solver/benchmarks"), tags={
        "fresh_solver.kind": "benchmark", "fresh_solver.template_id": template_id})
    rid = run.info.run_id
    client.log_param(rid, "time_limit_s", "10.0")
    folder = tmp_path / rid
    folder.mkdir()
    pd.DataFrame(rows, columns=COLUMNS).to_csv(folder / "runs.csv", index=False)
    client.log_artifact(rid, str(folder / "runs.csv"))
    client.set_terminated(rid, "FINISHED")
    return rid


# -- the decision on synthetic distributions -------------------------------------------------


def test_equal_distributions_are_quiet() -> None:
    """A/A: 40 comparisons of independent samples of one distribution raise (almost) no
    alarm; Holm across the three instances keeps the family-wise rate at alpha."""
    alarms = sum(any(r.regression for r in compare_instances(
        instances(1.0, seed=s), instances(1.0, seed=1000 + s), n_resamples=0))
        for s in range(40))
    assert alarms <= 3


def test_a_shifted_distribution_is_flagged_with_its_effect() -> None:
    rows = compare_instances(instances(1.0), instances(1.6, seed=7))
    assert all(r.regression for r in rows)
    for r in rows:
        assert 1.3 < r.ratio < 2.0
        assert r.ci_low < r.ratio < r.ci_high
        assert r.p_adjusted <= 0.05 and r.p_adjusted >= r.p_value


def test_a_small_significant_shift_stays_below_the_threshold() -> None:
    """1.1x with many samples is statistically clear but under the 1.2x effect threshold."""
    rows = compare_instances({"a": sample(1.0, 60, 1, 0.02)}, {"a": sample(1.1, 60, 2, 0.02)})
    assert rows[0].p_adjusted < 1e-6 and not rows[0].regression
    assert rows[0].severity == "none"


def test_severity_is_monotone_in_the_shift() -> None:
    seen = []
    for factor in (1.0, 1.1, 1.3, 1.7, 2.5, 4.0):
        rows = compare_instances({"a": sample(1.0, 20, 1, 0.05)},
                                 {"a": sample(factor, 20, 2, 0.05)})
        seen.append(SEVERITIES.index(rows[0].severity))
    assert seen == sorted(seen)
    assert [SEVERITIES[i] for i in seen] == ["none", "none", "minor", "major", "critical",
                                             "critical"]
    assert [severity_of(r) for r in (1.0, 1.2, 1.5, 2.0)] == ["none", "minor", "major",
                                                              "critical"]


def test_change_point_found_at_the_step() -> None:
    rng = np.random.default_rng(3)
    series = list(np.where(np.arange(20) >= 12, 1.5, 1.0) * rng.lognormal(0, 0.05, 20))
    assert change_points(series) == [12]
    assert change_points(list(rng.lognormal(0, 0.05, 20))) == []
    assert change_points([1.0, 2.0]) == []


# -- stored baselines and runs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Benchmark runs of template `part` (and one of `other`), made once for the module."""
    tmp = tmp_path_factory.mktemp("runs")
    two = {"baseline": instances(3.0), "template": instances(1.0)}
    return {
        "before": log_benchmark(tmp, "part", two),
        "same": log_benchmark(tmp, "part", {"baseline": instances(3.0, seed=5),
                                            "template": instances(1.0, seed=5)}),
        "slower": log_benchmark(tmp, "part", {"baseline": instances(3.0, seed=6),
                                              "template": instances(1.8, seed=6)}),
        "other_machine": log_benchmark(tmp, "part", {"template": instances(1.0, seed=8)},
                                       fingerprint="fp-b"),
        "other_ortools": log_benchmark(tmp, "part", {"template": instances(1.0, seed=9)},
                                       ortools_version="9.14.0"),
        "other_template": log_benchmark(tmp, "gear", {"template": instances(1.0, seed=10)}),
    }


def test_baseline_from_a_benchmark_run_is_a_stored_distribution(runs: dict[str, str]) -> None:
    from fresh_solver import tracking

    detector = RegressionDetector()
    base = detector.establish_baseline("part", from_run=runs["before"], configuration="template")
    assert base.evidence == "distribution" and base.source_run == runs["before"]
    assert sorted(base.times) == ["inst-0", "inst-1", "inst-2"]
    assert all(len(t) == 12 for t in base.times.values())
    assert base.fingerprints == ("fp-a",) and base.ortools_versions == ("9.15.6755",)
    run = tracking.client().get_run(base.run_id)
    assert run.data.tags["fresh_solver.kind"] == "baseline"
    assert run.data.params["evidence"] == "distribution"
    assert detector.baseline("part", "template").times == base.times

    quiet = detector.check_regression("part", current_run=runs["same"])
    assert not quiet and quiet.severity == "none" and quiet.configuration == "template"
    slow = detector.check_regression("part", current_run=runs["slower"])
    assert slow and slow.is_significant and slow.severity == "major"
    assert 0.5 < slow.performance_change < 1.1
    assert slow.p_value <= 0.05 and len(slow.rows) == 3
    assert slow.baseline_run_id == base.run_id and slow.current_run_id == runs["slower"]


def test_mixed_contexts_are_refused_unless_allowed(runs: dict[str, str]) -> None:
    detector = RegressionDetector()
    for key, what in (("other_machine", "machine fingerprint"),
                      ("other_ortools", "OR-Tools version")):
        with pytest.raises(InputError, match=what):
            detector.compare_runs(runs["before"], runs[key], "template")
        flagged = detector.compare_runs(runs["before"], runs[key], "template", allow_mixed=True)
        assert flagged.mixed and any(what in w for w in flagged.warnings)


def test_a_baseline_of_another_template_is_refused(runs: dict[str, str]) -> None:
    detector = RegressionDetector()
    with pytest.raises(InputError, match="template"):
        detector.check_regression("part", current_run=runs["same"],
                                  baseline_run=runs["other_template"])
    with pytest.raises(InputError, match="template"):
        detector.compare_runs(runs["before"], runs["other_template"], "template")
    with pytest.raises(InputError, match="template"):
        detector.establish_baseline("part", from_run=runs["other_template"])


def test_single_number_baseline_is_recorded_as_weak_evidence(runs: dict[str, str]) -> None:
    """The seed's form: establish_baseline(id, baseline_time=5.2), check with current_time."""
    from fresh_solver import tracking

    detector = RegressionDetector()
    base = detector.establish_baseline("seedform", baseline_time=5.2)
    assert base.evidence == "single_number"
    assert tracking.client().get_run(base.run_id).data.tags["fresh_solver.evidence"] == (
        "single_number")
    regression = detector.check_regression("seedform", current_time=8.1)
    assert regression and regression.weak_evidence and regression.p_value is None
    assert regression.performance_change == pytest.approx(8.1 / 5.2 - 1)
    assert regression.baseline_time == pytest.approx(5.2)
    assert any("weak evidence" in w for w in regression.warnings)
    assert not detector.check_regression("seedform", current_time=5.5)
    assert detector.check_regression("seedform", 8.1).is_significant  # seed: (id, solve_time)


def test_bad_input_is_an_input_error(runs: dict[str, str]) -> None:
    detector = RegressionDetector()
    with pytest.raises(InputError, match="compares baseline, template"):
        detector.compare_runs(runs["before"], runs["same"])
    with pytest.raises(InputError, match="no configuration 'fast'"):
        detector.compare_runs(runs["before"], runs["same"], "fast")
    with pytest.raises(InputError, match="no baseline for template 'nothing'"):
        detector.check_regression("nothing", current_time=1.0)
    with pytest.raises(InputError, match="exactly one"):
        detector.establish_baseline("part", baseline_time=1.0, times={"a": [1.0]})
    with pytest.raises(InputError):
        RegressionDetector(threshold=0.5)


def test_slowdowns_name_the_run_a_slow_down_started_at(tmp_path: Path) -> None:
    """A history of benchmark runs with a 1.6x step after the sixth: the change is found at
    the seventh run, as a slow-down on an unchanged machine."""
    run_ids = [log_benchmark(tmp_path, "hist", {"template": instances(
        1.6 if k >= 6 else 1.0, n=6, seed=50 + k)}) for k in range(10)]
    found = RegressionDetector().slowdowns("hist", "template")
    assert [p["run_id"] for p in found["history"]] == run_ids
    (change,) = found["changes"]
    assert change["index"] == 6 and change["run_id"] == run_ids[6]
    assert change["slowdown"] and 1.3 < change["ratio"] < 2.0
    assert not change["context_changed"]


# -- the command -----------------------------------------------------------------------------


def regress(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from fresh_solver.cli import main

    code = main(["benchmark", "regress", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_regress_command_exit_codes_and_json(runs: dict[str, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = regress(capsys, "--baseline", runs["before"], "--current", runs["slower"],
                           "--configuration", "template", "--json")
    data = json.loads(out)
    assert code == 1 and data["regression"] is True
    assert data["performance_change"] > 0.5 and data["p_value"] <= 0.05
    assert [r["instance"] for r in data["rows"]] == ["inst-0", "inst-1", "inst-2"]
    assert {"ratio", "p_value", "p_adjusted", "regression", "severity"} <= set(data["rows"][0])

    code, out, _ = regress(capsys, "--baseline", runs["before"], "--current", runs["same"],
                           "--configuration", "template", "--json")
    assert code == 0 and json.loads(out)["regression"] is False

    code, out, err = regress(capsys, "--baseline", runs["before"], "--current", runs["same"],
                             "--configuration", "template")
    assert code == 0 and out == "" and "regression" in err and "inst-2" in err

    code, out, err = regress(capsys, "--baseline", "0" * 32, "--current", runs["same"])
    assert code == 2 and out == "" and "no MLflow run" in err
    code, _, err = regress(capsys, "--baseline", runs["before"], "--current",
                           runs["other_machine"], "--configuration", "template")
    assert code == 2 and "machine fingerprint" in err


def test_detector_power_smoke(tmp_path: Path) -> None:
    """The power benchmark runs end to end on tiny settings and reports every rate."""
    from benchmarks import detector_power

    out = tmp_path / "power"
    assert detector_power.main(["--scale", "small", "--families", "1,2", "--seeds", "4",
                                "--repetitions", "2", "--trials", "20", "--time-limit", "2",
                                "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["num_workers"] == 1 and data["seeds"] == [0, 1, 2, 3]
    assert data["config_b"]["cp_sat"]["cp_model_presolve"] is False
    (row,) = data["rows"]
    for key in detector_power.SCENARIOS:
        assert 0 <= row[key]["rate"] <= 1
        assert set(row[key]["per_instance"]) == {"small-1", "small-2"}
    assert set(data["series"]) == {"A1", "B1", "A_twin1", "A2", "B2"}
    assert all(len(t) == 4 for per in data["series"].values() for t in per.values())
    assert "synthetic" in (out / "report.md").read_text()


def test_baseline_command_stores_a_run_that_regress_compares_against(
        runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    from fresh_solver.cli import main

    code = main(["benchmark", "baseline", "--template-id", "part", "--from-run", runs["before"],
                 "--configuration", "template", "--json"])
    stored = json.loads(capsys.readouterr().out)
    assert code == 0 and stored["source_run"] == runs["before"]
    assert stored["evidence"] == "distribution" and len(stored["times"]) == 3
    code, out, _ = regress(capsys, "--baseline", stored["run_id"], "--current", runs["slower"],
                           "--configuration", "template", "--json")
    assert code == 1 and json.loads(out)["regression"] is True

    code = main(["benchmark", "baseline", "--template-id", "elsewhere", "--from-run",
                 runs["before"], "--configuration", "template"])
    out = capsys.readouterr()
    assert code == 2 and out.out == "" and "not 'elsewhere'" in out.err
