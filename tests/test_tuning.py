"""Tuning (fresh_solver.tuning): scoring, the ask/tell session, its MLflow record, resuming, and
the `tune` command's input errors.

MLflow runs on an embedded SQLite store in a temporary FRESH_SOLVER_HOME. Problems are tiny and
trials short (0.3 s), so a session takes a few seconds; the main session is shared by the tests
that only read it.
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fresh_solver.choices import METRICS
from fresh_solver.errors import InputError
from fresh_solver.measure import gap_integral
from fresh_solver.model.generate import generate
from fresh_solver.model.problem import problem_to_dict
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.space import load_space
from fresh_solver.solver import SolveResult
from fresh_solver.tuning import scoring
from fresh_solver.tuning import session as tuning_session
from fresh_solver.tuning.record import open_session, start_reference
from fresh_solver.tuning.scoring import (
    Reference,
    evaluate,
    references_from,
    score_run,
    worst_score,
)
from fresh_solver.tuning.session import (
    TuningSession,
    TuningSpec,
    load_instances,
    run_trial,
)
from fresh_solver.tuning.tuner import tune

LIMIT = 0.3
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLAIN_TYPES = (bool, int, float, str)


# ---- fixtures -------------------------------------------------------------------------------




@pytest.fixture(scope="module")
def instance_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    folder = tmp_path_factory.mktemp("instances")
    paths = []
    for name, seed in (("alpha", 1), ("beta", 2)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(problem_to_dict(generate("family", "small", seed))))
        paths.append(str(path))
    return tuple(paths)


def spec_for(template_id: str, paths: tuple[str, ...], **kw: Any) -> TuningSpec:
    return TuningSpec(template_id, paths, trials=kw.pop("trials", 3),
                      trial_time_limit=kw.pop("trial_time_limit", LIMIT),
                      seeds=kw.pop("seeds", 1), **kw)


def client():
    from fresh_solver import tracking

    return tracking.client()


def experiment_id(mlflow_client, template_id: str) -> str:
    from fresh_solver import tracking

    experiment = mlflow_client.get_experiment_by_name(tracking.tuning_experiment(template_id))
    assert experiment is not None
    return experiment.experiment_id


def nested_runs(mlflow_client, parent_id: str) -> list:
    parent = mlflow_client.get_run(parent_id)
    return mlflow_client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        max_results=1000)


def session_runs(mlflow_client, template_id: str) -> list:
    return mlflow_client.search_runs(
        [experiment_id(mlflow_client, template_id)],
        filter_string="tags.fresh_solver.kind = 'tuning-session'", max_results=1000)


def artifact(mlflow_client, run_id: str, name: str, tmp_path: Path) -> Path:
    folder = tmp_path / run_id
    folder.mkdir(exist_ok=True)
    return Path(mlflow_client.download_artifacts(run_id, name, str(folder)))


def trial_index(run) -> int:
    return int(run.data.tags["fresh_solver.trial"])


@pytest.fixture(scope="module")
def main_session(instance_paths: tuple[str, ...]) -> dict[str, Any]:
    spec = spec_for("main", instance_paths, trials=3)
    summary = tune(spec)
    mlflow_client = client()
    return {"spec": spec, "summary": summary, "client": mlflow_client,
            "nested": nested_runs(mlflow_client, summary["run_id"])}


# ---- scoring, without MLflow ----------------------------------------------------------------


def fake_result(status: str = "FEASIBLE", improvements: list[tuple[float, int]] | None = None,
                wall_time_s: float = 2.0) -> SolveResult:
    improvements = list(improvements or [])
    return SolveResult(
        status=status, objective=improvements[-1][1] if improvements else None,
        best_bound=None, wall_time_s=wall_time_s, build_time_s=0.0,
        time_to_first_s=improvements[0][0] if improvements else None,
        time_to_best_s=improvements[-1][0] if improvements else None,
        improvements=improvements, num_workers=1, model="template", model_size={}, stats={},
        schedule=None)


def test_gap_integral_of_two_improvements() -> None:
    result = fake_result("FEASIBLE", [(0.5, 20), (1.0, 10)], 2.0)
    # gap 1 until 0.5 s, then (20-10)/20 until 1.0 s, then 0
    assert gap_integral(result, 10, 2.0) == pytest.approx(0.5 * 1 + 0.5 * (10 / 20))


@pytest.mark.parametrize(("status", "improvements", "wall", "best", "expected"), [
    ("UNKNOWN", [], 2.0, 10, 2.0),  # nothing found: gap 1 over the whole horizon
    ("OPTIMAL", [(0.5, 10)], 0.8, 10, 0.5),  # proven early: gap 0 after the solution
    ("FEASIBLE", [(0.5, 20)], 2.0, 10, 0.5 + 1.5 * 0.5),  # stuck at gap 0.5 to the end
    ("FEASIBLE", [(0.5, 20), (3.0, 10)], 3.5, 10, 0.5 + 1.5 * 0.5),  # improvement past T
    ("FEASIBLE", [(0.25, 10)], 0.3, 10, 0.25),  # stopped early at the best known
])
def test_gap_integral_cases(status: str, improvements: list, wall: float, best: int,
                            expected: float) -> None:
    assert gap_integral(fake_result(status, improvements, wall), best, 2.0) == \
        pytest.approx(expected)


T = 2.0
PAR2 = 2 * T
IMPROVING = [(0.5, 20), (1.0, 10)]


@pytest.mark.parametrize(("metric", "result", "reference", "expected"), [
    ("time_to_optimum", fake_result("OPTIMAL", IMPROVING, 1.5), Reference(10, True), 1.5),
    ("time_to_optimum", fake_result("FEASIBLE", IMPROVING, 2.0), Reference(10, True), PAR2),
    ("time_to_target", fake_result("OPTIMAL", IMPROVING, 1.5), Reference(10, True), 1.5),
    # a proven target needs the proof too: reaching the objective is not enough
    ("time_to_target", fake_result("FEASIBLE", IMPROVING, 2.0), Reference(10, True), PAR2),
    ("time_to_target", fake_result("FEASIBLE", IMPROVING, 2.0), Reference(10, False), 1.0),
    ("time_to_target", fake_result("FEASIBLE", IMPROVING[:1], 2.0), Reference(10, False),
     PAR2),
    ("time_to_target", fake_result("UNKNOWN", [], 2.0), Reference(10, False), PAR2),
    ("objective_at_limit", fake_result("FEASIBLE", IMPROVING, 2.0), Reference(10, False), 1.0),
    ("objective_at_limit", fake_result("FEASIBLE", IMPROVING[:1], 2.0), Reference(10, True),
     21 / 11),
    ("objective_at_limit", fake_result("FEASIBLE", [(0.1, 12)], 2.0), Reference(10, True),
     13 / 11),
    ("objective_at_limit", fake_result("UNKNOWN", [], 2.0), Reference(10, True), 2.0),
    ("gap_integral", fake_result("FEASIBLE", IMPROVING, 2.0), Reference(10, False), 0.75),
    # the candidate beats the reference: its own best is the best known
    ("gap_integral", fake_result("FEASIBLE", IMPROVING, 2.0), Reference(20, False), 0.75),
    ("gap_integral", fake_result("UNKNOWN", [], 2.0), Reference(10, False), T),
    # the reference found nothing: any solution is a win, scored by its first time
    ("time_to_target", fake_result("FEASIBLE", IMPROVING, 2.0), Reference(None, False), 0.5),
    ("time_to_target", fake_result("UNKNOWN", [], 2.0), Reference(None, False), PAR2),
    ("gap_integral", fake_result("FEASIBLE", IMPROVING, 2.0), Reference(None, False), 0.5),
    ("objective_at_limit", fake_result("FEASIBLE", IMPROVING, 2.0), Reference(None, False),
     1.0),
    ("objective_at_limit", fake_result("UNKNOWN", [], 2.0), Reference(None, False), 2.0),
    ("time_to_optimum", fake_result("OPTIMAL", IMPROVING, 1.5), Reference(None, False), 1.5),
])
def test_score_run(metric: str, result: SolveResult, reference: Reference,
                   expected: float) -> None:
    assert score_run(metric, result, reference, T) == pytest.approx(expected)


def test_objective_ratio_against_a_zero_reference_is_bounded() -> None:
    found = score_run("objective_at_limit", fake_result("FEASIBLE", [(0.1, 5)]),
                      Reference(0, True), T)
    nothing = score_run("objective_at_limit", fake_result("UNKNOWN", []), Reference(0, True), T)
    assert found <= nothing


def test_every_metric_is_scored() -> None:
    result = fake_result("OPTIMAL", IMPROVING, 1.5)
    for metric in METRICS:
        score = score_run(metric, result, Reference(10, True), T)
        assert 0 < score <= PAR2


@pytest.mark.parametrize(("metric", "expected"), [
    ("time_to_target", 2 * LIMIT), ("time_to_optimum", 2 * LIMIT), ("gap_integral", 2 * LIMIT),
    ("objective_at_limit", 2.0)])
def test_worst_score_is_the_par2_penalty(metric: str, expected: float) -> None:
    assert worst_score(metric, LIMIT) == pytest.approx(expected)


def test_evaluate_is_paired_over_instances_and_seeds() -> None:
    problems = {"alpha": generate("family", "small", 1), "beta": generate("family", "small", 2)}
    evaluation = evaluate(SolverConfig(), problems, [0, 1], metric="time_to_target",
                          time_limit=LIMIT)
    assert [(r.instance, r.seed) for r in evaluation.runs] == [
        ("alpha", 0), ("alpha", 1), ("beta", 0), ("beta", 1)]
    assert evaluation.failed is None and evaluation.capped == 0
    assert all(r.valid and r.objective is not None for r in evaluation.runs)
    scores = [max(r.score, 1e-4) for r in evaluation.runs]
    assert evaluation.score == pytest.approx(math.exp(sum(map(math.log, scores)) / 4))
    data = evaluation.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"score", "failed", "capped", "runs"}


def test_adaptive_capping_cuts_runs_that_cannot_beat_the_incumbent() -> None:
    problems = {"large": generate("family", "large", 1)}
    # an unreachable target (makespan 1): without the cap the run would use its 5 s
    references = {("large", 0): Reference(1, False)}
    evaluation = evaluate(SolverConfig(), problems, [0], metric="time_to_target",
                          time_limit=5.0, references=references,
                          incumbent={("large", 0): 0.01})
    [run] = evaluation.runs
    assert run.capped
    assert run.score == pytest.approx(0.1)  # max(2 x 0.01, 0.1 s floor)
    assert evaluation.capped == 1
    assert evaluation.score == pytest.approx(0.1)
    assert evaluation.to_dict()["capped"] == 1


@pytest.mark.parametrize(("metric", "cap_factor", "incumbent"), [
    ("objective_at_limit", 2.0, 0.01),  # not a time metric: never capped
    ("time_to_target", None, 0.01),  # capping off
    ("time_to_target", 2.0, 10.0),  # the cap is past the time limit
])
def test_no_capping(metric: str, cap_factor: float | None, incumbent: float) -> None:
    problems = {"alpha": generate("family", "small", 1)}
    # a target any first solution reaches (a real unproven target is a feasible objective,
    # so a proof above it would be an unsound claim)
    evaluation = evaluate(SolverConfig(), problems, [0], metric=metric, time_limit=LIMIT,
                          references={("alpha", 0): Reference(10**6, False)},
                          incumbent={("alpha", 0): incumbent}, cap_factor=cap_factor)
    assert not evaluation.runs[0].capped
    assert evaluation.capped == 0


def test_run_trial_turns_an_invalid_config_into_a_failed_trial() -> None:
    problems = {"alpha": generate("family", "small", 1)}
    evaluation = run_trial({"cp_sat": {"search_branching": "NOPE"}}, problems, [0],
                           metric="time_to_target", time_limit=LIMIT, cap_factor=2.0)
    assert evaluation.failed is not None
    assert evaluation.failed.startswith("InputError: ")
    assert "search_branching" in evaluation.failed
    assert evaluation.score == worst_score("time_to_target", LIMIT)
    assert evaluation.runs == []


def test_run_trial_turns_a_crash_into_a_failed_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: Any, **kwargs: Any) -> SolveResult:
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(scoring, "solve", crash)
    evaluation = run_trial({}, {"alpha": generate("family", "small", 1)}, [0],
                           metric="objective_at_limit", time_limit=LIMIT)
    assert evaluation.failed == "RuntimeError: solver exploded"
    assert evaluation.score == 2.0


def test_instance_set_hash(tmp_path: Path, instance_paths: tuple[str, ...]) -> None:
    problems, digest = load_instances(instance_paths)
    assert sorted(problems) == ["alpha.json", "beta.json"]
    assert len(digest) == 16
    assert load_instances(tuple(reversed(instance_paths)))[1] == digest
    assert load_instances(instance_paths[:1])[1] != digest
    changed = tmp_path / "alpha.json"
    changed.write_text(json.dumps(problem_to_dict(generate("family", "small", 3))))
    assert load_instances((str(changed), instance_paths[1]))[1] != digest


def test_two_instances_with_the_same_file_name_are_refused(
        tmp_path: Path, instance_paths: tuple[str, ...]) -> None:
    other = tmp_path / "alpha.json"
    other.write_text(Path(instance_paths[1]).read_text())
    with pytest.raises(InputError, match="two files are named 'alpha.json'"):
        load_instances((instance_paths[0], str(other)))


# ---- TuningSpec -----------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "flag"), [
    ({"template_id": ""}, "--template-id"), ({"template_id": "a/b"}, "--template-id"),
    ({"instance_paths": ()}, "--instances"), ({"trials": 0}, "--trials"),
    ({"trial_time_limit": 0}, "--trial-time-limit"), ({"seeds": 0}, "--seeds"),
    ({"batch": 0}, "--batch"), ({"metric": "nope"}, "--metric"),
    ({"estimator": "GBRT"}, "--estimator"),
])
def test_spec_check(change: dict, flag: str) -> None:
    spec = replace(spec_for("t", ("x.json",)), **change)
    with pytest.raises(InputError) as exc:
        spec.check()
    assert [p.split(":")[0] for p in exc.value.problems] == [flag]


def test_spec_check_lists_every_problem() -> None:
    spec = TuningSpec("a/b", (), trials=0, trial_time_limit=-1, seeds=0, batch=0)
    with pytest.raises(InputError) as exc:
        spec.check()
    assert len(exc.value.problems) == 6


@pytest.mark.parametrize("change", [
    pytest.param({"trial_time_limit": math.nan}, id="limit-nan"),
    pytest.param({"trial_time_limit": math.inf}, id="limit-inf"),
    pytest.param({"cap_factor": -1.0}, id="cap-negative"),
    pytest.param({"cap_factor": 0.5}, id="cap-below-1"),
])
def test_spec_check_refuses_nonsense_numbers(change: dict) -> None:
    with pytest.raises(InputError):
        replace(spec_for("t", ("x.json",)), **change).check()


# ---- a whole session and its MLflow record --------------------------------------------------


def test_session_summary(main_session: dict, instance_paths: tuple[str, ...],
                         tracking_home: Path) -> None:
    summary = main_session["summary"]
    assert {"run_id", "experiment", "best_params", "best_score", "default_score",
            "trials"} <= set(summary)  # the contract; plus the race's account
    assert {"best_trial", "search_best_trial", "race"} <= set(summary)
    assert summary["experiment"] == "fresh-solver/tuning/main"
    assert summary["trials"] == 3
    assert summary["best_score"] <= summary["default_score"]
    assert SolverConfig.from_dict(summary["best_params"]).to_dict() == summary["best_params"]
    json.dumps(summary)
    # the embedded store lives in FRESH_SOLVER_HOME
    assert (tracking_home / "mlflow.db").is_file()
    assert (tracking_home / "artifacts").is_dir()


def test_parent_run(main_session: dict, tmp_path: Path) -> None:
    import pandas as pd

    mlflow_client, summary = main_session["client"], main_session["summary"]
    run = mlflow_client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["fresh_solver.kind"] == "tuning-session"
    params = run.data.params
    assert params["metric"] == "time_to_target"
    assert params["trials"] == "3" and params["seeds"] == "1"
    assert params["template_id"] == "main"
    assert len(params["instance_set"]) == 16
    assert params["instances"] == "alpha.json,beta.json"
    for key in ("machine.cpu", "machine.cores", "machine.ortools"):
        assert run.data.tags[key]
    import ortools

    assert run.data.tags["machine.ortools"] == ortools.__version__
    metrics = run.data.metrics
    assert metrics["best_score"] == pytest.approx(summary["best_score"])
    assert metrics["default_score"] == pytest.approx(summary["default_score"])
    assert metrics["trials"] == 3

    names = {a.path for a in mlflow_client.list_artifacts(summary["run_id"])}
    assert {"trials.csv", "convergence.png", "parameters.json", "incumbent_results.json",
            "search_space.json"} <= names

    rid = summary["run_id"]
    trials = pd.read_csv(artifact(mlflow_client, rid, "trials.csv", tmp_path))
    assert list(trials["trial"]) == [0, 1, 2, 3]
    assert list(trials["role"]) == ["reference", "trial", "trial", "trial"]
    assert "cp_sat.num_workers" in trials.columns and "model.warm_start" in trials.columns
    assert artifact(mlflow_client, rid, "convergence.png", tmp_path).read_bytes()[:8] == \
        PNG_MAGIC
    best = json.loads(artifact(mlflow_client, rid, "parameters.json", tmp_path).read_text())
    assert SolverConfig.from_dict(best).to_dict() == summary["best_params"]
    assert SolverConfig.from_dict(best).hash == run.data.tags["fresh_solver.best_config_hash"]
    incumbent = json.loads(
        artifact(mlflow_client, rid, "incumbent_results.json", tmp_path).read_text())
    assert incumbent["score"] == pytest.approx(summary["best_score"])
    assert len(incumbent["runs"]) == 2
    space = json.loads(artifact(mlflow_client, rid, "search_space.json", tmp_path).read_text())
    assert set(space) == {d.key for d in load_space().dimensions}


def test_nested_trial_runs(main_session: dict, tmp_path: Path) -> None:
    mlflow_client, summary = main_session["client"], main_session["summary"]
    nested = main_session["nested"]
    assert len(nested) == 1 + 3
    assert sorted(trial_index(r) for r in nested) == [0, 1, 2, 3]
    roles = [r.data.tags["fresh_solver.role"] for r in nested]
    assert roles.count("reference") == 1
    by_index = {trial_index(r): r for r in nested}
    assert by_index[0].data.tags["fresh_solver.role"] == "reference"
    assert json.loads(by_index[0].data.tags["fresh_solver.point"]) is None
    # Trial 3 of tuner seed 0 is the point that made CP-SAT prove a wrong optimum
    # (shared/cases/unsound-symmetry-disjunctive): refused as known unsound, never solved.
    refused = by_index[3]
    assert refused.info.status == "FAILED" and refused.data.metrics["failed"] == 1
    assert "known unsound combination 'symmetry4-strong-disjunctive'" in \
        refused.data.tags["fresh_solver.error"]
    nested = [r for r in nested if r is not refused]
    scores = []
    for run in nested:
        tags, params = run.data.tags, run.data.params
        assert run.info.status == "FINISHED"
        assert tags["mlflow.parentRunId"] == summary["run_id"]
        assert tags["fresh_solver.status"] == "ok"
        assert "score" in run.data.metrics and run.data.metrics["failed"] == 0
        config = SolverConfig.from_dict(json.loads(tags["fresh_solver.config"]))
        assert config.hash == tags["fresh_solver.config_hash"]
        assert {f"model.{k}" for k in config.model.to_dict()} <= set(params)
        if tags["fresh_solver.role"] == "trial":
            assert "cp_sat.num_workers" in params
            assert params["cp_sat.num_workers"] == str(config.cp_sat["num_workers"])
            point = json.loads(tags["fresh_solver.point"])
            assert len(point) == len(load_space().dimensions)
            assert load_space().config(point) == config
        results = json.loads(artifact(mlflow_client, run.info.run_id, "results.json",
                                      tmp_path).read_text())
        assert results["score"] == pytest.approx(run.data.metrics["score"])
        assert results["failed"] is None
        assert sorted((r["instance"], r["seed"]) for r in results["runs"]) == [
            ("alpha.json", 0), ("beta.json", 0)]
        scores.append(run.data.metrics["score"])
    # the search's best is the lowest score; what is returned is the race's winner
    assert min(scores) == pytest.approx(
        by_index[summary["search_best_trial"]].data.metrics["score"])
    assert by_index[summary["best_trial"]].data.metrics["score"] == pytest.approx(
        summary["best_score"])
    assert by_index[0].data.metrics["score"] == pytest.approx(summary["default_score"])


def test_points_follow_the_tuner_seed(main_session: dict) -> None:
    """The search depends on the tuner seed and the scores alone: a fresh session with the same
    seed, told the same reference score, asks the points the main session tried, in order."""
    reference, *tried = sorted(main_session["nested"], key=trial_index)
    points = [json.loads(r.data.tags["fresh_solver.point"]) for r in tried]
    session = TuningSession.from_spec(main_session["spec"])
    session.tell_reference(scoring.Evaluation(reference.data.metrics["score"]))
    asked = []
    for run in tried:
        asked += session.ask(1)
        session.tell(asked[-1:], [scoring.Evaluation(run.data.metrics["score"])])
    assert asked == points


def test_batches_of_points(instance_paths: tuple[str, ...]) -> None:
    summary = tune(spec_for("batch", instance_paths, trials=3, batch=2, estimator="RF"))
    assert summary["trials"] == 3
    nested = nested_runs(client(), summary["run_id"])
    assert sorted(trial_index(r) for r in nested) == [0, 1, 2, 3]
    points = [r.data.tags["fresh_solver.point"] for r in nested if trial_index(r)]
    assert len(set(points)) == 3


def test_the_optimiser_models_log_scores_also_after_a_resume(
        instance_paths: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """Scores span orders of magnitude; the surrogate sees their log, before and after a resume,
    and first of all the reference's, at the defaults' own point."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})  # the point needs <= 8
    session, record = open_session(spec_for("log-scores", instance_paths, trials=2))
    start_reference(session, record)
    assert session.optimizer().Xi == [session.space.point_of(SolverConfig(), "makespan")]
    for trial in session.tell(session.ask(2), [scoring.Evaluation(0.5),
                                              scoring.Evaluation(4.0)]):
        record.log_trial(trial, session.space)
    expected = [math.log(session.reference.evaluation.score), math.log(0.5), math.log(4.0)]
    assert session.optimizer().yi == pytest.approx(expected)
    resumed, _ = open_session(session.spec, resume_run_id=record.run_id)
    assert resumed.optimizer().yi == pytest.approx(expected)


