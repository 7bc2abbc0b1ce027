"""The Airflow DAGs: integrity (Airflow's own DagBag) and the retune DAG end to end with
``dag.test()`` on an embedded SQLite metadata DB and MLflow store.

Airflow reads its configuration once, at import: the module fixture points AIRFLOW_HOME at a
fresh folder, migrates its database and only then imports Airflow. ``dag.test()`` runs every
task in this process, which lets a test swap the trial scores for fixed ones (the wiring is
under test here, not the speed of a configuration) or fail a task once to see it retried.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fresh_solver.lifecycle.settings import RETUNE_SETTINGS, max_rounds

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
pytestmark = pytest.mark.timeout(600)
ROUNDS = max_rounds()  # what the DAG file unrolls

# A small, quick retune: small generated instances, short trials, no race.
TINY = {"generator_scale": "small", "generator_seed": 3, "train_instances": 2,
        "held_out_instances": 2, "trials": 3, "batch_size": 2, "trial_time_limit": 0.2,
        "race": 0, "validation_seeds": 3, "validation_time_limit": 0.3}


@pytest.fixture(scope="module")
def airflow_dagbag(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("airflow")
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
           "FRESH_SOLVER_RETRY_DELAY_S": "0"}
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(home):
        pytest.fail("Airflow was imported before this module configured it")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                       check=True, capture_output=True, env=os.environ.copy())
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(str(DAGS))


@pytest.fixture(scope="module")
def retune_dag(airflow_dagbag):
    return airflow_dagbag.dags["fresh_solver_retune"]


def run_dag(dag, conf: dict[str, Any]):
    """``dag.test()`` with this run conf; the finished run and its task instances by id."""
    run = dag.test(run_conf=conf)
    tis: dict[str, list] = {}
    for ti in run.get_task_instances():
        tis.setdefault(ti.task_id, []).append(ti)
    return run, tis


def mlflow_client():
    from fresh_solver import tracking

    return tracking.client()


def runs_of(experiment: str, filter_string: str = "") -> list:
    client = mlflow_client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], filter_string=filter_string,
                              max_results=1000)


def versions_of(template_id: str) -> list:
    from fresh_solver.registry.registry import ParameterRegistry

    return ParameterRegistry().versions(template_id)


# ---- integrity ------------------------------------------------------------------------------


def test_dag_files_import_without_errors(airflow_dagbag) -> None:
    assert airflow_dagbag.import_errors == {}
    assert set(airflow_dagbag.dag_ids) >= {"fresh_solver_retune"}
    for stat in airflow_dagbag.dagbag_stats:  # printed, not asserted: timing is not behaviour
        print(f"parse time {stat.file}: {stat.duration}")


def test_retune_dag_shape(retune_dag) -> None:
    dag = retune_dag
    assert dag.dag_id == "fresh_solver_retune"
    assert dag.timetable.expression == "0 0 * * 0"  # @weekly
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.tags) == {"fresh-solver", "tuning"}
    assert set(dag.params.keys()) == set(RETUNE_SETTINGS)
    assert dag.params["template_id"] == "*"
    for task in dag.tasks:
        if task.task_id in ("route", "retune_each"):
            assert task.retries == 0, task.task_id  # a branch; a trigger must not repeat
        else:
            assert task.retries == 2 and task.retry_exponential_backoff, task.task_id
            assert task.on_failure_callback, task.task_id
    trials = [t for t in dag.tasks if t.task_id.startswith("trial_")]
    assert trials and all(t.pool == "fresh_solver_trials" for t in trials)
    assert {t.task_id for t in dag.tasks} >= {"prepare", "start", "trial_0", "tell_0", "race",
                                              "validate", "register", "notify"}


def test_dag_file_imports_nothing_heavy() -> None:
    """Parsing must stay fast: no solver, MLflow, optimiser or pandas import at top level."""
    code = ("import runpy, sys; runpy.run_path(sys.argv[1]); "
            "print([m for m in ('ortools', 'mlflow', 'skopt', 'sklearn') if m in sys.modules])")
    for dag_file in sorted(DAGS.glob("*.py")):
        out = subprocess.run([sys.executable, "-c", code, str(dag_file)], capture_output=True,
                             text=True, check=True, env=os.environ.copy())
        assert out.stdout.strip().splitlines()[-1] == "[]", dag_file.name


def _modules_the_tasks_import() -> set[str]:
    """Every ``fresh_solver`` module a DAG file's task functions import when they run."""
    found = set()
    for dag_file in DAGS.glob("*.py"):
        for function in ast.walk(ast.parse(dag_file.read_text())):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and node.module.startswith("fresh_solver"):
                    found |= {_module(node.module, alias.name) for alias in node.names}
    return found


