"""The soundness sweep: its reducer brings the point that first showed the known-unsound
combination down to that combination, its verdicts and case files, and the command end to end
on a tiny sweep. No figure of this machine is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks import soundness_sweep as ss
from fresh_solver.model import problem_from_dict, problem_to_dict
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.unsound import CASES, unsound_match
from tests.test_soundness import FULL_POINT  # the point that first showed it

CASE = json.loads((CASES / "symmetry4-strong-disjunctive.json").read_text())


def _sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", ss.MODULE, *args], capture_output=True,
                          text=True, timeout=300)


def test_reducer_finds_the_known_combination_in_the_full_point() -> None:
    """The disagreeing solves take well under a second; the 4 s limit only cuts short the
    ones that agree (without symmetry_level they search on, FEASIBLE 105)."""
    problem = problem_from_dict(CASE["problem"])
    reduced = ss.reduce_combination(problem, SolverConfig.from_dict(FULL_POINT),
                                    CASE["feasible"], seed=CASE["seed"], time_limit=4.0)
    assert ss.combination(reduced) == {
        "cp_sat": {"symmetry_level": 4, "use_strong_propagation_in_disjunctive": True},
        "model": {"symmetry_breaking": False, "warm_start": True}}
    assert unsound_match(reduced).id == "symmetry4-strong-disjunctive"


def _result(status: str, objective: int | None, valid: bool | None = True) -> SimpleNamespace:
    return SimpleNamespace(status=status, objective=objective, valid=valid,
                           optimal=status == "OPTIMAL")


@pytest.mark.parametrize(("result", "verdict"), [
    (_result("OPTIMAL", 105), None),
    (_result("FEASIBLE", 110), None),  # a time limit is no claim
    (_result("UNKNOWN", None, None), None),
    (_result("OPTIMAL", 108), "wrong-optimum"),
    (_result("FEASIBLE", 104), "below-optimum"),
    (_result("FEASIBLE", 105, False), "invalid-schedule"),
    (_result("INFEASIBLE", None, None), "claimed-infeasible"),
])
def test_a_disagreement_is_a_claim_the_known_optimum_contradicts(result, verdict) -> None:
    assert ss.disagreement(result, 105) == verdict


def test_a_case_file_reproduces_in_the_shipped_format() -> None:
    problem = problem_from_dict(CASE["problem"])
    reference = ss.Reference(problem, "the shipped case", 105, {})
    config = SolverConfig.from_dict(CASE["config"])
    reduction = {"point": 7, "kind": "wrong-optimum", "status": "OPTIMAL", "claimed": 108,
                 "combination": ss.combination(config)}
    case = ss.case_file(reduction, reference, seed=0)
    assert set(case) == set(CASE)
    assert (case["format"], case["feasible"], case["claimed"], case["seed"]) == (
        CASE["format"], 105, 108, 0)
    assert case["config"] == CASE["config"]
    assert problem_to_dict(problem_from_dict(case["problem"])) == problem_to_dict(problem)


def test_a_tiny_sweep_writes_every_solve_and_the_totals(tmp_path: Path) -> None:
    """A 1 s limit keeps the problem selection short (a reference must prove within it)."""
    out = tmp_path / "sweep"
    done = _sweep("--points", "3", "--problems", "2", "--time-limit", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads((out / "sweep.json").read_text())
    assert data["complete"] and data["points_asked"] == 3
    assert {p["objective"] for p in data["problems"]} == {"makespan", "weighted_tardiness"}
    assert all(p["optimum"] > 0 for p in data["problems"])
    totals = data["totals"]
    # the 2 generated problems and the known cases' problems (controls) that the defaults
    # proved within the limit, on every valid point
    assert totals["problems"] == {"makespan": 1, "weighted_tardiness": 1}
    assert totals["controls"] == sum(p["control"] for p in data["problems"])
    assert totals["solves"] == (2 + totals["controls"]) * (3 - totals["invalid_points"])
    assert len(data["outcomes"]["rows"]) == totals["solves"]
    assert totals["disagreements"] == len(data["disagreements"])
    assert totals["distinct_combinations"] == (totals["known_combinations"]
                                               + totals["new_combinations"])
    summary = (out / "summary.md").read_text()
    assert f"| solves | {totals['solves']} |" in summary
    assert "soundness_sweep --points 3 --problems 2" in summary
    assert "[3/3 points]" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--points", "0", "--problems", "2"], "--points must be >= 1"),
    (["--points", "3", "--problems", "0"], "--problems must be >= 1"),
    (["--points", "3", "--problems", "2", "--time-limit", "0"], "--time-limit must be"),
    (["--points", "3", "--problems", "2", "--space", "no-such-space"], "--space no-such-space"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert ss.main([*args, "--out", str(out)]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_the_command_refuses_an_out_that_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.write_text("keep")
    done = _sweep("--points", "1", "--problems", "1", "--out", str(out))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "--out" in done.stderr and out.read_text() == "keep"
