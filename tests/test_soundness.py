"""A configuration under which CP-SAT proves a wrong optimum is a suspect, never a crash, and
never reaches production (issue 23; the case of shared/cases/unsound-symmetry-disjunctive,
shipped as fresh_solver/params/unsound_cases/symmetry4-strong-disjunctive.json).

Two ways in: a combination already known (params/known_unsound.toml) is refused before any
solve; an unknown one is caught by what it does (a proof some schedule beats). The tests of the
second path replace the known list by an empty one (``FRESH_SOLVER_KNOWN_UNSOUND``), so the
shared case plays an unsound configuration nobody has recorded yet.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fresh_solver import production
from fresh_solver.errors import InputError
from fresh_solver.measure import Target, UnsoundClaim, time_to_target
from fresh_solver.model import problem_from_dict
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.unsound import known_unsound, ortools_version, unsound_match
from fresh_solver.registry.registry import ParameterRegistry
from fresh_solver.solver import solve
from tests.test_production import after_refresh, corrupt_version, served, source_of
from tests.test_registry import ui_alias

FRESH_SOLVER = str(Path(sys.executable).parent / "fresh-solver")
[CASE_ENTRY] = [c for c in known_unsound() if c.id == "symmetry4-strong-disjunctive"]
CASE = CASE_ENTRY.load_case()
# The point of the default space that first showed it (tuner seed 0's fourth trial).
FULL_POINT = {
    "cp_sat": {"cp_model_probing_level": 2, "linearization_level": 2,
               "lns_initial_difficulty": 0.781559875750937, "num_violation_ls": 1,
               "num_workers": 2, "optimize_with_core": False,
               "presolve_probing_deterministic_time_limit": 1.3223795076947775,
               "search_branching": "AUTOMATIC_SEARCH", "symmetry_level": 4,
               "use_dynamic_precedence_in_disjunctive": False, "use_lns": True,
               "use_overload_checker_in_cumulative": False, "use_rins_lns": True,
               "use_strong_propagation_in_disjunctive": True,
               "use_timetable_edge_finding_in_cumulative": True},
    "model": {"symmetry_breaking": False, "redundant_bounds": False, "warm_start": True,
              "search_strategy": True, "tardiness_hint": True}}
# Every point of this space is the shared case's reduced combination.
UNSOUND_SPACE = """
[cp_sat.symmetry_level]
kind = "categorical"
values = [4]
[cp_sat.use_strong_propagation_in_disjunctive]
kind = "categorical"
values = [true]
[model.symmetry_breaking]
kind = "categorical"
values = [false]
[model.warm_start]
kind = "categorical"
values = [true]
"""
UNSOUND_REASON = re.compile(r"unsound: proved (\d+) where 105 is feasible \((\S+), seed 0\)")


@pytest.fixture(scope="module")
def case_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("unsound_case")
    problem = folder / "family.json"
    problem.write_text(json.dumps(CASE["problem"]))
    (folder / "full_point.json").write_text(json.dumps(FULL_POINT))
    (folder / "space.toml").write_text(UNSOUND_SPACE)
    (folder / "empty_known_unsound.toml").write_text("# nothing known yet\n")
    return {"problem": problem, "full_point": folder / "full_point.json",
            "space": folder / "space.toml", "nothing_known": folder / "empty_known_unsound.toml"}


@pytest.fixture
def nothing_known(case_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRESH_SOLVER_KNOWN_UNSOUND", str(case_files["nothing_known"]))


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FRESH_SOLVER, *args], capture_output=True, text=True, timeout=300,
                          env=os.environ | (env or {}))


# ---- the known-unsound data -------------------------------------------------------------------


def test_every_known_case_is_rechecked_on_the_installed_ortools() -> None:
    """Says whether the installed OR-Tools still shows each recorded combination: a version
    not yet listed fails with the answer, so an upgrade re-checks the list."""
    installed = ortools_version()
    for entry in known_unsound():
        case = entry.load_case()
        result = solve(problem_from_dict(case["problem"]), model="template",
                       options=SolverConfig.from_dict(case["config"]).model,
                       params=case["config"]["cp_sat"], time_limit=30, seed=case["seed"])
        shows = result.optimal and result.objective > case["feasible"]
        what = (f"{entry.id} on OR-Tools {installed}: "
                + (f"still proves {result.objective} where {case['feasible']} is feasible"
                   if shows else f"no wrong proof ({result.status} {result.objective})"))
        if installed in entry.fixed_in:
            assert not shows, f"{what}, but known_unsound.toml lists it as fixed here"
        else:
            assert installed in entry.seen_on, \
                f"{what}: record {installed} in its seen_on (shows) or fixed_in (does not)"
            assert shows, f"{what}: move {installed} to fixed_in"


def test_the_combination_matches_what_holds_it_and_nothing_else() -> None:
    assert unsound_match(SolverConfig.from_dict(FULL_POINT)) == CASE_ENTRY
    assert unsound_match(SolverConfig.from_dict(CASE["config"])) == CASE_ENTRY
    assert unsound_match(SolverConfig()) is None
    model_on = SolverConfig.from_dict(FULL_POINT | {"model": {"symmetry_breaking": True}})
    assert unsound_match(model_on) is None  # the model's own symmetry breaking gives 105
    # the model switches exist only on the template model: the baseline solves it right
    assert unsound_match(SolverConfig.from_dict(FULL_POINT), model="baseline") is None


def test_a_proof_that_a_known_schedule_beats_is_an_unsound_claim() -> None:
    wrong = solve(problem_from_dict(CASE["problem"]), model="template",
                  options=SolverConfig.from_dict(CASE["config"]).model,
                  params=CASE["config"]["cp_sat"], time_limit=30, seed=0)
    for proven in (True, False):
        with pytest.raises(UnsoundClaim, match=r"^unsound: proved \d+ where 105 is feasible$"):
            time_to_target(wrong, Target(105, proven, 30))


# ---- where parameters are applied ---------------------------------------------------------


def test_solve_refuses_a_known_unsound_parameter_file(case_files: dict[str, Path]) -> None:
    done = cli("solve", str(case_files["problem"]), "--params", str(case_files["full_point"]),
               "--json")
    assert done.returncode == 2
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert "known unsound combination 'symmetry4-strong-disjunctive'" in done.stderr
    assert f"--params {case_files['full_point']}" in done.stderr
    baseline = cli("solve", str(case_files["problem"]), "--params",
                   str(case_files["full_point"]), "--model", "baseline", "--json")
    assert baseline.returncode == 0, baseline.stderr
    assert json.loads(baseline.stdout)["objective"] == 105


def test_tune_scores_an_unsound_trial_failed_and_finishes(case_files: dict[str, Path]) -> None:
    done = cli("tune", "--template-id", "part", "--instances", str(case_files["problem"]),
               "--trials", "1", "--trial-time-limit", "10", "--seeds", "1", "--space",
               str(case_files["space"]), "--json",
               env={"FRESH_SOLVER_KNOWN_UNSOUND": str(case_files["nothing_known"])})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert summary["unsound_trials"] == 1 and not summary["tuned"]
    reason = summary["unsound"]["1"]
    assert UNSOUND_REASON.fullmatch(reason).group(2) == "family.json"
    from fresh_solver import tracking

    client = tracking.client()
    [trial] = client.search_runs(
        [client.get_experiment_by_name("fresh-solver/tuning/part").experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{summary['run_id']}' and "
                      "tags.fresh_solver.trial = '1'")
    assert trial.info.status == "FAILED"
    assert trial.data.tags["fresh_solver.unsound"] == reason
    assert client.get_run(summary["run_id"]).data.metrics["unsound_trials"] == 1


def test_a_session_never_keeps_a_trial_whose_proof_a_later_schedule_beats(
        case_files: dict[str, Path], nothing_known: None) -> None:
    """Retroactive: trial 1 proved the wrong optimum before anything had found 105 (the
    reference here is a fake that found nothing); trial 2's schedule refutes it."""
    from fresh_solver.tuning.scoring import Evaluation, RunScore
    from fresh_solver.tuning.session import TuningSession, TuningSpec

    spec = TuningSpec("part", (str(case_files["problem"]),), trials=2, trial_time_limit=10,
                      seeds=1, space_path=str(case_files["space"]))
    session = TuningSession.from_spec(spec)
    run = lambda objective, status: RunScore("family.json", 0, 1.0, status, objective, 1.0)  # noqa: E731
    session.tell_reference(Evaluation(20.0, [run(None, "UNKNOWN")]))
    point = [4, True, False, True]
    session.tell([point], [Evaluation(0.5, [run(108, "OPTIMAL")])])
    assert session.best.index == 1
    session.tell([point], [Evaluation(3.0, [run(105, "FEASIBLE")])])
    assert session.unsound_trials == {
        1: "unsound: proved 108 where 105 is feasible (family.json, seed 0)"}
    assert session.best.index == 2


