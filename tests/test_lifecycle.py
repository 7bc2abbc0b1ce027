"""The lifecycle's settings, instance sets and pool rule, without Airflow (fast).

The DAG end to end is in test_dags.py (dag.test) and test_devstack.py (a real Airflow).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from fresh_solver.choices import validation_metric
from fresh_solver.errors import InputError
from fresh_solver.lifecycle import pool, retune
from fresh_solver.lifecycle.settings import RETUNE_SETTINGS, resolve, scheduled_confs
from fresh_solver.model.generate import generate_family
from fresh_solver.model.problem import problem_to_dict

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_every_problem_is_named_at_once() -> None:
    assert resolve({})["template_id"] == "*"
    assert set(resolve({"template_id": "gear"})) == set(RETUNE_SETTINGS)
    with pytest.raises(InputError) as error:
        resolve({"template_id": "a b", "trials": 0, "trial_time_limit": "5", "bogus": 1})
    problems = "\n".join(error.value.problems)
    assert "params.template_id: 'a b' is not a name" in problems
    assert "params.trials: 0 is less than the minimum of 1" in problems
    assert "params.trial_time_limit: '5' is not of type 'number'" in problems
    assert "'bogus' was unexpected" in problems


def test_an_emptied_form_field_reads_as_empty_text() -> None:
    """Airflow's trigger form sends a text field the user emptied as null."""
    settings = resolve({"template_id": "gear", "instances_folder": None, "space": None})
    assert (settings["instances_folder"], settings["space"]) == ("", "")
    with pytest.raises(InputError, match="params.trials: None is not of type 'integer'"):
        resolve({"template_id": "gear", "trials": None})


def test_the_shipped_schedule_file_is_valid() -> None:
    confs = scheduled_confs(ROOT / "dags" / "retune_templates.toml")
    assert [c["template_id"] for c in confs] == ["demo"]


