"""The benchmark runner: instances from a template, paired runs, the CSV schema, the MLflow run,
and the `fresh-solver benchmark run` command.

Benchmarks measure speed, so nothing here checks a timing: only what was run, in which order,
and what was recorded. Problems are tiny and caps under a second.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fresh_solver import cli
from fresh_solver.cores import usable_cores
from fresh_solver.errors import InputError
from fresh_solver.fingerprint import fingerprint_id
from fresh_solver.model import problem_from_dict, problem_to_dict
from fresh_solver.model.generate import generate_family
from fresh_solver.model.instantiate import instantiate_template
from fresh_solver.params.workers import default_workers
from fresh_solver.performance.definitions import TemplateBenchmark, load_definition
from fresh_solver.performance.runner import COLUMNS, run_benchmark
from fresh_solver.performance.summary import scale_of

SHOP = {
    "format": "fresh-solver/problem-v1", "name": "shop",
    "machines": [{"id": "A"}, {"id": "B", "capacity": 2}, {"id": "UNUSED"}],
    "templates": [
        {"id": "part", "tasks": [{"id": "cut", "modes": [{"machine": "A", "duration": 3}]},
                                 {"id": "bake", "modes": [{"machine": "B", "duration": 4}]}]},
        {"id": "idle", "tasks": [{"id": "x", "modes": [{"machine": "UNUSED", "duration": 1}]}]},
    ],
    "jobs": [{"template": "part", "count": 2, "release": 0},
             {"id": "rush", "template": "part", "release": 5, "due": 30, "weight": 3}],
    "objective": "weighted_tardiness",
}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("benchmark_inputs")
    family = generate_family("small", 0)
    return {
        "template": write_json(folder / "part.json", problem_to_dict(family)),
        "params": write_json(folder / "one_worker.json", {"cp_sat": {"num_workers": 1}}),
        "other": write_json(folder / "other.json",
                            problem_to_dict(generate_family("small", 1))),
    }


# --- instantiate_template ---------------------------------------------------------------------

def test_instantiate_cycles_through_the_files_jobs_of_the_template() -> None:
    problem = instantiate_template(problem_from_dict(SHOP), "part", 5)
    assert problem.name == "shop-part-n5"
    assert [j.id for j in problem.jobs] == [f"part#{k}" for k in range(5)]
    profiles = [(j.release, j.due, j.weight) for j in problem.jobs]
    assert profiles == [(0, None, 1), (0, None, 1), (5, 30, 3), (0, None, 1), (0, None, 1)]
    assert [m.id for m in problem.machines] == ["A", "B"]  # the machines the template uses
    assert problem.machine_by_id["B"].capacity == 2
    assert [t.id for t in problem.templates] == ["part"]
    assert problem.objective == "weighted_tardiness"
    assert problem.num_tasks == 10
    assert [j.release for j in instantiate_template(problem_from_dict(SHOP), "part",
                                                    2).jobs] == [0, 0]


def test_instantiate_a_template_no_job_uses() -> None:
    problem = instantiate_template(problem_from_dict(SHOP), "idle", 3)
    assert [(j.release, j.due, j.weight) for j in problem.jobs] == [(0, None, 1)] * 3


@pytest.mark.parametrize(("template_id", "n_jobs", "message"), [
    ("nope", 3, "no template 'nope' (it has: idle, part)"),
    ("part", 0, "job count must be an integer"),
    ("part", 2.5, "job count must be an integer"),
])
def test_instantiate_refuses_bad_input(template_id: str, n_jobs, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        instantiate_template(problem_from_dict(SHOP), template_id, n_jobs)


# --- definitions ------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "message"), [
    ({"configurations": ("baseline", "fast")}, "unknown configuration 'fast'"),
    ({}, "empty instance set"),
    ({"template_file": "x.json", "template_id": "part"}, "empty instance set: no instance "
                                                         "counts"),
    ({"template_file": "x.json", "template_id": "part", "instance_counts": (1, 0)},
     "instance count 0"),
    ({"problems": ("a.json",), "repetitions": 0}, "repetitions must be an integer >= 1"),
    ({"problems": ("a.json",), "time_limit_seconds": -1}, "time limit must be a positive number"),
    ({"problems": ("a.json",), "configurations": ("template", "template")}, "listed twice"),
    ({"template_file": "x.json", "instance_counts": (1,)}, "name the template"),
])
def test_definition_check_names_the_problem(changes: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        TemplateBenchmark(**changes).check()
    assert any(message in p for p in info.value.problems), info.value.problems


def test_definition_from_toml_reads_paths_beside_it(tmp_path: Path) -> None:
    (tmp_path / "bench.toml").write_text(
        'template_id = "part"\ntemplate_file = "part.json"\ninstance_counts = [1, 3]\n'
        'time_limit_seconds = 2.5\nrepetitions = 2\nseeds = [4]\n'
        'configurations = ["template", "file:tuned.json"]\n')
    definition = load_definition(tmp_path / "bench.toml")
    assert definition == TemplateBenchmark(
        template_id="part", template_file=str(tmp_path / "part.json"), instance_counts=(1, 3),
        time_limit_seconds=2.5, repetitions=2, seeds=(4,),
        configurations=("template", f"file:{tmp_path / 'tuned.json'}"))
    (tmp_path / "bad.toml").write_text('instance_count = [1]\nproblems = "a.json"\n')
    with pytest.raises(InputError) as info:
        load_definition(tmp_path / "bad.toml")
    assert any("instance_count: unknown field" in p for p in info.value.problems)
    assert any("problems: must be a list" in p for p in info.value.problems)


def test_scales_follow_the_source_documents_bands() -> None:
    assert [scale_of(n) for n in (2, 5, 10, 14, 15, 20, 50, 70, 71, 100, 2000)] == [
        "small"] * 4 + ["medium"] * 4 + ["large"] * 3


# --- the runner -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def suite(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    definition = TemplateBenchmark(
        template_id="part", template_file=str(files["template"]), instance_counts=(1, 3),
        time_limit_seconds=0.5, repetitions=2, seeds=(0, 1),
        configurations=("baseline", "template", f"file:{files['params']}"))
    return run_benchmark(definition, out=tmp_path_factory.mktemp("bench_out"), progress=False)


def test_runs_have_the_schema_and_every_configuration_is_paired(suite) -> None:
    runs = suite.runs
    assert tuple(runs.columns) == COLUMNS
    configs = ["baseline", "template", f"file:{suite.definition.configurations[2][5:]}"]
    assert list(runs.configuration.unique()) == configs
    assert len(runs) == 2 * 2 * 2 * 3  # instances x seeds x repetitions x configurations
    orders = [list(runs[runs.configuration == c][["instance", "seed", "repetition"]]
                   .itertuples(index=False, name=None)) for c in configs]
    assert orders[0] == orders[1] == orders[2]
    assert orders[0] == [(i, s, r) for i in ("part-n1", "part-n3") for s in (0, 1)
                         for r in (0, 1)]
    # interleaved: each pair runs the reference first, then the others
    assert list(runs.configuration[:3]) == configs
    assert set(runs.jobs) == {1, 3}
    assert (runs.time_to_target_s > 0).all() and (runs.time_to_target_s <= 1.0).all()
    assert set(runs.fingerprint) == {fingerprint_id()}
    assert (runs.peak_rss_mb > 0).all()
    file_runs = runs[runs.configuration == configs[2]]
    assert set(file_runs.params_source) == {configs[2]}
    assert set(file_runs.num_workers) == {1}
    assert set(runs[runs.configuration == "baseline"].params_source) == {"defaults"}
    optimal = runs.status == "OPTIMAL"
    assert (runs.time_to_optimum_s[optimal] == runs.wall_time_s[optimal]).all()
    assert runs.time_to_optimum_s[~optimal].isna().all()


def test_suite_files_and_summary(suite) -> None:
    for name in ("runs.csv", "summary.json", "report.md", "ttt_by_jobs.png", "scaling.png"):
        assert (suite.out / name).stat().st_size > 0
    import pandas as pd

    assert tuple(pd.read_csv(suite.out / "runs.csv").columns) == COLUMNS
    assert not (suite.out / "runs.partial.csv").exists()  # complete: runs.csv only
    summary = json.loads((suite.out / "summary.json").read_text())
    assert summary["reference"] == "baseline"
    template = summary["configurations"]["template"]
    assert template["runs"] == 8 and template["speedup_vs_reference"]["n"] == 8
    assert summary["average_speedup"] == summary["configurations"][
        summary["configurations_order"][-1]]["speedup_vs_reference"]["geomean"]
    assert suite.average_speedup == summary["average_speedup"]
    assert template["scaling_exponent"] is not None  # two sizes
    small, medium, large = summary["performance_targets"]
    assert small["speedup"]["n"] == 8 and small["runs"] == 8
    assert medium["speedup"] is None and large["template_ttt_s"] is None
    report = (suite.out / "report.md").read_text()
    assert "| Medium (20-50 tasks; counted 15-70) | n/a (< 10s) | n/a (60-120s) | n/a |" in report
    assert "| part-n3 | 3 |" in report


def test_the_benchmark_is_an_mlflow_run(suite) -> None:
    from fresh_solver import tracking
    from fresh_solver.performance.mlflow_run import EXPERIMENT, load_benchmark

    client = tracking.client()
    run = client.get_run(suite.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.tags["fresh_solver.kind"] == "benchmark"
    assert run.data.tags["fresh_solver.template_id"] == "part"
    params = run.data.params
    assert json.loads(params["definition"]) == suite.definition.to_dict()
    assert params["seeds"] == "[0, 1]" and params["repetitions"] == "2"
    # the parameter file's 1, the baseline's one per core, the template model's makespan default
    workers = sorted({1, usable_cores(), default_workers("template", "makespan")})
    assert params["time_limit_s"] == "0.5"
    assert params["num_workers"] == ",".join(map(str, workers))
    assert params["fingerprint"] == fingerprint_id()
    assert params["ortools_version"] == json.loads(params["machine"])["ortools"]
    assert params["reference"] == "baseline" and params["instances"] == "part-n1,part-n3"
    assert params["params_source.template"] == "defaults"
    metrics = run.data.metrics
    for key in ("average_speedup", "template.speedup_vs_reference", "template.geomean_ttt_s",
                "baseline.solved", "template.small.speedup_vs_reference",
                "template_vs_baseline.small.speedup", "template.scaling_exponent"):
        assert key in metrics, key
    assert metrics["template.solved"] == 8
    assert metrics["average_speedup"] == pytest.approx(suite.average_speedup)
    artifacts = {a.path for a in client.list_artifacts(suite.run_id)}
    assert artifacts == {"runs.csv", "summary.json", "report.md", "ttt_by_jobs.png",
                         "scaling.png"}
    runs, summary = load_benchmark(suite.run_id)
    assert len(runs) == len(suite.runs) and summary["reference"] == "baseline"


# --- the command ------------------------------------------------------------------------------

def test_cli_json_prints_the_run_id_and_summary(files: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from fresh_solver import tracking

    code = cli.main(["benchmark", "run", "--problems", str(files["template"]),
                     str(files["other"]), "--configs", "template,production",
                     "--template-id", "part", "--repetitions", "1", "--time-limit", "0.5",
                     "--out", str(tmp_path / "out"), "--no-progress", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert tracking.client().get_run(out["run_id"]).info.status == "FINISHED"
    assert out["summary"]["reference"] == "template"
    assert out["summary"]["configurations"]["production"]["params_source"] == "defaults"
    assert [i["instance"] for i in out["summary"]["instances"]] == ["part", "other"]
    assert (tmp_path / "out" / "runs.csv").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--configs", "baseline,fastest"], "unknown configuration 'fastest'"),
    ([], "empty instance set"),
    (["--template", "T", "--template-id", "part", "--counts", "1,x"], "--counts: expected"),
    (["--template", "T", "--counts", "1,3"], "name the template with --template-id"),
    (["--template", "T", "--template-id", "part"], "--template needs --counts"),
    (["--template", "T", "--template-id", "nope", "--counts", "2"], "no template 'nope'"),
    (["--problems", "T", "--template", "T"], "give one instance source"),
    (["--problems", "T", "--params", "/no/such.json"], "cannot read"),
    (["--problems", "T", "--repetitions", "0"], "repetitions must be"),
])
def test_cli_bad_input_exits_2_with_a_message(extra: list[str], message: str,
                                              files: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(files["template"]) if a == "T" else a for a in extra]
    assert cli.main(["benchmark", "run", *argv, "--time-limit", "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "fresh-solver benchmark: error:" in err and message in err, err


def test_help_does_not_import_mlflow_or_matplotlib() -> None:
    code = ("import sys; from fresh_solver.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('mlflow', 'matplotlib', 'psutil') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_cli_config_file_with_flag_overrides(files: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bench.toml").write_text(
        f'template_id = "part"\ntemplate_file = "{files["template"]}"\n'
        'instance_counts = [2]\nrepetitions = 3\ntime_limit_seconds = 0.5\n'
        'configurations = ["template", "baseline"]\n')
    assert cli.main(["benchmark", "run", "--config", str(tmp_path / "bench.toml"),
                     "--repetitions", "1", "--seeds", "3", "--out", str(tmp_path / "out"),
                     "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["definition"]["repetitions"] == 1 and summary["definition"]["seeds"] == [3]
    assert summary["configurations_order"] == ["template", "baseline"]
    assert [i["instance"] for i in summary["instances"]] == ["part-n2"]


def test_a_reference_without_solution_makes_any_solution_the_target() -> None:
    from types import SimpleNamespace

    from fresh_solver.performance.runner import _time_to_target

    assert _time_to_target(SimpleNamespace(time_to_first_s=0.3), None, 1.0) == 0.3
    assert _time_to_target(SimpleNamespace(time_to_first_s=None), None, 1.0) == 2.0


def test_production_needs_one_template(files: dict[str, Path], tmp_path: Path) -> None:
    two = write_json(tmp_path / "shop.json", SHOP)
    with pytest.raises(InputError, match="name the template with --template-id"):
        run_benchmark(TemplateBenchmark(problems=(str(two),), configurations=("production",),
                                        time_limit_seconds=0.5), out=tmp_path)


def test_a_benchmark_that_fails_ends_its_mlflow_run_failed(files: dict[str, Path],
                                                           tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from fresh_solver import tracking
    from fresh_solver.performance import runner
    from fresh_solver.performance.mlflow_run import EXPERIMENT

    def broken(*args, **kwargs):
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(runner, "run_pairs", broken)
    with pytest.raises(RuntimeError, match="solver crashed"):
        run_benchmark(TemplateBenchmark(problems=(str(files["other"]),),
                                        time_limit_seconds=0.5), out=tmp_path, progress=False)
    client = tracking.client()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    latest = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"],
                                max_results=1)[0]
    assert latest.info.status == "FAILED"
    assert latest.data.params["instances"] == "other"


def test_an_interrupted_benchmark_keeps_the_runs_it_measured(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    from fresh_solver import tracking
    from fresh_solver.performance import runner
    from fresh_solver.performance.mlflow_run import EXPERIMENT

    real, calls = runner._solve, []

    def interrupted_at_the_fourth_solve(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # the warm-up, two measured runs, then Ctrl-C
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_solve", interrupted_at_the_fourth_solve)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(TemplateBenchmark(problems=(str(files["other"]),), repetitions=3,
                                        time_limit_seconds=0.5), out=tmp_path, progress=False)
    kept = pd.read_csv(tmp_path / "runs.partial.csv")
    assert tuple(kept.columns) == COLUMNS and len(kept) == 2
    assert list(kept["configuration"]) == ["baseline", "template"]
    assert "runs.partial.csv" in capsys.readouterr().err
    client = tracking.client()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    latest = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"],
                                max_results=1)[0]
    assert latest.info.status == "KILLED"