# ---- resuming -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resumed(instance_paths: tuple[str, ...]) -> dict[str, Any]:
    spec = spec_for("resume", instance_paths, trials=4, batch=1)

    def interrupt(done: int, total: int, best: float) -> None:
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tune(spec, progress=interrupt)
    mlflow_client = client()
    [parent] = session_runs(mlflow_client, "resume")
    before = nested_runs(mlflow_client, parent.info.run_id)
    summary = tune(spec, resume_run_id=parent.info.run_id)
    return {"parent": parent, "before": before, "summary": summary, "client": mlflow_client,
            "after": nested_runs(mlflow_client, parent.info.run_id)}


def test_interrupted_session_is_left_running(resumed: dict) -> None:
    assert resumed["parent"].info.status == "RUNNING"
    assert sorted(trial_index(r) for r in resumed["before"]) == [0, 1, 2]


def test_resume_completes_the_session(resumed: dict) -> None:
    mlflow_client, summary = resumed["client"], resumed["summary"]
    parent_id = resumed["parent"].info.run_id
    assert summary["run_id"] == parent_id
    assert summary["trials"] == 4
    assert len(session_runs(mlflow_client, "resume")) == 1  # no second session
    assert mlflow_client.get_run(parent_id).info.status == "FINISHED"
    after = resumed["after"]
    assert len(after) == 1 + 4
    assert sorted(trial_index(r) for r in after) == [0, 1, 2, 3, 4]
    references = [r for r in after if r.data.tags["fresh_solver.role"] == "reference"]
    assert len(references) == 1
    # the reference is the one scored before the interruption, not a new run
    [old_reference] = [r for r in resumed["before"] if trial_index(r) == 0]
    assert references[0].info.run_id == old_reference.info.run_id
    kept = {r.info.run_id for r in resumed["before"]}
    assert kept <= {r.info.run_id for r in after}
    scores = {int(r.data.tags["fresh_solver.trial"]): r.data.metrics["score"] for r in after}
    assert summary["best_score"] == pytest.approx(scores[summary["best_trial"]])
    assert scores[summary["search_best_trial"]] == pytest.approx(min(scores.values()))


