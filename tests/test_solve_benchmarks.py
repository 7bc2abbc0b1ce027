"""Solving the shared benchmark instances: known optima are reached and proven, and no result
contradicts the published bounds (DESIGN §8: a makespan below a proven lower bound is a bug)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fresh_solver.model import load_problem
from fresh_solver.solver import MODELS, solve

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
BOUNDS_FILE = BENCHMARKS / "bounds.json"
pytestmark = pytest.mark.skipif(
    not BOUNDS_FILE.is_file(),
    reason=f"shared benchmark instances not found at {BENCHMARKS} (expected beside the repo)",
)
BOUNDS = {e["name"]: e for e in json.loads(BOUNDS_FILE.read_text())} if BOUNDS_FILE.is_file() \
    else {}
PARAMS = {"num_workers": 2}
FIRST_SOLUTION = 2**62  # every incumbent is at most this: stop at the first


def load(name: str):
    return load_problem(BENCHMARKS / BOUNDS[name]["file"])


@pytest.mark.parametrize(("name", "model"), [
    ("ft06", "template"), ("ft06", "baseline"),
    ("la01", "template"), ("la02", "template"), ("la03", "template"), ("la04", "template"),
    ("la05", "template"),
])
def test_proves_known_optimum(name: str, model: str) -> None:
    entry = BOUNDS[name]
    result = solve(load(name), model=model, params=PARAMS, time_limit=10, seed=0)
    assert result.status == "OPTIMAL", result.summary()
    assert result.objective == entry["optimum"]
    assert result.best_bound == pytest.approx(entry["optimum"])
    assert result.schedule is not None and result.valid is True, result.violations
    assert result.schedule.objective_value == entry["optimum"]
    assert result.gap == 0


def test_ft06_is_55() -> None:
    result = solve(load("ft06"), params=PARAMS, time_limit=10)
    assert (result.status, result.objective, result.valid) == ("OPTIMAL", 55, True)
    assert len(result.schedule.assignments) == 36
    assert max(a.end for a in result.schedule.assignments) == 55
    assert result.time_to_first_s is not None
    assert result.time_to_best_s is not None
    assert result.time_to_first_s <= result.time_to_best_s <= result.wall_time_s
    # improvements only ever improve, and the last one is the final objective
    values = [obj for _, obj in result.improvements]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)
    assert values[-1] == 55


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", list(BOUNDS))
def test_short_runs_respect_known_bounds(name: str, model: str) -> None:
    """A run stopped at its first solution (not at a time, which would make the test depend
    on the machine's speed) is consistent with the known bounds."""
    entry = BOUNDS[name]
    result = solve(load(name), model=model, params=PARAMS, time_limit=120, seed=0,
                   stop_at=FIRST_SOLUTION)
    assert result.solved, result.summary()
    assert result.schedule is not None and result.valid is True, result.violations
    assert result.objective >= entry["lower_bound"]
    assert result.best_bound <= entry["upper_bound"]
    assert result.best_bound <= result.objective
    if result.status == "OPTIMAL":
        assert result.objective == entry["optimum"]
