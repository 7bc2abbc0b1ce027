"""The benchmark commands run end to end on tiny settings and write what their reports promise.

They measure speed, so nothing here checks a figure: only that every configuration is run,
paired, and reported with the context (command, machine, budget) a reader needs to rerun it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import heldout_noise, template_screen, tuning_benchmark
from fresh_solver.model import problem_to_dict
from fresh_solver.model.generate import generate_family
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.space import load_space


def test_template_screen_reports_every_variant(tmp_path: Path) -> None:
    out = tmp_path / "screen"
    assert template_screen.main(["--scale", "small", "--templates", "0,1", "--instances", "1",
                                 "--seeds", "0", "--time-limit", "0.5", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["machine"]["ortools"]
    assert [row["template"] for row in data["rows"]] == ["small-0", "small-1"]
    for row in data["rows"]:
        assert set(row["variants"]) == set(template_screen.VARIANTS)
        assert all(v["speedup"] > 0 and 0 < v["p_value"] <= 1 for v in row["variants"].values())
    report = (out / "report.md").read_text()
    assert report.count("| small-") == 2


def test_template_screen_narrows_a_space_to_the_knobs_that_helped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--space screens each knob of the space alone; --write-space keeps the knobs that cleared
    the bar, each as the defaults' value then the values that helped (a bar every variant
    clears here, so the file is deterministic), and writes nothing when none did."""
    space = tmp_path / "space.toml"
    space.write_text('[cp_sat.num_workers]\nkind = "integer"\nlow = 1\nhigh = 8\n\n'
                     '[model.warm_start]\nkind = "categorical"\nvalues = [true, false]\n')
    narrowed = tmp_path / "narrowed.toml"
    common = ["--scale", "small", "--templates", "0", "--instances", "1", "--seeds", "0",
              "--time-limit",
              "0.5", "--space", str(space), "--write-space", str(narrowed)]
    assert template_screen.main([*common, "--min-gain", "0", "--max-p", "2",
                                 "--out", str(tmp_path / "a")]) == 0
    row = json.loads((tmp_path / "a" / "results.json").read_text())["rows"][0]
    assert set(row["variants"]) == {"cp_sat.num_workers=1", "cp_sat.num_workers=4",
                                    "model.warm_start=True"}
    written = load_space(narrowed)
    assert [(d.key, d.kind, d.values) for d in written.dimensions] == [
        ("cp_sat.num_workers", "categorical", (8, 1, 4)),
        ("model.warm_start", "categorical", (False, True))]
    narrowed.unlink()
    assert template_screen.main([*common, "--min-gain", "1000",
                                 "--out", str(tmp_path / "b")]) == 0
    assert not narrowed.exists()
    assert "no knob helped" in capsys.readouterr().err


