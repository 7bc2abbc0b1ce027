"""The production, core and strength benchmark commands run end to end on tiny settings.

Like the other benchmark smoke tests: no figure is checked, only that every configuration ran,
paired, and was reported with the context (command, machine, budget) needed to rerun it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks import core_benchmark, strength_benchmark
from fresh_solver.cores import usable_cores
from fresh_solver.measure import geometric_mean
from fresh_solver.params.workers import default_workers


def test_core_benchmark_pairs_every_ablation_with_the_baseline(tmp_path: Path) -> None:
    out = tmp_path / "core"
    assert core_benchmark.main(["--scales", "small", "--family-seeds", "2", "--reps", "2",
                                "--ablation-reps", "1", "--cap", "0.5",
                                "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["machine"]["ortools"] and data["command"].startswith("python -m ")
    assert data["seeds"] == [0, 1] and data["ablation_seeds"] == [0]
    assert list(data["families"]) == ["family-small-0", "family-small-1"]
    for family in data["families"].values():
        runs = family["runs"]
        seeds = [r["seed"] for r in runs["baseline"]]
        assert [r["seed"] for r in runs["full"]] == seeds == [0, 1]
        for name in set(core_benchmark.ABLATION) - {"full"}:
            assert [r["seed"] for r in runs[name]] == [0]  # the ablation seed only
        assert all(r["speedup"] > 0 for r in runs["full"])
    assert set(data["summary"]) == set(data["ablation"]) == set(core_benchmark.ABLATION)
    assert data["summary"]["full"]["families"] == 2
    # the ablation compares on the same seeds: its full row is the seed-0 speedups only
    seed_0 = [r["speedup"] for f in data["families"].values() for r in f["runs"]["full"]
              if r["seed"] == 0]
    assert data["ablation"]["full"]["all"]["geomean"] == \
        pytest.approx(geometric_mean(seed_0), rel=1e-3)
    assert data["num_workers"] == {"baseline": usable_cores(),  # CP-SAT's default
                                   "template": default_workers("template", "makespan")}
    report = (out / "report.md").read_text()
    assert report.count("| family-small-") == 2 and "| no_symmetry |" in report


def test_production_benchmark_reports_resolution_and_overhead(tmp_path: Path) -> None:
    """Its own process: the command points FRESH_SOLVER_HOME at a scratch registry of its own
    (a temporary folder, here under tmp_path)."""
    out = tmp_path / "production"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.production_benchmark",
                           "--cold", "2", "--cached", "100", "--reps", "2", "--solve-limit",
                           "0.2", "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads((out / "results.json").read_text())
    assert json.loads(done.stdout) == data
    assert data["machine"]["ortools"] and data["command"].startswith("python -m ")
    assert data["cold_resolution_ms"]["n"] == 2
    assert data["cold_resolution_ms"]["min"] <= data["cold_resolution_ms"]["median"]
    assert data["cached_call_us"] > 0
    overhead = data["solve_overhead"]
    assert overhead["n"] == 2 and overhead["time_limit_s"] == 0.2
    assert overhead["min"] <= overhead["median"] <= overhead["max"]


def test_strength_benchmark_pairs_configurations_per_instance_and_seed(tmp_path: Path) -> None:
    out = tmp_path / "strength"
    assert strength_benchmark.main([
        "--suite", "tardiness", "--scales", "medium", "--instances", "2", "--seeds", "0,1",
        "--configs", "baseline", "template", "template-no-bounds", "--cap", "0.5",
        "--at", "0.3", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["machine"]["ortools"] and data["command"].startswith("python -m ")
    assert data["cap_s"] == 0.5 and data["at_s"] == 0.3 and data["seeds"] == [0, 1]
    runs = {(r["instance"], r["seed"], r["config"]) for r in data["rows"]}
    assert len(runs) == len(data["rows"]) == 2 * 2 * 3
    for config in ("template", "template-no-bounds"):
        paired = data["summary"]["all"][config]
        assert paired["pairs"] == 4
        assert paired["wins"] + paired["ties"] + paired["losses"] <= 4
    assert set(data["summary"]) == {"medium", "all"}
    assert (out / "report.md").read_text().count("| mix-medium-") == 4


def test_strength_benchmark_reads_the_incumbent_at_a_time() -> None:
    result = SimpleNamespace(improvements=[(0.1, 50), (0.4, 40), (2.0, 30)])
    assert strength_benchmark.incumbent_at(result, 0.05) is None
    assert strength_benchmark.incumbent_at(result, 0.4) == 40
    assert strength_benchmark.incumbent_at(result, 5) == 30


def test_strength_benchmark_without_the_shared_folder_is_exit_2(tmp_path: Path,
                                                                 capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        strength_benchmark.main(["--suite", "shared", "--shared", str(tmp_path),
                                 "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert "benchmarks/bounds.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