def test_resumed_trials_try_new_points(resumed: dict) -> None:
    points = [r.data.tags["fresh_solver.point"]
              for r in sorted(resumed["after"], key=trial_index)[1:]]
    assert len(set(points)) == len(points) == 4


@pytest.mark.parametrize(("change", "key"), [
    ({"metric": "time_to_optimum"}, "metric"),
    ({"instance_paths": "first"}, "instance_set"),
    ({"trial_time_limit": 0.5}, "trial_time_limit_s"),
    ({"seeds": 2}, "seeds"),
    ({"template_id": "other"}, "template_id"),
])
def test_resume_with_a_different_setup_is_refused(main_session: dict, change: dict,
                                                  key: str) -> None:
    spec = main_session["spec"]
    if change.get("instance_paths") == "first":
        change = {"instance_paths": spec.instance_paths[:1]}
    run_id = main_session["summary"]["run_id"]
    with pytest.raises(InputError) as exc:
        tune(replace(spec, **change), resume_run_id=run_id)
    problems = exc.value.problems
    assert [p.split(": ")[1] for p in problems] == [key]
    assert problems[0].startswith(f"--resume {run_id}: {key}: the run has ")
    mlflow_client = main_session["client"]
    assert mlflow_client.get_run(run_id).info.status == "FINISHED"  # left as it was
    assert len(nested_runs(mlflow_client, run_id)) == 4


