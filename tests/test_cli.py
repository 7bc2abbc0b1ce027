"""The `fresh-solver` command line (DESIGN §5): outputs, files and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fresh_solver.cli import main
from fresh_solver.model import load_problem, load_schedule, problem_to_dict
from fresh_solver.model.generate import SCALES

FT06 = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "jobshop" / "ft06"
needs_ft06 = pytest.mark.skipif(
    not FT06.is_file(), reason=f"shared benchmark ft06 not found at {FT06} (expected beside "
    "the repo)")
JSON_KEYS = {"status", "objective", "best_bound", "gap", "wall_time_s", "time_to_first_s",
             "time_to_best_s", "params_source", "valid"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"num_workers": 2}))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(err: str) -> None:
    assert "error" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------------------------
# solve


@needs_ft06
def test_solve_json_defaults(capsys) -> None:
    code, out, err = run(capsys, "solve", FT06, "--json", "--time-limit", 10)
    assert code == 0, err
    assert out.count("\n") == 1  # one JSON object on one line, nothing else on stdout
    summary = json.loads(out)
    assert isinstance(summary, dict)
    assert set(summary) >= JSON_KEYS
    assert summary["status"] == "OPTIMAL"
    assert summary["objective"] == 55
    assert summary["best_bound"] == 55
    assert summary["gap"] == 0
    assert summary["params_source"] == "defaults"
    assert summary["valid"] is True
    assert summary["wall_time_s"] >= summary["time_to_best_s"] >= summary["time_to_first_s"] >= 0
    assert "ft06" in err  # human output goes to stderr


@needs_ft06
def test_solve_json_with_params_file(capsys, params_file) -> None:
    code, out, err = run(capsys, "solve", FT06, "--json", "--params", params_file,
                         "--model", "baseline")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["params_source"] == f"file:{params_file}"
    assert summary["num_workers"] == 2
    assert summary["model"] == "baseline"
    assert (summary["status"], summary["objective"], summary["valid"]) == ("OPTIMAL", 55, True)


@needs_ft06
def test_solve_table_goes_to_stderr(capsys, params_file) -> None:
    code, out, err = run(capsys, "solve", FT06, "--params", params_file)
    assert code == 0
    assert out == ""
    assert "status" in err and "OPTIMAL" in err and "valid" in err


@needs_ft06
def test_out_schedule_is_accepted_by_check_and_tampering_is_caught(
        capsys, tmp_path, params_file) -> None:
    schedule_path = tmp_path / "ft06.schedule.json"
    code, _, err = run(capsys, "solve", FT06, "--params", params_file, "--out", schedule_path)
    assert code == 0, err
    schedule = load_schedule(schedule_path)
    assert schedule.objective_value == 55
    assert len(schedule.assignments) == 36

    code, out, err = run(capsys, "check", FT06, schedule_path)
    assert code == 0, out
    assert out == ""
    assert "valid" in err

    # Tamper: stretch one task beyond its mode's duration and claim a better makespan.
    doc = json.loads(schedule_path.read_text())
    doc["assignments"][0]["end"] += 1
    doc["objective"]["value"] = 54
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc))
    code, out, err = run(capsys, "check", FT06, tampered)
    assert code == 1
    reasons = out.strip().splitlines()
    assert reasons
    assert any("objective value is 54" in r for r in reasons), reasons
    assert any("duration of that mode" in r for r in reasons), reasons
    assert "INVALID" in err


def test_check_reports_each_kind_of_tampering(capsys, tmp_path) -> None:
    problem = tmp_path / "p.json"
    problem.write_text(json.dumps({
        "format": "fresh-solver/problem-v1", "name": "p",
        "machines": [{"id": "M"}],
        "templates": [{"id": "T", "tasks": [
            {"id": "a", "modes": [{"machine": "M", "duration": 2}]},
            {"id": "b", "modes": [{"machine": "M", "duration": 3}]}]}],
        "jobs": [{"template": "T", "count": 2}],
    }))
    good = [("T#0", "a", 0, 2), ("T#0", "b", 2, 5), ("T#1", "a", 5, 7), ("T#1", "b", 7, 10)]

    def write(assignments, value=10) -> Path:
        path = tmp_path / "s.json"
        path.write_text(json.dumps({
            "format": "fresh-solver/schedule-v1", "problem": "p",
            "objective": {"kind": "makespan", "value": value},
            "assignments": [{"job": j, "task": t, "machine": "M", "start": s, "end": e}
                            for j, t, s, e in assignments]}))
        return path

    assert run(capsys, "check", problem, write(good))[0] == 0
    cases = {
        "overlap": ([*good[:2], ("T#1", "a", 4, 6), ("T#1", "b", 7, 10)], "capacity"),
        "precedence": ([("T#0", "a", 3, 5), ("T#0", "b", 0, 3), *good[2:]], "earliest"),
        "duration": ([("T#0", "a", 0, 1), *good[1:]], "duration"),
        "missing": (good[:3], "not assigned"),
    }
    for name, (assignments, fragment) in cases.items():
        code, out, _ = run(capsys, "check", problem, write(assignments, value=max(
            a[3] for a in assignments)))
        assert code == 1, name
        assert fragment in out, (name, out)


def test_check_malformed_schedule_is_exit_2(capsys, tmp_path) -> None:
    problem = Path(__file__).resolve().parents[1] / "fresh_solver" / "examples" \
        / "bracket_line.json"
    schedule = tmp_path / "s.json"
    schedule.write_text("{not json")
    code, _, err = run(capsys, "check", problem, schedule)
    assert code == 2
    assert_clean_error(err)
    assert "malformed JSON" in err


@needs_ft06
def test_gantt_writes_a_png(capsys, tmp_path, params_file) -> None:
    png = tmp_path / "ft06.png"
    code, _, err = run(capsys, "solve", FT06, "--params", params_file, "--gantt", png)
    assert code == 0, err
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1000


@needs_ft06
@pytest.mark.parametrize("limit", ["0", "-1", "-0.5"])
def test_non_positive_time_limit_is_exit_2(capsys, limit: str) -> None:
    code, out, err = run(capsys, "solve", FT06, "--time-limit", limit, "--json")
    assert code == 2
    assert out == ""
    assert_clean_error(err)
    assert "--time-limit" in err


@pytest.mark.parametrize("content", [
    '{"format": "fresh-solver/problem-v1", "machines": [',
    json.dumps({"format": "fresh-solver/problem-v1", "machines": [{"id": "M"}],
                "templates": [{"id": "T", "tasks": [
                    {"id": "a", "modes": [{"machine": "X", "duration": 1}]}]}],
                "jobs": [{"template": "T"}]}),
], ids=["malformed", "unknown-machine"])
def test_bad_problem_file_is_exit_2(capsys, tmp_path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, out, err = run(capsys, "solve", path, "--json")
    assert code == 2
    assert out == ""
    assert_clean_error(err)
    assert str(path) in err


def test_missing_problem_file_is_exit_2(capsys, tmp_path) -> None:
    code, _, err = run(capsys, "solve", tmp_path / "nope.json")
    assert code == 2
    assert_clean_error(err)
    assert "cannot read" in err


@needs_ft06
def test_unknown_cp_sat_parameter_is_exit_2(capsys, tmp_path) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"num_workers": 2, "no_such_knob": 3}))
    code, out, err = run(capsys, "solve", FT06, "--params", params, "--json")
    assert code == 2
    assert out == ""
    assert_clean_error(err)
    assert "no_such_knob" in err


@needs_ft06
def test_bad_parameter_value_is_exit_2(capsys, tmp_path) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"search_branching": "NOT_A_STRATEGY"}))
    code, _, err = run(capsys, "solve", FT06, "--params", params)
    assert code == 2
    assert_clean_error(err)
    assert "search_branching" in err


@needs_ft06
@pytest.mark.parametrize("content", ["[1, 2]", '"fast"'], ids=["list", "string"])
def test_params_file_not_an_object_is_exit_2(capsys, tmp_path, content: str) -> None:
    params = tmp_path / "params.json"
    params.write_text(content)
    code, _, err = run(capsys, "solve", FT06, "--params", params)
    assert code == 2
    assert_clean_error(err)



@pytest.mark.parametrize("content, expected", [
    (None, "cannot read (No such file or directory)"),
    (b"{not json", "malformed JSON"),
    (b"\xff\xfe\x00binary", "not a text file"),
    (b'{"num_workers": "many"}', "num_workers"),
], ids=["missing", "malformed", "binary", "bad-value"])
def test_params_file_errors_name_the_file_once(capsys, tmp_path, content, expected) -> None:
    """Every way a --params file can be wrong is one line that names the flag and the file
    once, for `solve` and `registry register` alike (they share SolverConfig.from_file)."""
    params = tmp_path / "params.json"
    if content is not None:
        params.write_bytes(content)
    problem = Path(__file__).resolve().parents[1] / "fresh_solver" / "examples" \
        / "bracket_line.json"
    for argv in (["solve", problem, "--params", params],
                 ["registry", "register", "t", "--params", params]):
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        assert out == ""
        assert_clean_error(err)
        assert expected in err
        assert err.count(f"--params {params}") == 1, err

@needs_ft06
def test_options_unknown_name_is_exit_2(capsys) -> None:
    code, _, err = run(capsys, "solve", FT06, "--options", '{"no_such_option": true}')
    assert code == 2
    assert_clean_error(err)
    assert "no_such_option" in err


@needs_ft06
@pytest.mark.parametrize("options", ["5", "null", "[1]"])
def test_options_not_an_object_is_exit_2(capsys, options: str) -> None:
    code, _, err = run(capsys, "solve", FT06, "--options", options)
    assert code == 2
    assert_clean_error(err)


@needs_ft06
def test_out_folder_missing_is_exit_2(capsys, tmp_path) -> None:
    code, _, err = run(capsys, "solve", FT06, "--out", tmp_path / "no" / "s.json")
    assert code == 2
    assert_clean_error(err)


def test_console_script_missing_file_is_exit_2(tmp_path) -> None:
    script = Path(sys.executable).parent / "fresh-solver"
    if not script.exists():
        pytest.skip(f"console script not installed at {script}")
    proc = subprocess.run([str(script), "solve", str(tmp_path / "missing.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "missing.json" in proc.stderr
    assert proc.stdout == ""


# --------------------------------------------------------------------------------------------
# generate


def test_generate_count_writes_files_that_load(capsys, tmp_path) -> None:
    folder = tmp_path / "gen"
    code, _, err = run(capsys, "generate", "--kind", "mix", "--scale", "small", "--seed", 7,
                       "--count", 3, "--out", folder)
    assert code == 0, err
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"mix-small-{s}.json" for s in (7, 8, 9)]
    for f in files:
        problem = load_problem(f)
        assert problem.jobs


def test_generate_single_file_and_weighted_tardiness(capsys, tmp_path) -> None:
    out = tmp_path / "one.json"
    code, _, _ = run(capsys, "generate", "--kind", "mix", "--scale", "small",
                     "--objective", "weighted_tardiness", "--out", out)
    assert code == 0
    problem = load_problem(out)
    assert problem.objective == "weighted_tardiness"
    assert any(j.due is not None for j in problem.jobs)


@pytest.mark.parametrize("kind", ["family", "mix"])
def test_generate_is_deterministic(capsys, tmp_path, kind: str) -> None:
    paths = [tmp_path / f"{kind}-{i}.json" for i in range(3)]
    for path, seed in zip(paths, (3, 3, 4)):
        assert run(capsys, "generate", "--kind", kind, "--scale", "medium", "--seed", seed,
                   "--out", path)[0] == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_generate_bad_count_is_exit_2(capsys, tmp_path) -> None:
    code, _, err = run(capsys, "generate", "--count", 0, "--out", tmp_path / "x")
    assert code == 2
    assert_clean_error(err)


SCALE_RANGE = {"small": (5, 10), "medium": (20, 50), "large": (100, None), "xlarge": (200, 300)}
@pytest.mark.parametrize(("kind", "scale"), [
    (kind, scale) for kind in ("family", "mix") for scale in SCALES
])
def test_generated_task_counts_are_in_the_scale_range(capsys, tmp_path, kind: str,
                                                      scale: str) -> None:
    low, high = SCALE_RANGE[scale]
    counts = []
    for seed in range(5):
        path = tmp_path / f"{kind}-{scale}-{seed}.json"
        assert run(capsys, "generate", "--kind", kind, "--scale", scale, "--seed", seed,
                   "--out", path)[0] == 0
        counts.append(load_problem(path).num_tasks)
    assert all(low <= n and (high is None or n <= high) for n in counts), counts


def test_generate_same_template_writes_instances_of_one_template(capsys, tmp_path) -> None:
    out = tmp_path / "train"
    assert run(capsys, "generate", "--scale", "medium", "--seed", 12, "--same-template",
               "--count", 3, "--out", out)[0] == 0
    problems = [load_problem(p) for p in sorted(out.glob("*.json"))]
    assert len(problems) == 3
    templates = {json.dumps(problem_to_dict(p)["templates"]) for p in problems}
    assert len(templates) == 1  # one template, instances differ in jobs and releases
    assert len({json.dumps(problem_to_dict(p)["jobs"]) for p in problems}) == 3
    code, _, err = run(capsys, "generate", "--kind", "mix", "--same-template", "--out",
                       tmp_path / "x.json")
    assert code == 2 and "--same-template" in err
