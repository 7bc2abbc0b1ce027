"""Validation (fresh_solver.validation): the paired comparison and its statistics, the pass rule,
a tracked end-to-end validation, and the `validate` command.

The statistics are tested on fabricated SolveResults. The end-to-end runs use three tiny
generated instances x 2 seeds at 0.3 s, on an embedded SQLite MLflow store in a temporary
FRESH_SOLVER_HOME shared by the module. Which candidate is faster on such instances is a matter
of milliseconds, so no test relies on a candidate *passing* on speed: a passing run uses a
lenient rule, and the failing candidate fails deterministically (it finds no solution at all).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from fresh_solver.cli import main
from fresh_solver.errors import InputError
from fresh_solver.measure import TARGET, measure_pairs, wilcoxon_p
from fresh_solver.model.generate import generate, generate_family
from fresh_solver.model.problem import problem_to_dict
from fresh_solver.params.config import SolverConfig
from fresh_solver.registry.registry import ParameterRegistry
from fresh_solver.solver import SolveResult
from fresh_solver.validation.compare import Comparison, PairResult, PassRule, compare
from fresh_solver.validation.validator import ValidationReport, judge, validate

LIMIT = 0.3
T = 2.0  # the time limit of the fabricated comparisons
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Stops before searching: no solution on any pair, so it fails on every count but validity.
BAD = {"cp_sat": {"max_deterministic_time": 0.0}}
GOOD = {"cp_sat": {"num_workers": 1}}
LENIENT = PassRule(min_speedup=0.0, max_p_value=1.01)  # passes unless quality or validity fail


# ---- fabricated results ---------------------------------------------------------------------


def fake(objective: int | None, status: str | None = None, wall: float = 1.0,
         improvements: list[tuple[float, int]] | None = None,
         violations: list[str] | None = None) -> SolveResult:
    """A SolveResult; by default one improvement to ``objective`` at ``wall``."""
    if status is None:
        status = "UNKNOWN" if objective is None else "OPTIMAL"
    if improvements is None:
        improvements = [] if objective is None else [(wall, objective)]
    return SolveResult(
        status=status, objective=objective, best_bound=None, wall_time_s=wall,
        build_time_s=0.0, time_to_first_s=improvements[0][0] if improvements else None,
        time_to_best_s=improvements[-1][0] if improvements else None,
        improvements=improvements, num_workers=1, model="template", model_size={}, stats={},
        schedule=None, violations=violations if objective is not None else None)


def paired(results: list[SolveResult]) -> dict[tuple[str, int], list[SolveResult]]:
    """One run per pair, as :func:`measure_pairs` gives for solves long enough to time once."""
    return {(f"i{k}", 0): [r] for k, r in enumerate(results)}


def optimal_pairs(base_walls: list[float], cand_walls: list[float],
                  objective: int = 10) -> tuple[dict, dict]:
    return (paired([fake(objective, wall=w) for w in base_walls]),
            paired([fake(objective, wall=w) for w in cand_walls]))


# ---- compare and wilcoxon_p -----------------------------------------------------------------


def test_speedup_is_the_geometric_mean_of_the_pairs() -> None:
    base, cand = optimal_pairs([1.0, 0.5, 0.9], [0.5, 0.5, 1.8])
    comparison = compare("defaults", base, cand, T, 0.0)
    assert [p.speedup for p in comparison.pairs] == pytest.approx([2.0, 1.0, 0.5])
    assert comparison.speedup == pytest.approx(1.0)
    assert comparison.quality_losses == []
    base, cand = optimal_pairs([1.0, 1.0], [0.5, 0.25])
    assert compare("defaults", base, cand, T, 0.0).speedup == pytest.approx(math.sqrt(8))


def test_pair_results_record_both_sides() -> None:
    base = paired([fake(10, "FEASIBLE", wall=T, improvements=[(0.2, 12), (0.8, 10)])])
    cand = paired([fake(10, "FEASIBLE", wall=T, improvements=[(0.1, 11), (0.4, 10)],
                        violations=[])])
    [pair] = compare("defaults", base, cand, T, 0.0).pairs
    assert pair == PairResult("i0", 0, 10, 10, 0.8, 0.4, False, True)
    assert pair.speedup == pytest.approx(2.0)


def test_an_untimed_target_times_both_sides_alike() -> None:
    # the baseline's own unproven run reaches its own result (10) by definition, a run of the
    # same configuration may not: timed to it, an A/A pair reads 0.8 / (2 T) = 0.2x. Timed to
    # what an untimed run on another seed found (11), both sides are timed alike.
    base = paired([fake(10, "FEASIBLE", wall=T, improvements=[(0.3, 11), (0.8, 10)])])
    cand = paired([fake(11, "FEASIBLE", wall=T, improvements=[(0.4, 11)])])
    assert compare("defaults", base, cand, T, 1.0).pairs[0].speedup == pytest.approx(0.2)
    targets = paired([fake(11, "FEASIBLE", wall=T, improvements=[(0.5, 11)])])
    [pair] = compare("defaults", base, cand, T, 1.0, targets).pairs
    assert (pair.baseline_time_s, pair.candidate_time_s) == (0.3, 0.4)
    assert not pair.proven_target
    # a proven target is a proof for everyone; a target run that found nothing: first solution
    proven = paired([fake(10, "OPTIMAL", wall=0.6)])
    [pair] = compare("defaults", base, cand, T, 1.0, proven).pairs
    assert (pair.baseline_time_s, pair.candidate_time_s, pair.proven_target) == \
        (2 * T, 2 * T, True)
    [pair] = compare("defaults", base, cand, T, 1.0, paired([fake(None, wall=T)])).pairs
    assert (pair.baseline_time_s, pair.candidate_time_s) == (0.3, 0.4)


def test_measure_pairs_runs_the_target_once_per_pair_before_the_timed_rounds() -> None:
    problem = generate_family("small", 0)
    runs = measure_pairs({"a": SolverConfig(), "b": SolverConfig()}, {"x": problem}, [0, 1],
                         1.0, pair_budget_s=0.0, target=SolverConfig())
    assert set(runs) == {"a", "b", TARGET}
    assert {key: len(r) for key, r in runs[TARGET].items()} == {("x", 0): 1, ("x", 1): 1}
    assert all(len(r) == 1 for name in "ab" for r in runs[name].values())


def test_p_value_is_one_when_all_times_are_equal() -> None:
    base, cand = optimal_pairs([0.5] * 6, [0.5] * 6)
    comparison = compare("defaults", base, cand, T, 0.0)
    assert comparison.p_value == 1.0
    assert comparison.speedup == pytest.approx(1.0)
    assert wilcoxon_p([0.3] * 8, [0.3] * 8) == 1.0


@pytest.mark.parametrize(("n", "expected"), [(6, 1 / 64), (5, 1 / 32), (4, 1 / 16)])
def test_p_value_when_the_candidate_is_faster_on_every_pair(n: int, expected: float) -> None:
    base, cand = optimal_pairs([1.0 + k / 10 for k in range(n)],
                               [0.5 + k / 100 for k in range(n)])
    p_value = compare("defaults", base, cand, T, 0.0).p_value
    assert p_value == pytest.approx(expected)  # the exact one-sided signed-rank test
    assert (p_value < PassRule().max_p_value) == (n >= 5)  # hence "needs >= 5 pairs"


def test_p_value_is_large_when_the_candidate_is_slower() -> None:
    base = [0.5 + k / 100 for k in range(6)]
    cand = [1.0 + k / 10 for k in range(6)]
    assert wilcoxon_p(base, cand) > 0.9
    assert wilcoxon_p(cand, base) < 0.05


def test_a_worse_objective_is_a_quality_loss() -> None:
    base = paired([fake(10, "FEASIBLE", wall=T), fake(10, "FEASIBLE", wall=T)])
    cand = paired([fake(11, "FEASIBLE", wall=T), fake(10, "FEASIBLE", wall=T)])
    comparison = compare("production", base, cand, T, 0.0)
    assert comparison.quality_losses == ["i0 seed 0: objective 11 vs production 10"]
    # the unreached target counts PAR2
    assert comparison.pairs[0].candidate_time_s == pytest.approx(2 * T)


def test_the_tolerance_allows_a_small_loss() -> None:
    base = paired([fake(100, "FEASIBLE", wall=T)])
    assert compare("defaults", base, paired([fake(101, "FEASIBLE", wall=T)]), T,
                   0.01).quality_losses == []
    assert len(compare("defaults", base, paired([fake(102, "FEASIBLE", wall=T)]), T,
                       0.01).quality_losses) == 1


def test_no_solution_is_a_quality_loss() -> None:
    comparison = compare("defaults", paired([fake(10)]), paired([fake(None, wall=T)]), T, 0.0)
    assert comparison.quality_losses == ["i0 seed 0: objective None vs defaults 10"]
    assert comparison.pairs[0].candidate_time_s == pytest.approx(2 * T)
    assert comparison.pairs[0].candidate_valid is None


def test_a_baseline_without_a_solution_is_beaten_by_any_solution() -> None:
    base = paired([fake(None, wall=T), fake(None, wall=T)])
    cand = paired([fake(12, "FEASIBLE", wall=T, improvements=[(0.5, 12)]), fake(None, wall=T)])
    comparison = compare("defaults", base, cand, T, 0.0)
    assert comparison.quality_losses == []
    assert [p.candidate_time_s for p in comparison.pairs] == pytest.approx([0.5, 2 * T])
    assert [p.baseline_time_s for p in comparison.pairs] == pytest.approx([2 * T, 2 * T])
    assert [p.speedup for p in comparison.pairs] == pytest.approx([8.0, 1.0])


# ---- the gap integral --------------------------------------------------------------------


def test_the_gap_integral_scores_each_side_against_the_best_either_found() -> None:
    # Nobody proves: the baseline reaches 12 at 1 s, the candidate 11 at 0.5 s; 11 is best.
    base = paired([fake(12, "FEASIBLE", wall=T, improvements=[(1.0, 12)])])
    cand = paired([fake(11, "FEASIBLE", wall=T, improvements=[(0.5, 11)])])
    [pair] = compare("defaults", base, cand, T, 0.0, metric="gap_integral",
                     best={"i0": 11}).pairs
    assert pair.baseline_time_s == pytest.approx(1.0 + (1 / 12) * 1.0)
    assert pair.candidate_time_s == pytest.approx(0.5)
    assert pair.speedup == pytest.approx((1.0 + 1 / 12) / 0.5)


def test_missing_an_unproven_target_by_one_unit_is_a_small_gap_not_par2() -> None:
    # The reason for the metric: by time to target the candidate scores PAR2 (4 s) here.
    base = paired([fake(100, "FEASIBLE", wall=T, improvements=[(0.2, 100)])])
    cand = paired([fake(101, "FEASIBLE", wall=T, improvements=[(0.1, 101)])])
    by_time = compare("defaults", base, cand, T, 0.0).pairs[0]
    by_gap = compare("defaults", base, cand, T, 0.0, metric="gap_integral",
                     best={"i0": 100}).pairs[0]
    assert by_time.candidate_time_s == 2 * T
    assert by_gap.candidate_time_s == pytest.approx(0.1 + (1 / 101) * (T - 0.1))


def test_gap_quality_is_judged_over_all_pairs_not_pair_by_pair() -> None:
    # One unit worse on one pair, better on another: no loss by the gap integral (two runs of
    # one set differ so on unproven instances), a loss pair by pair by time to target.
    base = paired([fake(100, "FEASIBLE", wall=T), fake(100, "FEASIBLE", wall=T)])
    cand = paired([fake(101, "FEASIBLE", wall=T), fake(98, "FEASIBLE", wall=T)])
    best = {"i0": 100, "i1": 98}
    assert compare("defaults", base, cand, T, 0.0, metric="gap_integral",
                   best=best).quality_losses == []
    assert len(compare("defaults", base, cand, T, 0.0).quality_losses) == 1
    worse = paired([fake(101, "FEASIBLE", wall=T), fake(101, "FEASIBLE", wall=T)])
    [loss] = compare("defaults", base, worse, T, 0.0, metric="gap_integral",
                     best={"i0": 100, "i1": 100}).quality_losses
    assert "final objectives 0.99% worse than defaults's" in loss
    assert compare("defaults", base, worse, T, 0.01, metric="gap_integral",
                   best={"i0": 100, "i1": 100}).quality_losses == []


def test_validation_by_the_gap_integral_names_its_metric(instance_paths: tuple[str, ...]
                                                         ) -> None:
    report = validate("e2e", SolverConfig(), instance_paths[:2], [0], LIMIT, LENIENT,
                      track=False, metric="gap_integral")
    assert report.metric == "gap_integral" == report.to_dict()["metric"]
    assert report.comparisons[0].to_dict()["metric"] == "gap_integral"
    assert "geomean primal gap integral" in report.summary()
    # what the monitor compares production solve times with stays a time, not a gap
    assert 0 < report.performance_baseline_s <= LIMIT + 0.5


def test_the_document_api_validates_by_the_metric_the_dag_would() -> None:
    from fresh_solver.templates.manager import ParameterManager

    result = ParameterManager().validate_parameters("api-auto", {"num_workers": 1},
                                                    rule=LENIENT)
    assert "metric auto (held-out instances): the CP-SAT defaults proved 3 of 3 instances " \
        "within 2 s: time to target" in result.validation_warnings
    assert result.report.metric == "time_to_target"


def test_validation_refuses_a_metric_it_cannot_judge_by(instance_paths: tuple[str, ...]) -> None:
    with pytest.raises(InputError, match="validation judges by one of"):
        validate("e2e", SolverConfig(), instance_paths[:1], [0], LIMIT, track=False,
                 metric="objective_at_limit")


def test_comparison_to_dict_is_json() -> None:
    base, cand = optimal_pairs([1.0, 0.5], [0.5, 0.5])
    data = compare("defaults", base, cand, T, 0.0).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert [p["speedup"] for p in data["pairs"]] == pytest.approx([2.0, 1.0])


# ---- judge ----------------------------------------------------------------------------------


def comparison(name: str = "defaults", speedup: float = 2.0, p_value: float = 0.01,
               losses: int = 0) -> Comparison:
    return Comparison(name, speedup=speedup, p_value=p_value,
                      quality_losses=[f"x seed {k}: worse" for k in range(losses)])


def test_judge_passes_a_good_candidate() -> None:
    assert judge([comparison()], [], PassRule()) == []
    assert judge([comparison(), comparison("production", speedup=1.0, p_value=0.5)], [],
                 PassRule()) == []


@pytest.mark.parametrize(("comparisons", "invalid", "expected"), [
    ([comparison(speedup=1.1)], [], "speedup vs defaults 1.10x < 1.2x"),
    ([comparison(p_value=0.05)], [], "Wilcoxon p vs defaults 0.05 >= 0.05"),
    ([comparison(), comparison("production", speedup=0.85)], [],
     "speedup vs production 0.85x < 0.9x"),
    ([comparison(losses=2)], [], "2 quality loss(es) vs defaults"),
    ([comparison(), comparison("production", losses=1)], [],
     "1 quality loss(es) vs production"),
    ([comparison()], ["a seed 0: [...]"], "1 invalid schedule(s)"),
], ids=["speedup", "p-value", "production-slower", "quality-defaults", "quality-production",
        "invalid"])
def test_judge_names_each_violation(comparisons: list[Comparison], invalid: list[str],
                                    expected: str) -> None:
    assert judge(comparisons, invalid, PassRule()) == [expected]


def test_judge_lists_every_violation() -> None:
    reasons = judge([comparison(speedup=0.5, p_value=0.9, losses=1),
                     comparison("production", speedup=0.5, losses=1)], ["x"], PassRule())
    assert len(reasons) == 6


def test_judge_follows_the_rule() -> None:
    rule = PassRule(min_speedup=1.05, max_p_value=0.2, min_speedup_vs_production=0.8)
    assert judge([comparison(speedup=1.1, p_value=0.1),
                  comparison("production", speedup=0.85)], [], rule) == []


# ---- end to end -----------------------------------------------------------------------------




@pytest.fixture(scope="module")
def instance_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    folder = tmp_path_factory.mktemp("held_out")
    paths = []
    for seed in (1, 2, 3):
        path = folder / f"family-{seed}.json"
        path.write_text(json.dumps(problem_to_dict(generate("family", "small", seed))))
        paths.append(str(path))
    return tuple(paths)


@pytest.fixture(scope="module")
def good_report(instance_paths: tuple[str, ...]) -> ValidationReport:
    return validate("e2e", SolverConfig.from_dict(GOOD), instance_paths, [0, 1], LIMIT,
                    production=SolverConfig(), track=True)


@pytest.fixture(scope="module")
def bad_report(instance_paths: tuple[str, ...]) -> ValidationReport:
    return validate("e2e-bad", SolverConfig.from_dict(BAD), instance_paths, [0, 1], LIMIT,
                    track=True)


def download(run_id: str, name: str, folder: Path) -> Path:
    client = ParameterRegistry().client
    return Path(client.download_artifacts(run_id, name, str(folder)))


def test_validate_compares_with_defaults_and_production(good_report: ValidationReport,
                                                        instance_paths: tuple[str, ...]) -> None:
    report = good_report
    assert [c.baseline for c in report.comparisons] == ["defaults", "production"]
    assert report.instances == sorted(Path(p).name for p in instance_paths)
    assert report.seeds == [0, 1]
    for c in report.comparisons:
        assert [(p.instance, p.seed) for p in c.pairs] == [
            (name, seed) for name in report.instances for seed in (0, 1)]
        assert c.quality_losses == []  # tiny instances: every run reaches the optimum
    assert report.invalid_schedules == []
    assert report.reasons == judge(report.comparisons, [], report.rule)
    assert report.passed == (report.reasons == [])
    assert report.speedup_factor == report.comparisons[0].speedup
    assert len(report.instance_set) == 16
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["candidate_hash"] == SolverConfig.from_dict(GOOD).hash
    assert data["run_id"] == report.run_id is not None
    assert data["summary"] == report.summary()
    assert report.summary().startswith(
        f"Validation {'PASSED' if report.passed else 'FAILED'} on 3 held-out instances x 2 "
        f"seeds (0.3 s limit")
    assert "vs production" in report.summary()


def test_validate_without_production_has_one_comparison(instance_paths: tuple[str, ...]) -> None:
    report = validate("e2e", SolverConfig(), instance_paths[:1], [0], LIMIT, track=False)
    assert [c.baseline for c in report.comparisons] == ["defaults"]
    assert report.run_id is None


def test_the_validation_run(good_report: ValidationReport, tmp_path: Path) -> None:
    client = ParameterRegistry().client
    run = client.get_run(good_report.run_id)
    assert run.info.status == "FINISHED"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "fresh-solver/validation/e2e"
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["validation_status"] == ("passed" if good_report.passed else "failed")
    assert tags["fresh_solver.config_hash"] == good_report.candidate.hash
    assert metrics["speedup_factor"] == pytest.approx(good_report.speedup_factor)
    assert metrics["p_value_vs_defaults"] == pytest.approx(good_report.comparisons[0].p_value)
    assert metrics["p_value_vs_production"] == pytest.approx(
        good_report.comparisons[1].p_value)
    assert metrics["speedup_vs_production"] == pytest.approx(good_report.comparisons[1].speedup)
    assert metrics["performance_baseline_s"] == pytest.approx(
        good_report.performance_baseline_s)
    assert run.data.params["instance_set"] == good_report.instance_set
    names = {a.path for a in client.list_artifacts(good_report.run_id)}
    assert {"validation_report.json", "parameters.json", "speedup_chart.png"} <= names
    stored = json.loads(download(good_report.run_id, "validation_report.json",
                                 tmp_path).read_text())
    assert stored == good_report.to_dict()
    parameters = json.loads(download(good_report.run_id, "parameters.json", tmp_path)
                            .read_text())
    assert SolverConfig.from_dict(parameters) == good_report.candidate
    assert download(good_report.run_id, "speedup_chart.png", tmp_path).read_bytes() \
        .startswith(PNG_MAGIC)


def test_a_report_registers_its_set(good_report: ValidationReport) -> None:
    registry = ParameterRegistry()
    version = registry.register("e2e", good_report.candidate, good_report.to_dict())
    mv = registry.version("e2e", version)
    assert mv.tags["validation_status"] == ("passed" if good_report.passed else "failed")
    assert mv.tags["validation_run_id"] == good_report.run_id
    assert mv.tags["instance_set"] == good_report.instance_set
    assert mv.tags["validation_metric"] == "time_to_target"  # what its speedup is in
    assert mv.description == good_report.summary()
    assert registry.load_config("e2e", version) == good_report.candidate


def test_a_bad_candidate_fails(bad_report: ValidationReport) -> None:
    report = bad_report
    assert report.passed is False
    assert "6 quality loss(es) vs defaults" in report.reasons
    assert any(r.startswith("speedup vs defaults ") for r in report.reasons)
    assert any(r.startswith("Wilcoxon p vs defaults ") for r in report.reasons)
    [defaults] = report.comparisons
    assert all(p.candidate_objective is None for p in defaults.pairs)
    assert all(p.candidate_time_s == pytest.approx(2 * LIMIT) for p in defaults.pairs)
    assert defaults.speedup < 1
    assert report.summary().startswith("Validation FAILED")
    assert "Failed because: " in report.summary()
    run = ParameterRegistry().client.get_run(report.run_id)
    assert run.data.tags["validation_status"] == "failed"


# ---- the `validate` command -----------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def params_file(tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / "candidate.json"
    path.write_text(json.dumps(document))
    return str(path)


@pytest.mark.parametrize("which", ["both", "neither"])
def test_cli_validate_needs_one_candidate(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          instance_paths: tuple[str, ...], which: str) -> None:
    argv = ["validate", "--template-id", "cli-x", "--instances", *instance_paths,
            "--seeds", "1", "--time-limit", str(LIMIT)]
    if which == "both":
        argv += ["--run-id", "0123456789abcdef", "--params", params_file(tmp_path, GOOD)]
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert "give exactly one of --run-id" in err
    assert "Traceback" not in err and out == ""


def test_cli_validate_of_an_unknown_run(capsys: pytest.CaptureFixture[str],
                                        instance_paths: tuple[str, ...]) -> None:
    code, out, err = cli(capsys, "validate", "--template-id", "cli-x", "--instances",
                         *instance_paths, "--run-id", "0123456789abcdef", "--seeds", "1",
                         "--time-limit", str(LIMIT))
    assert code == 2
    assert "no MLflow run '0123456789abcdef'" in err


def test_cli_validate_names_the_metrics_it_judges_by(capsys: pytest.CaptureFixture[str],
                                                     instance_paths: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["validate", "--template-id", "cli-x", "--instances", *instance_paths,
              "--params", "x.json", "--metric", "objective_at_limit"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "--metric: invalid choice: 'objective_at_limit'" in err
    assert "'time_to_target', 'gap_integral'" in err


def test_cli_validate_a_failing_candidate_is_not_registered(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        instance_paths: tuple[str, ...]) -> None:
    code, out, err = cli(capsys, "validate", "--template-id", "cli-fail", "--instances",
                         *instance_paths, "--params", params_file(tmp_path, BAD), "--seeds",
                         "2", "--time-limit", str(LIMIT), "--json")
    assert code == 1, err
    report = json.loads(out)
    assert report["passed"] is False and report["reasons"]
    assert report["registered_version"] is None
    registry = ParameterRegistry()
    assert registry.versions("cli-fail") == []
    assert registry._model("cli-fail") is None
    run = registry.client.get_run(report["run_id"])  # recorded all the same
    assert run.data.tags["validation_status"] == "failed"


def test_cli_validate_registers_a_passing_candidate(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        instance_paths: tuple[str, ...]) -> None:
    lenient = ["--min-speedup", "0", "--max-p-value", "1.01", "--min-speedup-vs-production", "0"]
    base = ["validate", "--template-id", "cli-pass", "--instances", *instance_paths,
            "--seeds", "2", "--time-limit", str(LIMIT), *lenient, "--json"]
    code, out, err = cli(capsys, *base, "--params", params_file(tmp_path, GOOD))
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] is True
    version = report["registered_version"]
    registry = ParameterRegistry()
    mv = registry.version("cli-pass", version)
    assert mv.current_stage == "Staging"
    assert mv.tags["validation_status"] == "passed"
    assert mv.tags["validation_run_id"] == report["run_id"]
    assert mv.description == report["summary"]
    assert [len(report["comparisons"])] == [1]  # nothing in Production yet

    # promoted, it is the Production baseline of the next validation, whose candidate comes
    # from a run (here the validation run itself, which holds parameters.json)
    registry.promote("cli-pass", version, "reviewer")
    code, out, err = cli(capsys, *base, "--run-id", report["run_id"])
    assert code == 0, err
    second = json.loads(out)
    assert [c["baseline"] for c in second["comparisons"]] == ["defaults", "production"]
    assert second["candidate_hash"] == report["candidate_hash"]
    assert registry.version("cli-pass", second["registered_version"]).tags[
        "tuning_run_id"] == report["run_id"]
    assert registry.version("cli-pass", second["registered_version"]).current_stage == \
        "Staging"
    assert str(registry.serving("cli-pass").version) == str(version)  # staged, not promoted


# ---- measurement: interleaved and repeated ---------------------------------------------------


def test_pairs_run_interleaved_with_the_first_rotating_and_short_ones_repeated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fresh_solver import measure, solver

    order: list[tuple[str, int, int | None]] = []

    def fake_solve(problem, *, model, options=None, params=None, time_limit, seed=0,
                   check=True):
        which = (params or {}).get("max_presolve_iterations")  # tells the configs apart
        order.append((problem.name, seed, which))
        wall = 0.3 if problem.name == "long" else 0.02
        return fake(10, wall=wall)

    monkeypatch.setattr(solver, "solve", fake_solve)
    configs = {"candidate": SolverConfig.from_dict({"max_presolve_iterations": 1}),
               "defaults": SolverConfig.from_dict({"max_presolve_iterations": 2})}
    long_ = dataclasses.replace(generate("family", "small", 1), name="long")
    short = dataclasses.replace(generate("family", "small", 2), name="short")
    runs = measure.measure_pairs(configs, {"long": long_, "short": short}, [0], T)
    assert order[0][2] is None  # the warm-up, with the defaults, timed for nobody
    timed = order[1:]
    long_runs = [w for n, _, w in timed if n == "long"]
    short_runs = [w for n, _, w in timed if n == "short"]
    # 0.6 s per round: two rounds reach the 1 s budget; the first rotates per round
    assert long_runs == [1, 2, 2, 1]
    # 0.04 s per round: the round cap; pair 1 starts with the second config
    assert len(short_runs) == 2 * measure.MAX_REPEATS
    assert short_runs[:4] == [2, 1, 1, 2]
    assert [len(runs[c][("short", 0)]) for c in configs] == [measure.MAX_REPEATS] * 2


def test_each_side_is_timed_by_its_median_over_the_repetitions() -> None:
    base = {("i0", 0): [fake(10, wall=w) for w in (0.5, 0.9, 0.6)]}
    cand = {("i0", 0): [fake(10, wall=w) for w in (0.2, 0.3, 5.0)]}
    [pair] = compare("defaults", base, cand, 10.0, 0.0).pairs
    assert (pair.baseline_time_s, pair.candidate_time_s, pair.repeats) == (0.6, 0.3, 3)