def test_resume_of_an_unknown_run_is_refused(instance_paths: tuple[str, ...]) -> None:
    with pytest.raises(InputError, match="no MLflow run 'deadbeef'"):
        tune(spec_for("main", instance_paths), resume_run_id="deadbeef")


# ---- failures inside a session --------------------------------------------------------------


def test_a_crashing_trial_does_not_stop_the_session(monkeypatch: pytest.MonkeyPatch,
                                                    instance_paths: tuple[str, ...]) -> None:
    real = tuning_session.evaluate
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any):
        calls.append(1)
        if len(calls) == 2:  # call 1 is the reference; trial 1 crashes
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning_session, "evaluate", flaky)
    summary = tune(spec_for("flaky", instance_paths, trials=3))
    assert summary["trials"] == 3
    # the reference and trials 1-2; trial 3 (tuner seed 0) holds a known-unsound combination
    # and is refused without a solve; then the race's re-runs, if any
    assert len(calls) >= 3
    mlflow_client = client()
    assert mlflow_client.get_run(summary["run_id"]).info.status == "FINISHED"
    by_index = {trial_index(r): r for r in nested_runs(mlflow_client, summary["run_id"])}
    assert sorted(by_index) == [0, 1, 2, 3]
    for index, error in ((1, "RuntimeError: boom"), (3, "invalid configuration: point")):
        run = by_index[index]
        assert run.info.status == "FAILED"
        assert run.data.tags["fresh_solver.status"] == "failed"
        assert run.data.tags["fresh_solver.error"].startswith(error)
        assert run.data.metrics["score"] == pytest.approx(worst_score("time_to_target", LIMIT))
        assert run.data.metrics["failed"] == 1
    for index in (0, 2):
        assert by_index[index].info.status == "FINISHED"
        assert by_index[index].data.tags["fresh_solver.status"] == "ok"
    assert summary["best_score"] < worst_score("time_to_target", LIMIT)