def _module(module: str, name: str) -> str:
    """``from module import name``: the submodule ``name``, else ``module`` itself."""
    try:
        return f"{module}.{name}" if importlib.util.find_spec(f"{module}.{name}") else module
    except ModuleNotFoundError:  # ``module`` is not a package
        return module


def test_the_forking_process_has_imported_every_task_module() -> None:
    """The scheduler and the Celery workers run ``airflow_local_settings`` (the stacks put it on
    their PYTHONPATH): after it, what the tasks import (and MLflow, scikit-optimize, CP-SAT)
    is loaded already, so no forked task pays for it."""
    wanted = sorted(_modules_the_tasks_import()
                    | {"mlflow", "skopt", "ortools.sat.python.cp_model"})
    assert "fresh_solver.lifecycle.retune" in wanted
    from fresh_solver.preload import SETTINGS_FOLDER

    code = ("import sys, airflow_local_settings; "
            "print([m for m in sys.argv[1:] if m not in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, *wanted], capture_output=True, text=True,
                         check=True, env=os.environ | {"PYTHONPATH": str(SETTINGS_FOLDER)})
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "imported the tasks' modules before forking tasks" in out.stderr


# ---- end to end -----------------------------------------------------------------------------


def fix_trial_scores(mp: pytest.MonkeyPatch) -> None:
    """Trials score below any reference (the time floor); the reference's and validation's
    solves stay real (and checked by the independent checker)."""
    from fresh_solver.measure import TIME_FLOOR_S
    from fresh_solver.tuning import session as tuning_session

    def fixed(spec, space, instances, point, context):
        return tuning_session.Evaluation(TIME_FLOOR_S)

    mp.setattr(tuning_session, "score_point", fixed)


def pass_every_verdict(mp: pytest.MonkeyPatch) -> None:
    """Tiny instances make speedups noise: the wiring tests fix the judge's verdict to a pass
    (the judge itself is tested in test_validation.py)."""
    from fresh_solver.validation import validator

    mp.setattr(validator, "judge", lambda comparisons, invalid, rule: [])


@pytest.fixture
def fixed_trial_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    fix_trial_scores(monkeypatch)


@pytest.fixture
def passing_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    pass_every_verdict(monkeypatch)


@pytest.fixture(scope="module")
def wired_run(retune_dag):
    """One retune run whose first trial task dies before returning, and whose first tell
    dies right after logging trial 1 (their retries must not add a run)."""
    from fresh_solver.tuning import record
    from fresh_solver.tuning import session as tuning_session

    real_log_trial = record.SessionRecord.log_trial
    failures: list[str] = []

    def fails_once_after_logging(self, trial, space, fingerprint=None):
        run_id = real_log_trial(self, trial, space, fingerprint)
        if trial.index == 1 and "tell" not in failures:
            failures.append("tell")
            raise ConnectionError("worker lost after logging trial 1")
        return run_id

    with pytest.MonkeyPatch.context() as mp:
        fix_trial_scores(mp)
        fixed = tuning_session.score_point

        def fails_once(*args):
            if "trial" not in failures:
                failures.append("trial")
                raise ConnectionError("worker lost while solving")
            return fixed(*args)

        mp.setattr(tuning_session, "score_point", fails_once)
        pass_every_verdict(mp)
        mp.setattr(record.SessionRecord, "log_trial", fails_once_after_logging)
        run, tis = run_dag(retune_dag, {"template_id": "wired", **TINY})
    return run, tis, failures