@pytest.mark.parametrize(("text", "expected"), [
    ("", "no [[retune]] table"),
    ("[[retune]]\ntrials = 3\n", "retune[0].template_id: name one template"),
    ("[[retune]]\ntemplate_id = 'gear'\ntrials = -1\n", "retune[0]: params.trials"),
    ("[[retune]\n", "malformed TOML"),
])
def test_a_bad_schedule_file_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "retune_templates.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=expected.replace("[", r"\[")):
        scheduled_confs(path)


def write_instances(folder: Path, names: list[str], template_id: str = "gear") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        problem = problem_to_dict(generate_family("small", 1, i, template_id=template_id))
        (folder / f"{name}.json").write_text(json.dumps(problem))


def test_a_folder_splits_by_the_hash_of_file_names(tmp_path: Path) -> None:
    names = [f"week-{i:02d}" for i in range(9)]
    write_instances(tmp_path / "a", names)
    write_instances(tmp_path / "a", ["other"], template_id="bracket")  # not this template's
    train, held_out = retune.split_folder(tmp_path / "a", "gear", 0.34)
    assert len(held_out) == 3 and len(train) == 6
    assert not {Path(p).name for p in train} & {Path(p).name for p in held_out}
    assert "other.json" not in {Path(p).name for p in train + held_out}
    # the same names in another folder, written in another order: the same split
    write_instances(tmp_path / "b", list(reversed(names)))
    train_b, held_out_b = retune.split_folder(tmp_path / "b", "gear", 0.34)
    assert [Path(p).name for p in held_out_b] == [Path(p).name for p in held_out]


def test_a_folder_with_one_instance_of_the_template_is_refused(tmp_path: Path) -> None:
    write_instances(tmp_path, ["only"])
    with pytest.raises(InputError, match="need at least one each"):
        retune.split_folder(tmp_path, "gear", 0.5)


def test_generated_sets_are_written_once_and_held_out_differs_from_training() -> None:
    settings = resolve({"template_id": "gen", "generator_scale": "small",
                        "generator_seed": 2, "train_instances": 3, "held_out_instances": 4})
    train, held_out = retune.generate_instances("gen", settings)
    assert (train, held_out) == retune.generate_instances("gen", settings)
    bodies = [json.loads(Path(p).read_text()) for p in train + held_out]
    for body in bodies:
        assert body["templates"][0]["id"] == "gen"
        del body["name"]
    assert len({json.dumps(b, sort_keys=True) for b in bodies}) == 7


def test_prepare_needs_one_template() -> None:
    with pytest.raises(InputError, match="one run per listed template"):
        retune.prepare({"template_id": "*"})


@pytest.mark.parametrize(("metric", "judged_by"), [
    ("time_to_target", "time_to_target"), ("time_to_optimum", "time_to_target"),
    ("gap_integral", "gap_integral"), ("objective_at_limit", "gap_integral")])
def test_validation_judges_by_the_metric_the_session_was_tuned_for(metric: str,
                                                                   judged_by: str) -> None:
    plan = retune.prepare({"template_id": "judged", "generator_scale": "small",
                           "train_instances": 2, "held_out_instances": 2, "metric": metric})
    assert plan["validation"]["metric"] == judged_by


@pytest.mark.parametrize(("scale", "trial_time_limit", "chosen"), [
    ("small", 2.0, "time_to_target"), ("large", 0.01, "gap_integral")])
def test_the_auto_metric_follows_whether_the_defaults_prove_the_training_instances(
        scale: str, trial_time_limit: float, chosen: str,
        caplog: pytest.LogCaptureFixture) -> None:
    assert resolve({})["metric"] == "auto"  # the DAG's default
    with caplog.at_level(logging.INFO, logger=retune.log.name):
        plan = retune.prepare({"template_id": f"shape-{scale}", "generator_scale": scale,
                               "train_instances": 2, "held_out_instances": 2,
                               "trial_time_limit": trial_time_limit})
    assert plan["tuning"]["metric"] == chosen
    assert plan["validation"]["metric"] == validation_metric(chosen)
    proven = 2 if chosen == "time_to_target" else r"[01]"
    assert re.search(rf"retune shape-{scale}: metric auto \(training instances\): the CP-SAT "
                     rf"defaults proved {proven} of 2 instances within {trial_time_limit:g} s",
                     caplog.text)


def test_the_trial_pool_never_lets_trials_share_cores(tmp_path: Path) -> None:
    assert pool.trial_workers() == 8  # the shipped space searches num_workers 1..8
    assert [pool.trial_pool_slots(cores) for cores in (1, 2, 8, 16, 64)] == [1, 1, 1, 2, 8]
    space = tmp_path / "space.toml"
    space.write_text("[cp_sat.num_workers]\nkind = 'integer'\nlow = 1\nhigh = 2\n")
    assert pool.trial_pool_slots(16, str(space)) == 8


def test_a_scheduled_run_that_starts_late_is_a_missed_one_and_retunes_nothing():
    """Unpausing the weekly DAG makes Airflow start a run for the last Sunday at once; that
    run (hours or days late) must not spend the full budget the user never asked for, while a
    scheduler that came back within the grace still runs the week's retune."""
    from datetime import UTC, datetime, timedelta

    from fresh_solver.lifecycle.settings import MISSED_RUN_GRACE, missed_run

    sunday = datetime(2026, 11, 29, tzinfo=UTC)
    reason = missed_run("scheduled", sunday, sunday + timedelta(days=3, hours=5))
    assert reason.startswith("the scheduled run for 2026-11-29 00:00 UTC starts 3 d 5 h late")
    assert "retunes nothing" in reason and "trigger one" in reason
    assert missed_run("scheduled", sunday, sunday + MISSED_RUN_GRACE) is None
    assert missed_run("scheduled", sunday, sunday + timedelta(minutes=1)) is None
    for run_type in ("manual", "asset_triggered", "backfill"):
        assert missed_run(run_type, sunday, sunday + timedelta(days=6)) is None
    assert missed_run("scheduled", None, sunday) is None


def test_the_reviewers_link_goes_straight_to_the_version_page(monkeypatch):
    """MLflow 3's UI opens in GenAI mode, whose sidebar has no Models entry; the printed links
    go straight to the page, on a server and for the embedded store."""
    from fresh_solver import tracking
    from fresh_solver.lifecycle.retune import _ui_hint

    assert tracking.ui_link("http://h:5000/", "/models/m/versions/2") == \
        "http://h:5000/#/models/m/versions/2"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert _ui_hint("/models/m") == "http://mlflow.example:5000/#/models/m"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert _ui_hint("/models/m").endswith("at http://127.0.0.1:5000/#/models/m")