def test_a_config_or_tools_refuses_is_a_failed_trial(monkeypatch: pytest.MonkeyPatch,
                                                     instance_paths: tuple[str, ...]) -> None:
    # `fresh_solver.solver.solve` the attribute is the function; the module is in sys.modules
    solve_module = importlib.import_module("fresh_solver.solver.solve")
    real_apply = solve_module.apply_parameters

    def refusing(solver, params):
        if params:  # the reference (CP-SAT defaults) has none
            raise InputError(f"OR-Tools refused the parameters: {sorted(params)[0]}")
        return real_apply(solver, params)

    monkeypatch.setattr(solve_module, "apply_parameters", refusing)
    summary = tune(spec_for("refused", instance_paths, trials=2))
    assert summary["trials"] == 2
    assert summary["best_params"] == SolverConfig().to_dict()  # nothing beat the defaults
    assert summary["best_score"] == pytest.approx(summary["default_score"])
    runs = nested_runs(client(), summary["run_id"])
    failed = [r for r in runs if r.data.tags["fresh_solver.role"] == "trial"]
    assert len(failed) == 2
    for run in failed:
        assert run.info.status == "FAILED"
        assert run.data.tags["fresh_solver.status"] == "failed"
        assert run.data.tags["fresh_solver.error"].startswith(
            "InputError: OR-Tools refused the parameters")
        assert run.data.metrics["score"] == pytest.approx(worst_score("time_to_target", LIMIT))