def test_template_screen_screens_a_templates_problem_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A user's own template (its instance files), not only a generated one; a missing file
    is named, exit 2."""
    folder = tmp_path / "part"
    folder.mkdir()
    files = []
    for i in range(2):
        files.append(folder / f"i{i}.json")
        files[-1].write_text(json.dumps(problem_to_dict(generate_family("small", 3,
                                                                        instance_seed=i))))
    out = tmp_path / "screen"
    assert template_screen.main(["--instances-from", *map(str, files), "--seeds", "0",
                                 "--time-limit", "0.5", "--out", str(out)]) == 0
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["template"] == "part"
    assert {r["instance"] for r in row["reference"]} == {"i0.json", "i1.json"}
    with pytest.raises(SystemExit) as exit_info:
        template_screen.main(["--instances-from", str(folder / "missing.json"),
                              "--out", str(out)])
    assert exit_info.value.code == 2
    assert "missing.json" in capsys.readouterr().err


def test_template_screen_write_space_needs_a_space(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        template_screen.main(["--write-space", str(tmp_path / "s.toml"), "--templates", "1",
                              "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--write-space: needs --space" in capsys.readouterr().err


def test_template_screen_refuses_bad_template_seeds(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        template_screen.main(["--templates", "9,x", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--templates" in capsys.readouterr().err


@pytest.mark.parametrize("metric", ["time_to_target", "gap_integral"])
def test_tuning_benchmark_pairs_gp_random_and_two_controls(tmp_path: Path, metric: str) -> None:
    out = tmp_path / "tuning"
    assert tuning_benchmark.main([
        "--scale", "small", "--template-seed", "3", "--train", "1", "--held-out", "1",
        "--trials", "2", "--trial-time-limit", "0.3", "--eval-seeds", "1",
        "--eval-time-limit", "0.5", "--tuner-seeds", "1", "--metric", metric,
        "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in data["sessions"]] == ["GP-seed0", "random-seed0"]
    assert all(s["cpu_seconds"] >= 0 and s["run_id"] for s in data["sessions"])
    held = data["held_out_results"]
    controls = ["defaults-control-1", "defaults-control-2"]
    assert {"reference", "GP-seed0", "random-seed0", *controls} <= set(held)
    pairs = {(r["instance"], r["seed"]) for r in held["reference"]["runs"]}
    for name in ("GP-seed0", "random-seed0", "defaults-control-1"):
        assert {(r["instance"], r["seed"]) for r in held[name]["runs"]} == pairs
    assert not set(data["train"]) & set(data["held_out"])
    gp, random = data["sessions"]
    same = gp["best_params"] == random["best_params"]
    gp_lower = held["GP-seed0"]["score"] < held["random-seed0"]["score"]
    [comparison] = data["comparisons"]
    assert (comparison["first"], comparison["second"]) == ("GP", "random")
    assert (comparison["wins"], comparison["ties"], comparison["losses"]) == (
        int(not same and gp_lower), int(same), int(not same and not gp_lower))
    assert 0 <= comparison["p_seeds_first_faster"] <= 1
    assert 0 <= comparison["p_pooled_first_faster"] <= 1
    assert data["noise_floor"]["sets"] == controls
    repeats = held["reference"]["repeats"]  # the reference: the median of 3 defaults runs
    assert list(repeats) == ["defaults", "defaults-2", "defaults-3"]
    for row in held["reference"]["runs"]:
        key = (row["instance"], row["seed"])
        runs = sorted(r["score"] for rows in repeats.values() for r in rows
                      if (r["instance"], r["seed"]) == key)
        assert row["score"] == runs[1]
    aa = data["aa"]  # the A/A rate from 3 reference runs and 2 controls per pair
    assert (aa["defaults_runs"], aa["reference_runs"]) == (5, 3)
    assert 0 <= aa["false_gain_rate"] <= 1 and 0 <= aa["false_loss_rate"] <= 1
    assert aa["speedup_low"] <= aa["speedup_high"]
    for session in data["sessions"]:  # a session that returned the defaults is not re-measured
        returned_defaults = SolverConfig.from_dict(session["best_params"]) == SolverConfig()
        assert (held[session["name"]].get("same_as") == "defaults") == returned_defaults
    assert [v["method"] for v in data["verdicts"]] == ["GP", "random"]
    for verdict in data["verdicts"]:
        assert verdict["sessions"] == 1 and verdict["gains"] + verdict["losses"] <= 1
    report = (out / "report.md").read_text()
    assert "sessions returned a set with a significant held-out gain" in report
    assert "defaults-control-2" in report and "| GP vs random |" in report
    assert "A/A: the 5 runs of the defaults per pair dealt 2000 times" in report
    assert "race: gain, p, pairs |" in report and all("race" in s for s in data["sessions"])

    again = tmp_path / "again"
    assert tuning_benchmark.main(["--from-results", str(out / "results.json"),
                                  "--out", str(again)]) == 0
    assert json.loads((again / "results.json").read_text())["comparisons"] == data["comparisons"]
    assert (again / "report.md").read_text() == report


def test_a_sessions_race_in_one_cell_with_its_winner_marked() -> None:
    race = {"winner": 4, "contenders": {"4": {"gain": 1.52, "p_value": 0.031, "pairs": 12},
                                         "7": {"gain": 0.8, "p_value": 0.9, "pairs": 6},
                                         "9": {"unsound": "unsound: proved 12 where 11 is"}}}
    assert tuning_benchmark.race_cell({"race": race}) == \
        "**1.52x p 0.031 (12)**; 0.80x p 0.9 (6)"
    assert tuning_benchmark.race_cell({}) == "-"


def test_tuning_benchmark_refuses_results_it_did_not_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "results.json"
    other.write_text(json.dumps({"rows": []}))
    with pytest.raises(SystemExit) as exit_info:
        tuning_benchmark.main(["--from-results", str(other), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "not a tuning benchmark's results.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tuning_benchmark_refuses_a_missing_peer_interpreter(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        tuning_benchmark.main(["--autotune", str(tmp_path / "nope" / "python"),
                               "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "make peers-venv" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_registry_faults_reports_every_fault(tmp_path: Path) -> None:
    """Its own process: the command sets the environment (a scratch registry) for itself."""
    import subprocess
    import sys

    from benchmarks.registry_faults import FAULTS

    done = subprocess.run([sys.executable, "-m", "benchmarks.registry_faults",
                           "--threads", "2", "--solves", "1", "--delay", "0.2",
                           "--cli-runs", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    one_shot = {r["fault"]: r for r in results["one_shot"]}
    assert list(one_shot) == ["none", "hung", "dead"]
    assert list(one_shot["none"]["served"])[0].startswith("registry:")
    for row in one_shot.values():  # a result every time, printed before the exit
        assert not any(k.startswith("exit") for k in row["served"]), row
        assert row["printed_s"][0] <= row["exited_s"][0]
    rows = results["rows"]
    assert [r["fault"] for r in rows] == list(FAULTS)
    assert all(r["succeeded"] == r["solves"] == 2 for r in rows)
    assert rows[0]["first_source"].startswith("registry:")
    assert all(r["first_source"].startswith("fallback:") for r in rows[1:])
    assert "| hung |" in (tmp_path / "report.md").read_text()


def test_heldout_noise_scores_copies_of_the_defaults_by_both_metrics(tmp_path: Path) -> None:
    out = tmp_path / "noise"
    assert heldout_noise.main(["--seeds", "1", "--copies", "1", "--workers", "1",
                               "--time-limit", "0.3", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["pairs"] == 6
    for metric in ("time_to_target", "gap_integral"):
        result = data["metrics"][metric]
        assert set(result["rows"]) == {"copy-1", "workers-1"}
        [resampled] = [b for b in result["bootstrap"] if b["pairs"] == 24]  # 1 reference run
        assert resampled["low"] <= resampled["high"] and 0 <= resampled["within_floor"] <= 1
    again = tmp_path / "again"
    assert heldout_noise.main(["--from-runs", str(out / "runs.json"), "--out", str(again)]) == 0
    assert json.loads((again / "results.json").read_text())["metrics"] == data["metrics"]


def test_heldout_noise_refuses_bad_arguments(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        heldout_noise.main(["--workers", "1,x", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "--workers" in capsys.readouterr().err


def _held(repeats: list[list[float]], controls: list[list[float]]) -> dict:
    """A held-out result with these per-pair scores for the reference's runs and controls."""
    def rows(scores):
        return [{"instance": "i", "seed": k, "score": s} for k, s in enumerate(scores)]
    held = {"reference": {"repeats": {f"defaults-{i}": rows(r) for i, r in enumerate(repeats)}}}
    return held | {f"{tuning_benchmark.CONTROL}-{i}": {"runs": rows(c)}
                   for i, c in enumerate(controls, 1)}


def test_the_aa_rate_deals_the_defaults_runs_into_reference_and_candidate() -> None:
    pairs = 24  # (with ties, scipy's exact test on 13 pairs or fewer takes a second a call)
    same = [[1.0 + k for k in range(pairs)]] * 4  # four runs that agree on every pair
    aa = tuning_benchmark.aa_rate(_held(same[:3], same[3:]), draws=200)
    assert (aa["defaults_runs"], aa["reference_runs"], aa["draws"]) == (4, 3, 200)
    assert aa["false_gain_rate"] == aa["false_loss_rate"] == 0.0
    assert aa["speedup_low"] == aa["speedup_high"] == 1.0
    # one run 3x faster on every pair: each pair that deals it the candidate gains 3x
    ones = [[1.0] * pairs] * 3
    aa = tuning_benchmark.aa_rate(_held(ones, [[1 / 3] * pairs]), draws=400)
    assert 0 < aa["false_gain_rate"] <= 1 and aa["false_loss_rate"] == 0.0
    assert aa["speedup_low"] >= 1.0 and 1.0 < aa["speedup_high"] < 3.0
    assert tuning_benchmark.aa_rate(_held(ones, []), draws=10) is None  # no control