def test_validate_refuses_a_known_unsound_candidate(case_files: dict[str, Path]) -> None:
    done = cli("validate", "--template-id", "part", "--params", str(case_files["full_point"]),
               "--instances", str(case_files["problem"]), "--seeds", "1", "--time-limit", "5")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "known unsound combination 'symmetry4-strong-disjunctive'" in done.stderr


def test_validate_fails_a_candidate_that_proves_a_wrong_optimum_whatever_its_speed(
        case_files: dict[str, Path], nothing_known: None) -> None:
    from fresh_solver.validation.compare import PassRule
    from fresh_solver.validation.validator import validate

    # no speed or significance demanded: only soundness can fail it
    rule = PassRule(min_speedup=0.0, max_p_value=1.01, quality_tolerance=1.0)
    report = validate("part", SolverConfig.from_dict(FULL_POINT),
                      (str(case_files["problem"]),), [0], 10.0, rule, track=False)
    assert not report.passed
    [reason] = report.reasons
    assert UNSOUND_REASON.fullmatch(reason)
    assert "Failed because: unsound: proved" in report.summary()


def test_the_loader_refuses_a_served_unsound_set_and_serves_the_last_good_one(
        registry: ParameterRegistry, tid: str) -> None:
    good, cfg = served(registry, tid, 7)
    assert after_refresh(tid).source == source_of(tid, good)
    bad = corrupt_version(registry, tid, FULL_POINT)  # validated, as far as its run says
    with pytest.raises(InputError, match="may not be promoted: known unsound combination"):
        registry.promote(tid, bad, "reviewer")
    assert registry.serving(tid).version == good
    ui_alias(registry, tid, bad)  # a reviewer moves the alias in the MLflow UI
    decision = registry.serving(tid)
    assert decision.version == good
    [refusal] = decision.refused
    assert refusal.startswith(f"v{bad} (alias): known unsound combination")
    production.clear_cache()
    before = len(production.recent_fallbacks())
    resolved = production.refresh(tid)
    assert resolved.source == source_of(tid, good) and resolved.config == cfg
    events = production.recent_fallbacks()[before:]
    assert [e["kind"] for e in events] == ["refusal"]
    assert "known unsound combination 'symmetry4-strong-disjunctive'" in events[0]["why"]


def test_the_documents_api_reports_a_known_unsound_set_invalid_without_solving(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fresh_solver.templates.manager import ParameterManager
    from fresh_solver.validation import validator

    monkeypatch.setattr(validator, "measure_pairs", None)  # a solve would fail the test
    result = ParameterManager().validate_parameters("part", FULL_POINT)
    assert not result.is_valid and result.speedup_factor is None
    [reason] = result.validation_errors
    assert "known unsound combination 'symmetry4-strong-disjunctive'" in reason