INVALID_POINT_SPACES = {
    # the enum's numbers are 0, 1 and 5: both ends are valid, 2-4 are not
    "enum with a gap": ("[cp_sat.binary_minimization_algorithm]\nkind = 'integer'\n"
                        "low = 0\nhigh = 5\n", "binary_minimization_algorithm"),
    # an integer field searched as a real: 1.0 and 2.0 are valid, 1.37 is not
    "real over an integer": ("[cp_sat.num_workers]\nkind = 'real'\nlow = 1.0\nhigh = 2.0\n",
                             "num_workers"),
}


@pytest.mark.parametrize(("text", "name"), list(INVALID_POINT_SPACES.values()),
                         ids=list(INVALID_POINT_SPACES))
def test_a_point_with_an_invalid_config_is_a_failed_trial(
        tmp_path: Path, instance_paths: tuple[str, ...], text: str, name: str) -> None:
    path = tmp_path / "space.toml"
    path.write_text(text)
    try:
        load_space(path)
    except InputError as exc:  # refusing such a space up front is a fix too
        assert name in str(exc)
        return
    summary = tune(spec_for(f"invalid-{name}", instance_paths, trials=3,
                            space_path=str(path)))
    assert summary["trials"] == 3
    runs = nested_runs(client(), summary["run_id"])
    failed = [r for r in runs if r.data.tags["fresh_solver.status"] == "failed"]
    assert failed
    for run in failed:
        assert run.info.status == "FAILED"
        assert name in run.data.tags["fresh_solver.error"]


def test_a_failed_reference_stops_the_session(monkeypatch: pytest.MonkeyPatch,
                                              instance_paths: tuple[str, ...]) -> None:
    real = tuning_session.evaluate
    calls: list[int] = []

    def reference_crashes(*args: Any, **kwargs: Any):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning_session, "evaluate", reference_crashes)
    with pytest.raises((InputError, RuntimeError)):
        tune(spec_for("no-reference", instance_paths, trials=1))


