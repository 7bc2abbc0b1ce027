"""The worker count a solve runs when its parameters leave it open: the template model's proof
portfolio on makespan, one worker per core on weighted tardiness and for the baseline, and an
explicit count always as given."""

from __future__ import annotations

import importlib

import pytest
from ortools.sat.python import cp_model

from fresh_solver.model.generate import generate_family, generate_mix
from fresh_solver.params import apply_parameters
from fresh_solver.params.workers import default_workers, effective_workers
from fresh_solver.solver import solve


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})


def test_the_default_follows_the_model_and_the_objective(two_cores: None) -> None:
    assert default_workers("template", "makespan") == 8
    assert default_workers("template", "weighted_tardiness") == 2
    assert default_workers("baseline", "makespan") == 2  # the plain reference stays CP-SAT's


def test_more_cores_than_the_portfolio_get_one_worker_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert default_workers("template", "makespan") == 16
    assert default_workers("template", "weighted_tardiness") == 16


@pytest.mark.parametrize("params, expected", [
    ({}, 8), ({"num_workers": 0}, 8), ({"num_workers": 3}, 3), ({"num_search_workers": 5}, 5)])
def test_an_explicit_count_wins(two_cores: None, params: dict, expected: int) -> None:
    assert effective_workers(params, "template", "makespan") == expected


@pytest.mark.parametrize("model, problem, expected", [
    ("template", generate_family("small", 0), 8),
    ("baseline", generate_family("small", 0), 2),
    ("template", generate_mix("small", 0, "weighted_tardiness"), 2),
])
def test_a_solve_runs_and_reports_the_shape_default(two_cores: None, model: str, problem,
                                                    expected: int) -> None:
    result = solve(problem, model=model, time_limit=5)
    assert result.num_workers == expected
    assert result.valid


def test_a_solve_runs_the_count_the_parameters_give(two_cores: None) -> None:
    result = solve(generate_family("small", 0), params={"num_workers": 1}, time_limit=5)
    assert result.num_workers == 1


def test_cp_sat_gets_the_count_solve_reports(two_cores: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The shape's count is set on CP-SAT itself; the user's parameters (validated as given)
    stay without it."""
    seen: list[tuple[cp_model.CpSolver, dict]] = []

    def recording(solver: cp_model.CpSolver, params: dict) -> None:
        seen.append((solver, dict(params)))
        apply_parameters(solver, params)

    # the package exports the function under the module's name: patch the module itself
    module = importlib.import_module("fresh_solver.solver.solve")
    monkeypatch.setattr(module, "apply_parameters", recording)
    result = solve(generate_family("small", 0), time_limit=5)
    (solver, given), = seen
    assert given == {} and solver.parameters.num_workers == 8 == result.num_workers


def _cgroup(tmp_path, path: str, limits: dict[str, str]):
    """A cgroup v2 tree under tmp_path with ``cpu.max`` per folder, and a membership file."""
    from pathlib import Path

    root = tmp_path / "cgroup"
    for folder, text in limits.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(text)
    membership = tmp_path / "self-cgroup"
    membership.write_text(f"1:cpu:/\n0::{path}\n")
    return Path(root), membership


@pytest.mark.parametrize("path, limits, quota", [
    ("/", {"": "max 100000"}, None),  # a container without cpus:
    ("/", {"": "250000 100000"}, 2.5),  # docker's cpus: 2.5
    ("/app/worker", {"": "max 100000", "app": "150000 100000", "app/worker": "max 100000"},
     1.5),  # the tightest ancestor's
    ("/app/worker", {"app/worker": "400000 100000", "app": "200000 100000"}, 2.0),
    ("/nowhere", {}, None),
])
def test_the_cgroup_cpu_quota_is_the_tightest_on_the_path(tmp_path, path, limits, quota):
    from fresh_solver.cores import cgroup_cpu_quota

    assert cgroup_cpu_quota(*_cgroup(tmp_path, path, limits)) == quota


def test_a_cpu_quota_cuts_the_usable_cores_to_whole_ones(monkeypatch: pytest.MonkeyPatch):
    from fresh_solver import cores

    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    for quota, usable in ((None, 4), (2.5, 2), (0.5, 1), (8.0, 4)):
        monkeypatch.setattr(cores, "cgroup_cpu_quota", lambda q=quota: q)
        assert cores.usable_cores() == usable


def test_without_cgroup_v2_there_is_no_quota(tmp_path):
    from fresh_solver.cores import cgroup_cpu_quota

    membership = tmp_path / "self-cgroup"
    membership.write_text("1:cpu:/\n4:memory:/x\n")  # cgroup v1 only, as on this machine
    assert cgroup_cpu_quota(tmp_path, membership) is None
    assert cgroup_cpu_quota(tmp_path, tmp_path / "absent") is None
