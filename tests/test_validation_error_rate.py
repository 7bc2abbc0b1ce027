"""The validation error-rate benchmark: its A/A runs, its summary and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import validation_error_rate as bench


def test_an_aa_measurement_reports_its_pass_rate_with_an_interval(tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.delenv("FRESH_SOLVER_HOME", raising=False)  # it makes its own
    out = tmp_path / "aa"
    assert bench.main(["--setting", "api", "--runs", "2", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert [r["run"] for r in data["rows"]] == [0, 1]
    assert all(r["pairs"] == 6 and r["median_repeats"] >= 1 for r in data["rows"])
    summary = data["summary"]
    assert summary["runs"] == 2 and 0 <= summary["passed"] <= 2
    low, high = summary["pass_rate_ci95"]
    assert 0 <= low <= summary["pass_rate"] <= high <= 1
    assert "| runs | passed | pass rate (95 % CI) |" in (out / "report.md").read_text()


def test_a_set_against_itself_as_production_reports_the_production_comparison(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FRESH_SOLVER_HOME", raising=False)
    served = tmp_path / "served.json"
    served.write_text(json.dumps({"cp_sat": {"num_workers": 2}}))
    out = tmp_path / "itself"
    assert bench.main(["--setting", "api", "--runs", "1", "--candidate", str(served),
                       "--production", str(served), "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["rows"][0]["vs_production"] > 0
    assert data["summary"]["vs_production_median"] == data["rows"][0]["vs_production"]
    assert "Candidate vs Production: median" in (out / "report.md").read_text()


def test_an_aa_measurement_judged_by_the_gap_integral_says_so(tmp_path: Path,
                                                               monkeypatch) -> None:
    monkeypatch.delenv("FRESH_SOLVER_HOME", raising=False)
    out = tmp_path / "gap"
    assert bench.main(["--setting", "api", "--runs", "1", "--metric", "gap_integral",
                       "--scale", "small", "--family-seeds", "3", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert (data["metric"], data["scale"], data["family_seeds"]) == ("gap_integral", "small", [3])
    assert "judged by gap_integral), small family seeds [3]" in (out / "report.md").read_text()


def test_the_exact_interval_of_no_pass_in_a_hundred() -> None:
    low, high = bench.proportion_ci(0, 100)
    assert low == 0 and high == pytest.approx(0.0362, abs=1e-4)


@pytest.mark.parametrize(("args", "message"), [
    (["--runs", "0"], "--runs must be >= 1"),
    (["--family-seeds", "ten"], "--family-seeds"),
    (["--candidate", "/nowhere.json"], "--candidate /nowhere.json: cannot read"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert bench.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