def test_retune_registers_a_validated_version_in_staging_and_survives_a_retried_trial(
        wired_run) -> None:
    run, tis, failures = wired_run
    assert run.state == "success"
    assert failures == ["trial", "tell"]
    # TINY's trials solve for milliseconds: the round's two points share one task
    # (retune.trial_tasks), which died once and was retried.
    [trial] = tis["trial_0"]
    assert trial.try_number == 2 and trial.state == "success"
    assert [r["index"] for r in trial.xcom_pull(task_ids="trial_0", map_indexes=0)] == [1, 2]
    [told] = tis["tell_0"]
    assert told.try_number == 2 and told.state == "success"
    # Past the budget (3 trials in rounds of 2) no task starts: tell_1 hands on no points.
    assert not any(task_id.startswith("ask") for task_id in tis)
    assert tis["tell_1"][0].xcom_pull(task_ids="tell_1") == []
    for task_id in [f"{kind}_{r}" for r in range(2, ROUNDS) for kind in ("trial", "tell")]:
        assert [(ti.state, ti.try_number) for ti in tis[task_id]] == [("skipped", 0)], task_id

    [session] = runs_of("fresh-solver/tuning/wired", "tags.fresh_solver.kind = 'tuning-session'")
    assert session.info.status == "FINISHED"
    assert session.data.tags["fresh_solver.session_key"] == run.run_id
    trials = runs_of("fresh-solver/tuning/wired",
                     f"tags.mlflow.parentRunId = '{session.info.run_id}'")
    indices = sorted(int(r.data.tags["fresh_solver.trial"]) for r in trials)
    assert indices == [0, 1, 2, 3]  # one run per trial, the retried one included

    [validation] = runs_of("fresh-solver/validation/wired")
    assert validation.data.tags["fresh_solver.tuning_run_id"] == session.info.run_id
    assert validation.data.tags["validation_status"] == "passed"
    [version] = versions_of("wired")
    assert version.current_stage == "Staging"
    assert version.tags["tuning_run_id"] == session.info.run_id
    assert version.tags["validation_run_id"] == validation.info.run_id
    assert session.data.tags["fresh_solver.validation_run_id"] == validation.info.run_id
    assert mlflow_client().get_run(session.info.run_id).data.tags[
        "fresh_solver.registered_version"] == f"fresh-solver-wired/{version.version}"

    [notify] = tis["notify"]
    message = notify.xcom_pull(task_ids="notify")["message"]
    assert f"fresh-solver registry promote wired {version.version} --approved-by" in message
    assert "Aliases" in message


