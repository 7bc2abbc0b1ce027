"""The memory-and-scale benchmark: its sizes, its summary on known data, and the command end to
end on tiny sizes (each measurement in its own process). No figure of this machine is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import scale_benchmark as sb
from fresh_solver.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[1] / "fresh_solver" / "examples" / "bracket_line.json"


def test_task_counts_become_whole_jobs_and_bad_counts_are_refused() -> None:
    assert sb.parse_tasks("50,100") == [50, 100]
    assert sb.job_counts([1, 50, 52, 100], 5) == [1, 10, 20]  # 52 rounds to 10 jobs like 50
    for bad in ("50,x", "0,10", ""):
        with pytest.raises(InputError, match="--tasks"):
            sb.parse_tasks(bad)


def _run(model: str, tasks: int, build_s: float, peak_mb: float) -> dict:
    return {"model": model, "tasks": tasks, "jobs": tasks // 5, "build_time_s": build_s,
            "first_build_time_s": build_s, "build_time_in_solve_s": build_s,
            "build_peak_rss_mb": peak_mb,
            "build_increment_mb": peak_mb - 101.0,
            "peak_rss_mb": peak_mb, "model_size": {"variables": tasks, "constraints": tasks},
            "status": "UNKNOWN", "num_workers": 2}


def test_summary_subtracts_idle_and_fits_the_growth_it_is_given() -> None:
    """Template linear and at half the baseline's memory above idle; baseline quadratic."""
    idle = [{"peak_rss_mb": 100.0}, {"peak_rss_mb": 102.0}, {"peak_rss_mb": 101.0}]
    sizes = [100, 200, 400, 800]
    runs = [_run("template", n, 1e-4 * n, 101.0 + 0.01 * n) for n in sizes]
    runs += [_run("baseline", n, 1e-7 * n * n, 101.0 + 0.02 * n) for n in sizes]
    traced = [{"model": m, "tasks": n, "tracemalloc_peak_mb": 0.001 * n}
              for m in sb.MODELS for n in sizes]
    summary = sb.summarise(runs, idle, traced, fit_from=200)
    assert summary["idle_subtracted_mb"] == 101.0
    first = summary["sizes"][0]
    assert first["models"]["template"]["peak_rss_above_idle_mb"] == pytest.approx(1.0)
    assert first["ratio_template_to_baseline"]["peak_rss_above_idle"] == pytest.approx(0.5)
    template, baseline = summary["exponents"]["template"], summary["exponents"]["baseline"]
    assert template["build_time_s"]["all"]["exponent"] == pytest.approx(1.0)
    assert template["build_increment_mb"]["all"]["exponent"] == pytest.approx(1.0)
    assert template["peak_rss_above_idle_mb"]["all"]["exponent"] == pytest.approx(1.0)
    assert template["tracemalloc_peak_mb"]["all"]["exponent"] == pytest.approx(1.0)
    assert baseline["build_time_s"]["upper"]["exponent"] == pytest.approx(2.0)
    line = template["peak_rss_above_idle_mb"]["all"]
    assert line["per_1000_tasks"] == pytest.approx(10.0) and line["intercept"] == pytest.approx(0)
    upper = template["build_time_s"]["upper"]
    assert (upper["tasks_from"], upper["tasks_to"], upper["points"]) == (200, 800, 3)
    verdicts = sb.verdicts(summary, fit_from=200)
    assert verdicts["memory_at_most_baseline"] == {
        "build_increment": {"all_sizes": True, "upper_sizes": True},
        "peak_rss_above_idle": {"all_sizes": True, "upper_sizes": True}}
    assert verdicts["template_at_most_linear"] == {
        "build_time_s": True, "build_increment_mb": True, "tracemalloc_peak_mb": True}
    baseline_first = sb.verdicts({**summary, "exponents": {"template": baseline}}, 200)
    assert baseline_first["template_at_most_linear"]["build_time_s"] is False


def test_command_measures_each_model_in_its_own_process(tmp_path: Path) -> None:
    out = tmp_path / "scale"
    assert sb.main(["--out", str(out), "--template-file", str(EXAMPLE), "--template-id",
                    "bracket", "--tasks", "6,12", "--repetitions", "1", "--time-limit", "0.5",
                    "--builds", "2", "--no-tracemalloc"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["command"].startswith(f"python -m {sb.MODULE} --out ")
    assert data["machine"]["ortools"] and data["num_workers"]
    assert data["job_counts"] == [2, 4] and data["tasks_per_job"] == 3
    assert len(data["idle"]) == 1 and data["tracemalloc"] == []
    assert sorted((r["tasks"], r["model"]) for r in data["runs"]) == [
        (6, "baseline"), (6, "template"), (12, "baseline"), (12, "template")]
    for run in data["runs"]:
        assert run["peak_rss_mb"] >= run["build_peak_rss_mb"] > 0
        assert run["build_peak_rss_mb"] - run["build_increment_mb"] == pytest.approx(
            run["rss_problem_mb"])
        assert len(run["build_times_s"]) == 2 and run["first_build_time_s"] > 0
        assert min(run["build_times_s"]) <= run["build_time_s"] <= max(run["build_times_s"])
        assert run["model_size"]["variables"] > 0
        assert run["valid"] in (True, None) and run["heap_trimmed"] in (True, False)
    for row in data["summary"]["sizes"]:
        assert set(row["models"]) == set(sb.MODELS) and row["ratio_template_to_baseline"]
    report = (out / "report.md").read_text()
    assert "| 12 | 4 | template |" in report and "Growth exponents" in report


def test_traced_worker_reports_the_python_allocations_of_the_build() -> None:
    traced = sb.run_worker(EXAMPLE, "bracket", "template", 3, traced=True)
    assert traced["tasks"] == 9 and traced["tracemalloc_peak_mb"] > 0
    assert "peak_rss_mb" not in traced  # a traced build is not a memory or time figure


def test_bad_input_exits_2_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not in"):
        sb.main(["--out", str(tmp_path), "--template-file", str(EXAMPLE), "--template-id",
                 "nope", "--tasks", "6"])
    done = subprocess.run([sys.executable, "-m", sb.MODULE, "--out", str(tmp_path),
                           "--tasks", "ten"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--tasks" in done.stderr