# ---- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", [
    "GP", "RF", "ET",
    "random",
])
def test_same_tuner_seed_asks_the_same_points(instance_paths: tuple[str, ...],
                                              estimator: str) -> None:
    spec = spec_for("determinism", instance_paths, trials=3, estimator=estimator,
                    tuner_seed=7)
    points = asked_and_told(spec, 3)
    assert asked_and_told(spec, 3) == points
    assert len({json.dumps(p) for p in points}) == 3
    assert TuningSession.from_spec(spec).ask(2) == TuningSession.from_spec(spec).ask(2)
    for point in points:
        assert all(type(v) in PLAIN_TYPES for v in point)
        json.dumps(point)
    assert asked_and_told(replace(spec, tuner_seed=8), 3) != points


def asked_and_told(spec: TuningSpec, n: int) -> list[list[Any]]:
    """The points a session asks one by one, each told a made-up score."""
    session = TuningSession.from_spec(spec)
    session.tell_reference(scoring.Evaluation(1.0))
    for i in range(n):
        session.tell(session.ask(1), [scoring.Evaluation(0.5 + i)])
    return [t.point for t in session.searched]


# ---- the `tune` command ---------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from fresh_solver.cli import main

    code = main(["tune", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_tune_json(capsys: pytest.CaptureFixture[str],
                       instance_paths: tuple[str, ...]) -> None:
    code, out, err = run_cli(capsys, "--template-id", "cli", "--instances", *instance_paths,
                             "--trials", "1", "--trial-time-limit", str(LIMIT), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["experiment"] == "fresh-solver/tuning/cli"
    assert summary["trials"] == 1
    assert "Traceback" not in err


def test_cli_tune_chooses_the_metric_by_the_templates_shape(
        capsys: pytest.CaptureFixture[str], instance_paths: tuple[str, ...]) -> None:
    code, out, err = run_cli(capsys, "--template-id", "cli-auto", "--instances",
                             *instance_paths, "--trials", "1", "--trial-time-limit", "2",
                             "--metric", "auto", "--race", "0", "--json")
    assert code == 0, err
    assert "--metric auto: the CP-SAT defaults proved 2 of 2 instances within 2 s: " \
        "time to target" in err
    assert client().get_run(json.loads(out)["run_id"]).data.params["metric"] == \
        "time_to_target"


@pytest.mark.parametrize(("args", "message"), [
    (["--trials", "0"], "--trials: must be >= 1, got 0"),
    (["--template-id", "a/b"], "--template-id: must be a non-empty name without '/'"),
    (["--seeds", "0"], "--seeds: must be >= 1"),
    (["--trial-time-limit", "-1"], "--trial-time-limit: must be a positive number"),
    (["--trial-time-limit", "0", "--metric", "auto"], "--trial-time-limit: must be a positive"),
    (["--instances", "MISSING"], "cannot read"),
    (["--resume", "0123456789abcdef"], "no MLflow run '0123456789abcdef'"),
    (["--space", "MISSING_SPACE"], "cannot read"),
])
def test_cli_tune_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                            instance_paths: tuple[str, ...], args: list[str],
                            message: str) -> None:
    options = {"--template-id": "cli-bad", "--instances": list(instance_paths),
               "--trials": "1", "--trial-time-limit": str(LIMIT)}
    for i in range(0, len(args), 2):
        value = args[i + 1]
        if value.startswith("MISSING"):
            value = str(tmp_path / f"{value.lower()}.json")
        options[args[i]] = [value] if args[i] == "--instances" else value
    argv: list[str] = []
    for flag, value in options.items():
        argv += [flag, *value] if isinstance(value, list) else [flag, value]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert "fresh-solver tune: error: " in err
    assert "Traceback" not in err
    assert out == ""


@pytest.mark.parametrize("args", [["--metric", "nope"], ["--estimator", "GBRT"],
                                  ["--trials", "many"]])
def test_cli_tune_argparse_errors(capsys: pytest.CaptureFixture[str],
                                  instance_paths: tuple[str, ...], args: list[str]) -> None:
    argv = ["--template-id", "cli-bad", "--instances", *instance_paths, "--trials", "1",
            "--trial-time-limit", str(LIMIT), *args]
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, *argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert args[0] in err
    assert "Traceback" not in err


def test_a_raced_pair_is_scored_by_the_median_of_its_runs_against_one_target(
        instance_paths: tuple[str, ...]) -> None:
    # the race repeats short pairs; one lucky timing must not decide it, and the
    # reference's later runs are timed to the target its first run set, not to their own
    session = TuningSession.from_spec(spec_for("median", instance_paths, trials=1))
    name = next(iter(session.instances))
    reference_runs = [fake_result("FEASIBLE", [(0.1, 12), (0.3, 10)], T),
                      fake_result("FEASIBLE", [(0.05, 10)], T),  # to 10 in 0.05 s
                      fake_result("FEASIBLE", [(0.2, 11)], T)]  # never reaches 10: PAR2
    reference = session.score_runs(SolverConfig(), {(name, 0): reference_runs})
    assert reference.runs[0].score == pytest.approx(0.3)  # median of 0.3, 0.05, PAR2
    assert reference.runs[0].objective == 10  # the first run's result: the pair's target
    assert reference.runs[0].wall_time_s == pytest.approx(3 * T)  # all three solves
    candidate_runs = [fake_result("FEASIBLE", [(0.01, 10)], T),
                      fake_result("FEASIBLE", [(0.2, 10)], T),
                      fake_result("FEASIBLE", [(0.1, 10)], T)]
    candidate = session.score_runs(SolverConfig(), {(name, 0): candidate_runs},
                                   references_from(reference))
    assert candidate.score == pytest.approx(0.1)


def raced_session(instance_paths: tuple[str, ...], **kw: Any) -> TuningSession:
    """A session with the reference and two told trials (no solving): trial 1 scored best."""
    session = TuningSession.from_spec(spec_for("intensify", instance_paths, trials=2,
                                               metric="time_to_optimum", **kw))
    session.tell_reference(scoring.Evaluation(1.0))
    session.tell(session.ask(2), [scoring.Evaluation(0.5), scoring.Evaluation(0.6)])
    return session


def fake_race_runs(times: dict[str | int, list[float]], calls: list) -> Any:
    """A stand-in for measure_pairs: every configuration proves the optimum (10) in the time
    ``times`` gives it for each race pair, in the order the blocks measure them."""
    def measure(configs, instances, seeds, time_limit, target=None):
        calls.append((sorted(map(str, configs)), list(seeds)))
        runs: dict = {tuning_session.TARGET: {}}
        pairs = [(name, seed) for name in instances for seed in seeds]
        for key in pairs:
            runs[tuning_session.TARGET][key] = [fake_result("OPTIMAL", [(0.5, 10)], 0.5)]
        for name in configs:
            runs[name] = {key: [fake_result("OPTIMAL", [(t / 2, 10)], t)]
                          for key, t in zip(pairs, times[name][len(calls[:-1]) * 4:])}
        return runs
    return measure


def test_an_undecided_race_takes_more_seeds_for_the_contenders_still_in_question(
        instance_paths: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    # Trial 1 is ahead after the first block (1.25x) but not yet significant (one pair of
    # four slower: p = 0.125); trial 2 is slower than the defaults and leaves the race.
    calls: list = []
    times = {"reference": [1.0] * 8, 1: [0.7, 0.71, 1.2, 0.72] + [0.7] * 4, 2: [1.5] * 8}
    monkeypatch.setattr(tuning_session, "measure_pairs", fake_race_runs(times, calls))
    winner, race = raced_session(instance_paths, race_rounds=3).race()
    assert calls == [(["1", "2", "reference"], [1, 2]), (["1", "reference"], [3, 4])]
    assert winner.index == 1 and race["seeds"] == [1, 2, 3, 4]
    assert race["contenders"][1]["pairs"] == 8 and race["contenders"][1]["blocks"] == 2
    assert race["contenders"][1]["p_value"] < 0.1
    assert race["contenders"][2]["blocks"] == 1 and race["contenders"][2]["gain"] < 1


def test_one_block_of_race_seeds_decides_as_before(instance_paths: tuple[str, ...],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    times = {"reference": [1.0] * 4, 1: [0.7, 0.71, 1.2, 0.72], 2: [1.5] * 4}
    monkeypatch.setattr(tuning_session, "measure_pairs", fake_race_runs(times, calls))
    winner, race = raced_session(instance_paths).race()
    assert len(calls) == 1 and winner.index == 0  # the defaults: not significant in one block
    assert race["contenders"][1]["p_value"] == pytest.approx(0.125)
    assert "p = 0.12" in tuning_session.why_defaults_kept(race, 1.1)


def test_the_race_runs_each_distinct_point_once_and_never_the_defaults_own(
        instance_paths: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    # In a small (screened) space the optimiser asks points again: the three best trials here
    # are the defaults' own point and one point twice, so one contender races, not three.
    calls: list = []
    monkeypatch.setattr(tuning_session, "measure_pairs", fake_race_runs(
        {"reference": [1.0] * 4, 2: [0.5] * 4}, calls))
    session = TuningSession.from_spec(spec_for("distinct", instance_paths, trials=3,
                                               metric="time_to_optimum", race=3))
    session.tell_reference(scoring.Evaluation(1.0))
    point = session.ask(1)[0]
    assert point != session.anchor
    session.tell([session.anchor, point, point], [scoring.Evaluation(s) for s in (0.4, 0.5, 0.6)])
    winner, race = session.race()
    assert calls == [(["2", "reference"], [1, 2])]
    assert winner.index == 2 and list(race["contenders"]) == [2]


def test_why_the_race_kept_the_defaults_is_one_line_with_its_figures() -> None:
    race = {"contenders": {"3": {"gain": 1.04, "p_value": 0.31},
                           "5": {"gain": 1.21, "p_value": 0.12},
                           "7": {"unsound": "unsound: proved 108 where 105 is feasible"}}}
    assert tuning_session.why_defaults_kept(race, 1.1) == (
        "the race kept the CP-SAT defaults: its best contender ran 1.21x their speed on "
        "fresh seeds (Wilcoxon p = 0.12); a tuned set needs >= 1.1x and p < 0.1")
    assert "no sound trial" in tuning_session.why_defaults_kept({"contenders": {}}, 1.1)


def test_the_race_returns_the_defaults_without_a_confirmed_gain(
        instance_paths: tuple[str, ...]) -> None:
    spec = spec_for("race", instance_paths, trials=2, min_gain=1e9)
    summary = tune(spec)
    assert summary["best_trial"] == 0  # the reference
    assert summary["best_params"] == SolverConfig().to_dict()
    names = {a.path for a in client().list_artifacts(summary["run_id"])}
    if summary["race"]["contenders"]:
        assert "race.json" in names
        assert all(r["gain"] < 1e9 for r in summary["race"]["contenders"].values())