def test_the_overhead_report_splits_task_time_into_solving_and_the_rest(
        wired_run, tmp_path: Path) -> None:
    """The reference (start) and validation solved for real; the trials' scores were fixed,
    so they solved nothing."""
    from benchmarks import retune_overhead

    airflow_db = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    assert retune_overhead.main(["--out", str(tmp_path), "--airflow-db", str(airflow_db)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["by_kind"]["start"]["solve_s"] > 0
    assert results["by_kind"]["validate"]["solve_s"] > 0
    assert results["by_kind"]["trial"]["tasks"] == 2  # trial_0[0] (2 points), trial_1[0]
    for row in results["by_kind"].values():
        assert row["solve_s"] <= row["duration_s"]
    assert "| task | runs | duration s | solving s | overhead s |" in \
        (tmp_path / "report.md").read_text()


def test_the_overhead_report_finds_each_trial_s_task_as_the_dag_split_the_round() -> None:
    from benchmarks.retune_overhead import trial_task_keys

    # 6 trials in rounds of 4: short trials share their round's task, long ones have their own
    assert trial_task_keys(6, 4, 0.3) == {1: "trial_0[0]", 2: "trial_0[0]", 3: "trial_0[0]",
                                          4: "trial_0[0]", 5: "trial_1[0]", 6: "trial_1[0]"}
    assert trial_task_keys(6, 4, 3.0) == {1: "trial_0[0]", 2: "trial_0[1]", 3: "trial_0[2]",
                                          4: "trial_0[3]", 5: "trial_1[0]", 6: "trial_1[1]"}
    assert set(trial_task_keys(6, 4, 0.8).values()) == {"trial_0[0]", "trial_0[1]",
                                                        "trial_1[0]"}


def test_a_failed_validation_ends_the_run_successfully_and_registers_nothing(
        retune_dag, fixed_trial_scores) -> None:
    run, tis = run_dag(retune_dag, {"template_id": "too-strict", **TINY,
                                    "min_speedup": 1000.0})
    assert run.state == "success"
    [validation] = runs_of("fresh-solver/validation/too-strict")
    assert validation.data.tags["validation_status"] == "failed"
    assert versions_of("too-strict") == []
    [notify] = tis["notify"]
    assert "Nothing registered: speedup vs defaults" in notify.xcom_pull(
        task_ids="notify")["message"]


@pytest.mark.parametrize(("solving_s", "sizes"), [
    (0.3, [4]),        # short trials: the round in one task
    (0.7, [2, 2]),     # two per task make 1.4 s; three would pass the 2 s
    (0.9, [2, 2]),
    (3.0, [1, 1, 1, 1]),  # trials of seconds: a task each, run as the trial pool allows
    (0.0, [4]),
])
def test_a_round_s_points_go_to_as_few_trial_tasks_as_give_each_seconds_of_solving(
        solving_s: float, sizes: list[int]) -> None:
    from fresh_solver.lifecycle import retune

    items = [{"index": i} for i in range(1, 5)]
    tasks = retune.trial_tasks(items, solving_s)
    assert [len(task) for task in tasks] == sizes
    assert [item for task in tasks for item in task] == items  # in order, each once
    assert retune.trial_tasks([], solving_s) == []
    assert len(retune.trial_tasks(items[:3], solving_s)) == min(3, len(sizes))


@pytest.mark.parametrize("race", [0, 1])
def test_a_retried_dag_run_reuses_its_session(fixed_trial_scores, passing_verdict,
                                              monkeypatch: pytest.MonkeyPatch,
                                              race: int) -> None:
    """Every task is idempotent: running the lifecycle's tasks again for the same Airflow run
    (here: the same session key) adds no session, trial, validation or version, and neither
    races nor validates again. Without a race the winner (and so the version) is certain."""
    from fresh_solver.lifecycle import retune
    from fresh_solver.tuning.session import TuningSession

    template_id = f"again-{race}"
    plan = retune.prepare({"template_id": template_id, **TINY, "race": race, "race_seeds": 2})
    outcome = []
    for attempt in range(2):
        if attempt:  # a cleared run asks its recorded points again, without a new GP fit
            monkeypatch.setattr(TuningSession, "ask", lambda self, n: pytest.fail("re-asked"))
        started = retune.start(plan, session_key="manual__same")
        run_id, tasks = started["run_id"], started["tasks"]
        for round_ in range(2):
            results = [retune.evaluate(plan, points) for points in tasks]
            tasks = retune.tell(plan, run_id, round_, results)["tasks"]
        assert tasks == []  # past the budget (3 trials in rounds of 2)
        candidate = retune.race(plan, run_id)
        verdict = retune.validate(plan, candidate)
        outcome.append((run_id, candidate, verdict, retune.register(plan, run_id, verdict)))
    assert outcome[0] == outcome[1]
    experiment = f"fresh-solver/tuning/{template_id}"
    [session] = runs_of(experiment, "tags.fresh_solver.kind = 'tuning-session'")
    assert session.info.status == "FINISHED"  # re-reading it did not reopen it
    validated = outcome[0][2]["validated"]
    assert len(runs_of(f"fresh-solver/validation/{template_id}")) == int(validated)
    versions = versions_of(template_id)
    assert len(versions) == int(outcome[0][2]["passed"])
    if race == 0:
        assert [v.current_stage for v in versions] == ["Staging"]
        # a first attempt that died between registering and staging: the retry stages it
        from fresh_solver.registry.registry import ParameterRegistry

        ParameterRegistry()._transition(template_id, versions[0].version, "None")
        run_id, _, verdict, registered = outcome[0]
        assert retune.register(plan, run_id, verdict) == registered
        assert [v.current_stage for v in versions_of(template_id)] == ["Staging"]

        # promoted, then found again by a new session: nothing new to register
        ParameterRegistry().promote(template_id, registered["version"], "reviewer")
        monkeypatch.undo()
        fix_trial_scores(monkeypatch)
        pass_every_verdict(monkeypatch)
        started = retune.start(plan, session_key="manual__next-week")
        run_id, tasks = started["run_id"], started["tasks"]
        for round_ in range(2):
            tasks = retune.tell(plan, run_id, round_,
                                [retune.evaluate(plan, points) for points in tasks])["tasks"]
        candidate = retune.race(plan, run_id)
        verdict = retune.validate(plan, candidate)
        assert verdict["candidate_hash"] == outcome[0][2]["candidate_hash"]
        again = retune.register(plan, run_id, verdict)
        assert again == {"version": None, "model": f"fresh-solver-{template_id}",
                         "same_as": registered["version"]}
        assert len(versions_of(template_id)) == 1
        assert "already serves in Production" in retune.notify(
            plan, candidate, verdict, again)["message"]


def test_without_a_race_the_kept_defaults_are_explained_without_reading_a_race() -> None:
    # race = 0 logs no race.json: the demo and the DAG's verdict must not look for one
    from fresh_solver.lifecycle import retune

    plan = {"tuning": {"race": 0, "min_gain": 1.1}}
    assert retune.why_not_tuned(plan, "no-such-run", client=None) == (
        "the search kept the CP-SAT defaults: no trial scored better than them, so there is "
        "nothing to validate")


def test_the_scheduled_run_starts_one_run_per_listed_template(retune_dag) -> None:
    """template_id '*' (the weekly run's): one run of the DAG for each [[retune]] table of
    retune_templates.toml, with that table as its conf; nothing is tuned by the '*' run."""
    from airflow.models.dagrun import DagRun

    # explicit: dag.test() merges each run's conf into the DAG object's params
    run, tis = run_dag(retune_dag, {"template_id": "*"})
    assert run.state == "success"
    assert [ti.state for ti in tis["prepare"]] == ["skipped"]
    assert [(ti.map_index, ti.state) for ti in tis["retune_each"]] == [(0, "success")]
    [triggered] = [r for r in DagRun.find(dag_id="fresh_solver_retune")
                   if r.run_id == f"demo__{run.run_id}"]
    assert triggered.conf["template_id"] == "demo"
    assert triggered.conf["generator_seed"] == 2  # the demo's template, medium-2


# ---- bad input ------------------------------------------------------------------------------


def write_instances(folder: Path, template_id: str, count: int) -> None:
    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.problem import problem_to_dict

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        problem = generate_family("small", 1, i, template_id=template_id)
        (folder / f"{problem.name}.json").write_text(json.dumps(problem_to_dict(problem)))


def assert_failed_at_prepare(run, tis, template_id: str) -> str:
    assert run.state == "failed"
    [prepare] = tis["prepare"]
    assert prepare.state == "failed" and prepare.try_number == 1  # bad input: no retry
    assert all(ti.state in ("skipped", "upstream_failed", None)
               for task_id, group in tis.items() if task_id not in ("prepare", "route")
               for ti in group)
    assert runs_of(f"fresh-solver/tuning/{template_id}") == []
    assert versions_of(template_id) == []
    return prepare.task_id


@pytest.mark.parametrize("case", ["unknown template", "empty folder", "too many rounds",
                                  "missing space file"])
def test_bad_input_fails_the_run_at_its_first_task(retune_dag, tmp_path: Path, case: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "instances"
    conf: dict[str, Any] = {**TINY, "instances_folder": str(folder), "template_id": "gear"}
    if case == "unknown template":
        write_instances(folder, "bracket", 3)
        expected = "no problem file in"
    elif case == "empty folder":
        folder.mkdir()
        expected = "holds no problem files"
    elif case == "too many rounds":
        write_instances(folder, "gear", 3)
        conf |= {"trials": 100, "batch_size": 1}
        expected = "take 100 rounds"
    else:
        write_instances(folder, "gear", 3)
        conf |= {"space": str(tmp_path / "nowhere.toml")}
        expected = "nowhere.toml: cannot read"
    start = time.monotonic()
    run, tis = run_dag(retune_dag, conf)
    assert_failed_at_prepare(run, tis, "gear")
    assert expected in caplog.text
    print(f"{case}: failed in {time.monotonic() - start:.1f} s")


def test_an_unsound_trial_is_scored_failed_without_retry_and_the_run_goes_on(
        retune_dag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared case's configuration, as yet unknown (an empty known-unsound list): its
    trial proves 108 where the reference found 105. The trial task succeeds at its first try
    with the trial scored unsound, and the run validates (the defaults) and ends."""
    from tests.test_soundness import CASE, UNSOUND_REASON, UNSOUND_SPACE

    folder = tmp_path / "instances"
    folder.mkdir()
    for name in ("case-a.json", "case-b.json"):  # one trains, one is held out
        (folder / name).write_text(json.dumps(CASE["problem"]))
    (tmp_path / "space.toml").write_text(UNSOUND_SPACE)
    (tmp_path / "nothing_known.toml").write_text("")
    monkeypatch.setenv("FRESH_SOLVER_KNOWN_UNSOUND", str(tmp_path / "nothing_known.toml"))
    run, tis = run_dag(retune_dag, {**TINY, "template_id": "part",
                                    "instances_folder": str(folder),
                                    "space": str(tmp_path / "space.toml"), "trials": 1,
                                    "batch_size": 1, "trial_time_limit": 10.0,
                                    "validation_seeds": 1, "validation_time_limit": 5.0})
    assert run.state == "success"
    [trial] = tis["trial_0"]
    assert trial.state == "success" and trial.try_number == 1
    [session] = runs_of("fresh-solver/tuning/part", "tags.fresh_solver.kind = 'tuning-session'")
    [unsound] = runs_of("fresh-solver/tuning/part",
                        f"tags.mlflow.parentRunId = '{session.info.run_id}' and "
                        "tags.fresh_solver.trial = '1'")
    assert UNSOUND_REASON.fullmatch(unsound.data.tags["fresh_solver.unsound"])
    assert session.data.tags["fresh_solver.best_trial"] == "0"  # the defaults, not trial 1
    assert versions_of("part") == []


def test_a_param_of_the_wrong_type_is_refused_before_the_run(retune_dag) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="trials"):
        retune_dag.test(run_conf={"template_id": "gear", "trials": -1})


# ---- the health DAG -------------------------------------------------------------------------


@pytest.fixture
def webhook_receiver():
    """A local webhook standing in for an alert destination; yields (url, bodies)."""
    from benchmarks.faults import webhook_receiver as receiver

    with receiver() as server:
        yield server.url + "/hook", server.received


def test_health_dag_shape(airflow_dagbag) -> None:
    dag = airflow_dagbag.dags["fresh_solver_health"]
    assert dag.timetable.expression == "*/15 * * * *"
    assert dag.catchup is False and dag.max_active_runs == 1
    assert {t.task_id for t in dag.tasks} == {"reconcile", "checks", "alerts", "retention",
                                              "rollup"}
    assert all(t.on_failure_callback for t in dag.tasks)


def test_health_dag_alerts_once_through_the_webhook_and_rolls_up(
        airflow_dagbag, webhook_receiver, tmp_path: Path, monkeypatch) -> None:
    """Production solves failing in the window → the health DAG's round alerts the webhook;
    a second round sends nothing new (deduplicated); the roll-up run lands in MLflow."""
    from fresh_solver.operations.monitor import PerformanceMonitor, SolveRecord

    url, bodies = webhook_receiver
    config = tmp_path / "ops.toml"
    config.write_text(f'[channels.hook]\ntype = "webhook"\nurl = "{url}"\n\n'
                      '[[rules]]\nname = "error_rate_high"\n'
                      'condition = "solves >= 10 and error_rate > 0.05"\n'
                      'severity = "critical"\n')
    monkeypatch.setenv("FRESH_SOLVER_CONFIG", str(config))
    monitor = PerformanceMonitor()
    now = time.time()
    width = 15 * 60
    at = (now // width) * width - 60  # in the last whole interval, which rounds roll up
    for i in range(12):
        monitor.record(SolveRecord("flaky", "UNKNOWN" if i % 3 == 0 else "OPTIMAL",
                                   0.5 + i / 100, jobs=4, tasks=12, at=at))
    assert monitor.flush()
    dag = airflow_dagbag.dags["fresh_solver_health"]
    run, tis = run_dag(dag, {})
    assert run.state == "success", {k: [t.state for t in v] for k, v in tis.items()}
    [(_, alert)] = bodies
    assert alert["name"] == "error_rate_high" and alert["status"] == "firing"
    assert alert["template_id"] == "flaky" and alert["details"]["error_rate"] == 4 / 12
    run, _ = run_dag(dag, {})
    assert run.state == "success"
    assert len(bodies) == 1  # still firing: no second page within the repeat interval
    [rollup] = runs_of("fresh-solver/production", "tags.template_id = 'flaky'")  # once
    assert rollup.data.metrics["solves"] == 12 and rollup.data.metrics["errors"] == 4


# ---- the benchmark DAG ----------------------------------------------------------------------


def test_benchmark_dag_shape(airflow_dagbag) -> None:
    from fresh_solver.lifecycle.benchmark_settings import BENCHMARK_SETTINGS

    dag = airflow_dagbag.dags["fresh_solver_benchmark"]
    assert dag.timetable.expression == "0 0 * * *"  # @daily
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.max_active_tasks == 1  # its tasks measure time
    assert set(dag.params.keys()) == set(BENCHMARK_SETTINGS)
    assert {t.task_id for t in dag.tasks} == {
        "plan", "each_template.measure", "each_template.detect", "each_template.revalidate",
        "summarise"}
    for task in dag.tasks:
        assert task.retries == 2 and task.retry_exponential_backoff, task.task_id
        assert task.on_failure_callback, task.task_id
    tasks = dag.task_dict
    assert tasks["each_template.measure"].upstream_task_ids == {"plan"}
    assert tasks["each_template.detect"].upstream_task_ids == {"plan", "each_template.measure"}
    assert "each_template.detect" in tasks["each_template.revalidate"].upstream_task_ids
    assert tasks["summarise"].upstream_task_ids == {"plan", "each_template.revalidate"}


def test_benchmark_dag_benchmarks_a_promoted_template_and_records_a_verdict(
        airflow_dagbag) -> None:
    """'demo' (listed in retune_templates.toml: generated instances) registered and promoted
    with a stand-in validation; one tiny benchmark run ends in success, its benchmark run is
    tagged with the Airflow run and carries the verdict (the first: a baseline)."""
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.registry.registry import ParameterRegistry, _parameters_run

    registry = ParameterRegistry()
    config = SolverConfig.from_dict({"cp_sat": {"num_workers": 1}})
    report = {"template_id": "demo", "passed": True, "reasons": [], "candidate_hash": config.hash,
              "run_id": _parameters_run(registry.client, "demo", config, "passed"),
              "speedup_factor": 1.5, "performance_baseline_s": 0.1,
              "validated_at": "2026-01-02T03:04:05Z", "instance_set": "0123456789abcdef",
              "summary": "Validation PASSED: a test."}
    registry.promote("demo", registry.register("demo", config, report), "tester")

    dag = airflow_dagbag.dags["fresh_solver_benchmark"]
    run, tis = run_dag(dag, {"templates": "demo", "instances": 1, "repetitions": 2,
                             "time_limit": 0.3})
    assert run.state == "success", {k: [t.state for t in v] for k, v in tis.items()}
    [benchmark] = runs_of("fresh-solver/benchmarks",
                          f"tags.`fresh_solver.airflow_run` = '{run.run_id}'")
    assert benchmark.data.tags["fresh_solver.template_id"] == "demo"
    assert benchmark.data.tags["fresh_solver.regression"] == "baseline_established"
    assert benchmark.data.params["params_source.production"] == "registry:fresh-solver-demo/1"
    [summary] = tis["summarise"]
    report = summary.xcom_pull(task_ids="summarise")
    assert report["benchmarked"] == ["demo"] and report["baselines_established"] == ["demo"]
    assert report["revalidated"] == []
