"""The parameters layer: CP-SAT parameter validation and application, solver configurations,
and search spaces (fresh_solver.params)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from ortools.sat.python import cp_model

from fresh_solver.errors import InputError
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.options import ModelOptions
from fresh_solver.params.sat import apply_parameters, normalize_parameters, validate_parameters
from fresh_solver.params.space import DEFAULT_SPACE, load_space

DEFAULT = load_space()


def problems_of(exc_info: pytest.ExceptionInfo[InputError]) -> list[str]:
    return exc_info.value.problems


# ---- validate_parameters / normalize_parameters ----------------------------------------------


def test_valid_parameters_normalize_to_their_json_form() -> None:
    params = {"num_workers": 2, "search_branching": "FIXED_SEARCH", "linearization_level": 0,
              "max_time_in_seconds": 5, "optimize_with_core": True}
    assert normalize_parameters(params) == {
        "num_workers": 2, "search_branching": "FIXED_SEARCH", "linearization_level": 0,
        "max_time_in_seconds": 5.0, "optimize_with_core": True}
    assert validate_parameters(params).num_workers == 2
    assert normalize_parameters({}) == {}


def test_explicit_default_values_are_kept() -> None:
    # proto2 keeps presence: an explicit 0 / false is part of the configuration
    assert normalize_parameters({"num_workers": 0, "use_lns": False}) == {
        "num_workers": 0, "use_lns": False}


def test_unknown_parameter_is_refused() -> None:
    with pytest.raises(InputError) as exc:
        validate_parameters({"no_such_parameter": 1})
    assert problems_of(exc) == ["no_such_parameter: unknown CP-SAT parameter"]


def test_bad_enum_value_is_refused() -> None:
    with pytest.raises(InputError) as exc:
        validate_parameters({"search_branching": "NOPE"})
    [problem] = problems_of(exc)
    assert problem.startswith("search_branching: ")
    assert "NOPE" in problem


@pytest.mark.parametrize("value", ["x", True, 2.5, [2], {"a": 1}])
def test_wrong_type_is_refused(value: object) -> None:
    with pytest.raises(InputError) as exc:
        validate_parameters({"num_workers": value})
    [problem] = problems_of(exc)
    assert problem.startswith("num_workers: ")


def test_parameters_must_be_an_object() -> None:
    with pytest.raises(InputError, match="must be an object"):
        validate_parameters([("num_workers", 2)])  # type: ignore[arg-type]


@pytest.mark.parametrize(("params", "message"), [
    ({"num_workers": -1}, "num_workers: must be >= 0, got -1"),
    ({"linearization_level": 3}, "linearization_level: must be <= 2, got 3"),
    ({"linearization_level": -1}, "linearization_level: must be >= 0, got -1"),
    ({"symmetry_level": 5}, "symmetry_level: must be <= 4, got 5"),
    ({"cp_model_probing_level": 4}, "cp_model_probing_level: must be <= 3, got 4"),
    ({"max_time_in_seconds": 0}, "max_time_in_seconds: must be > 0, got 0"),
    ({"max_time_in_seconds": -2.5}, "max_time_in_seconds: must be > 0, got -2.5"),
    ({"random_seed": -3}, "random_seed: must be >= 0, got -3"),
])
def test_out_of_bounds_values_are_refused(params: dict, message: str) -> None:
    with pytest.raises(InputError) as exc:
        validate_parameters(params)
    assert problems_of(exc) == [message]


def test_max_time_nan_is_refused() -> None:
    with pytest.raises(InputError) as exc:
        validate_parameters({"max_time_in_seconds": float("nan")})
    [problem] = problems_of(exc)
    assert problem.startswith("max_time_in_seconds: ")


def test_worker_bound_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRESH_SOLVER_MAX_WORKERS", raising=False)
    assert normalize_parameters({"num_workers": 64}) == {"num_workers": 64}
    with pytest.raises(InputError, match="num_workers: must be <= 64, got 65"):
        validate_parameters({"num_workers": 65})
    monkeypatch.setenv("FRESH_SOLVER_MAX_WORKERS", "8")
    assert normalize_parameters({"num_workers": 8}) == {"num_workers": 8}
    with pytest.raises(InputError) as exc:
        validate_parameters({"num_workers": 9})
    assert problems_of(exc) == ["num_workers: must be <= 8, got 9"]


def test_every_bad_key_is_listed_in_one_error() -> None:
    params = {"no_such_parameter": 1, "search_branching": "NOPE", "num_workers": "x",
              "linearization_level": 3, "max_time_in_seconds": 0, "symmetry_level": 2}
    with pytest.raises(InputError) as exc:
        validate_parameters(params)
    problems = problems_of(exc)
    assert [p.split(":")[0] for p in problems] == [
        "no_such_parameter", "search_branching", "num_workers", "linearization_level",
        "max_time_in_seconds"]
    assert str(exc.value) == "\n".join(problems)


def test_deprecated_worker_name_maps_to_num_workers() -> None:
    with pytest.warns(UserWarning, match="num_search_workers"):
        assert normalize_parameters({"num_search_workers": 3}) == {"num_workers": 3}
    with pytest.warns(UserWarning), pytest.raises(InputError) as exc:
        validate_parameters({"num_search_workers": -1})
    assert problems_of(exc) == ["num_workers: must be >= 0, got -1"]


@pytest.mark.parametrize("params", [
    {"num_workers": "-1"}, {"num_workers": "100000"}, {"linearization_level": "7"},
    {"max_time_in_seconds": "-5"}, {"max_time_in_seconds": "NaN"},
])
def test_numbers_written_as_strings_are_bounds_checked_too(params: dict) -> None:
    with pytest.raises(InputError):
        validate_parameters(params)


def test_conflicting_deprecated_and_new_names_are_refused() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(InputError, match="num_workers"):
            validate_parameters({"num_workers": 2, "num_search_workers": 4})


# ---- apply_parameters: every value of the shipped space reaches the solver --------------------


def _space_cases(section: str) -> list:
    return [pytest.param(d.name, v, id=f"{d.name}={v}")
            for d in DEFAULT.dimensions if d.section == section for v in d.candidates()]


def _solver_value(solver: cp_model.CpSolver, name: str) -> object:
    value = getattr(solver.parameters, name)
    # OR-Tools 9.15 exposes enum fields as pybind11 enums: compare them by name
    return value.name if hasattr(value, "name") else value


@pytest.mark.parametrize(("name", "value"), _space_cases("cp_sat"))
def test_apply_parameters_round_trips_every_space_value(name: str, value: object) -> None:
    solver = cp_model.CpSolver()
    apply_parameters(solver, {name: value})
    got = _solver_value(solver, name)
    if isinstance(value, float):
        assert got == pytest.approx(value)
    else:
        assert got == value
        assert type(got) is type(value)


@pytest.mark.parametrize(("name", "value"), _space_cases("model"))
def test_model_switches_of_the_space_round_trip(name: str, value: bool) -> None:
    options = ModelOptions.from_dict({name: value})
    assert getattr(options, name) is value
    assert ModelOptions.from_dict(options.to_dict()) == options


def test_apply_parameters_merges_over_existing_settings() -> None:
    solver = cp_model.CpSolver()
    solver.parameters.random_seed = 7
    apply_parameters(solver, {"num_workers": 2, "search_branching": "FIXED_SEARCH"})
    assert solver.parameters.random_seed == 7
    assert solver.parameters.num_workers == 2
    assert solver.parameters.search_branching.name == "FIXED_SEARCH"
    apply_parameters(solver, {})  # nothing to merge is fine
    assert solver.parameters.num_workers == 2


def test_apply_parameters_refuses_invalid_values_without_touching_the_solver() -> None:
    solver = cp_model.CpSolver()
    with pytest.raises(InputError):
        apply_parameters(solver, {"num_workers": 2, "search_branching": "NOPE"})
    assert solver.parameters.num_workers == 0


def test_apply_parameters_reports_a_refusal_by_or_tools() -> None:
    class Refusing:
        def merge_text_format(self, text: str) -> bool:
            return False

    class FakeSolver:
        parameters = Refusing()

    with pytest.raises(InputError, match="OR-Tools refused the parameters: num_workers: 2"):
        apply_parameters(FakeSolver(), {"num_workers": 2})  # type: ignore[arg-type]


# ---- SolverConfig ---------------------------------------------------------------------------


def test_flat_dict_is_cp_sat_only() -> None:
    config = SolverConfig.from_dict({"num_workers": 2, "search_branching": "FIXED_SEARCH"})
    assert config.cp_sat == {"num_workers": 2, "search_branching": "FIXED_SEARCH"}
    assert config.model == ModelOptions()


def test_sectioned_dict() -> None:
    config = SolverConfig.from_dict({"cp_sat": {"num_workers": 2},
                                     "model": {"warm_start": False}})
    assert config.cp_sat == {"num_workers": 2}
    assert config.model == ModelOptions(warm_start=False)
    assert SolverConfig.from_dict({"model": {"search_strategy": True}}).cp_sat == {}
    assert SolverConfig.from_dict({}) == SolverConfig()
    assert SolverConfig.from_dict(config.to_dict()) == config


def test_canonical_json_and_hash() -> None:
    a = SolverConfig.from_dict({"cp_sat": {"num_workers": 2, "linearization_level": 0},
                                "model": {"warm_start": False, "symmetry_breaking": True}})
    b = SolverConfig.from_dict({"model": {"symmetry_breaking": True, "warm_start": False},
                                "cp_sat": {"linearization_level": 0, "num_workers": 2}})
    assert a.canonical_json() == b.canonical_json()
    assert " " not in a.canonical_json()
    assert a.hash == b.hash
    assert re.fullmatch(r"[0-9a-f]{16}", a.hash)
    assert a.hash == SolverConfig.from_dict(a.to_dict()).hash  # stable through a round trip
    c = SolverConfig.from_dict({"cp_sat": {"num_workers": 3, "linearization_level": 0},
                                "model": {"warm_start": False}})
    d = SolverConfig.from_dict({"cp_sat": {"num_workers": 2, "linearization_level": 0},
                                "model": {"warm_start": True}})
    assert len({a.hash, c.hash, d.hash, SolverConfig().hash}) == 4


def test_hash_is_the_same_in_every_process() -> None:
    # the hash is an identity in MLflow: it must not depend on PYTHONHASHSEED or the like
    import hashlib

    config = SolverConfig.from_dict({"num_workers": 2})
    expected = ('{"cp_sat":{"num_workers":2},"model":{"redundant_bounds":true,'
                '"search_strategy":false,"symmetry_breaking":true,"tardiness_hint":true,'
                '"warm_start":false}}')
    assert config.canonical_json() == expected
    assert config.hash == hashlib.sha256(expected.encode()).hexdigest()[:16]


def test_deprecated_name_gives_the_same_hash() -> None:
    with pytest.warns(UserWarning):
        old = SolverConfig.from_dict({"cp_sat": {"num_search_workers": 2}})
    assert old.hash == SolverConfig.from_dict({"cp_sat": {"num_workers": 2}}).hash
    with pytest.warns(UserWarning):
        flat_old = SolverConfig.from_dict({"num_search_workers": 2})
    assert flat_old == old


def test_config_errors_name_their_section() -> None:
    with pytest.raises(InputError) as exc:
        SolverConfig.from_dict({"cp_sat": {}, "extra": {}})
    assert problems_of(exc) == ["extra: unknown section (expected cp_sat and/or model)"]

    with pytest.raises(InputError) as exc:
        SolverConfig.from_dict({"cp_sat": {"nope": 1, "num_workers": -1},
                                "model": {"nope": True, "warm_start": "yes"}})
    problems = problems_of(exc)
    assert len(problems) == 4
    assert problems[0] == "cp_sat.nope: unknown CP-SAT parameter"
    assert problems[1] == "cp_sat.num_workers: must be >= 0, got -1"
    assert problems[2].startswith("model.nope: unknown model option")
    assert problems[3].startswith("model.warm_start: must be true or false")

    with pytest.raises(InputError) as exc:
        SolverConfig.from_dict({"model": {"nope": True}})
    assert [p.split(":")[0] for p in problems_of(exc)] == ["model.nope"]


@pytest.mark.parametrize("data", [None, [], "x", 3])
def test_config_must_be_an_object(data: object) -> None:
    with pytest.raises(InputError, match="must be a JSON object"):
        SolverConfig.from_dict(data)
    with pytest.raises(InputError):
        SolverConfig.from_dict({"cp_sat": data, "model": {}})
    with pytest.raises(InputError):
        SolverConfig.from_dict({"model": data})


# ---- load_space ---------------------------------------------------------------------------


def test_default_space() -> None:
    space = load_space()
    assert space.source == str(DEFAULT_SPACE)
    assert load_space(DEFAULT_SPACE) == space
    keys = {d.key for d in space.dimensions}
    assert len(space.dimensions) >= 10
    assert len(keys) == len(space.dimensions)
    assert {"cp_sat.num_workers", "cp_sat.linearization_level", "cp_sat.search_branching",
            "cp_sat.symmetry_level", "cp_sat.cp_model_probing_level",
            "cp_sat.optimize_with_core", "model.symmetry_breaking", "model.redundant_bounds",
            "model.warm_start", "model.search_strategy"} <= keys
    kinds = {d.kind for d in space.dimensions}
    assert kinds == {"integer", "real", "categorical"}
    assert any(d.kind == "real" and d.prior == "log-uniform" for d in space.dimensions)
    for d in space.dimensions:
        if d.kind == "categorical":
            assert d.values and d.low is None and d.high is None
        else:
            assert d.low < d.high
    assert set(space.as_dict()) == keys
    assert len(space.to_skopt()) == len(space.dimensions)


def test_default_space_never_trades_quality_for_speed() -> None:
    # the shipped space's promise: no gap limits or other ways to stop early
    names = {d.name for d in load_space().dimensions}
    assert not {n for n in names if "gap" in n or n in ("max_time_in_seconds",
                                                      "stop_after_first_solution")}


def write_space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


BAD_SPACES = {
    "malformed TOML": ("[cp_sat.num_workers\nkind = 'integer'\n", "malformed TOML"),
    "unknown section": ("[solver.num_workers]\nkind = 'integer'\nlow = 1\nhigh = 2\n",
                        "solver: unknown section"),
    "unknown CP-SAT name": ("[cp_sat.num_wrkers]\nkind = 'integer'\nlow = 1\nhigh = 2\n",
                            "cp_sat.num_wrkers: unknown CP-SAT parameter"),
    "unknown model switch": ("[model.fast]\nkind = 'categorical'\nvalues = [true]\n",
                             "model.fast: unknown model option"),
    "unknown kind": ("[cp_sat.num_workers]\nkind = 'float'\nlow = 1\nhigh = 2\n",
                     "cp_sat.num_workers.kind: must be one of integer, real, categorical"),
    "missing kind": ("[cp_sat.num_workers]\nlow = 1\nhigh = 2\n",
                     "cp_sat.num_workers.kind: must be one of"),
    "not a table": ("[cp_sat]\nnum_workers = 4\n", "cp_sat.num_workers: must be a table"),
    "low == high": ("[cp_sat.num_workers]\nkind = 'integer'\nlow = 2\nhigh = 2\n",
                    "cp_sat.num_workers: low (2) must be below high (2)"),
    "low > high": ("[cp_sat.lns_initial_difficulty]\nkind = 'real'\nlow = 0.9\nhigh = 0.1\n",
                   "cp_sat.lns_initial_difficulty: low (0.9) must be below high (0.1)"),
    "integer with a float bound": (
        "[cp_sat.num_workers]\nkind = 'integer'\nlow = 1.5\nhigh = 4\n",
        "cp_sat.num_workers.low: must be an integer"),
    "missing bound": ("[cp_sat.num_workers]\nkind = 'integer'\nlow = 1\n",
                      "cp_sat.num_workers.high: must be an integer"),
    "boolean bound": ("[cp_sat.lns_initial_difficulty]\nkind = 'real'\nlow = false\n"
                      "high = 0.5\n", "cp_sat.lns_initial_difficulty.low: must be a number"),
    "empty categories": ("[cp_sat.search_branching]\nkind = 'categorical'\nvalues = []\n",
                         "cp_sat.search_branching.values: must be a non-empty list"),
    "categories not a list": ("[cp_sat.search_branching]\nkind = 'categorical'\n"
                              "values = 'FIXED_SEARCH'\n",
                              "cp_sat.search_branching.values: must be a non-empty list"),
    "invalid category": ("[cp_sat.search_branching]\nkind = 'categorical'\n"
                         "values = ['FIXED_SEARCH', 'NOPE']\n", "NOPE"),
    "non-bool model category": ("[model.warm_start]\nkind = 'categorical'\n"
                                "values = [true, 1]\n", "model.warm_start: must be true or false"),
    "out of bounds": ("[cp_sat.num_workers]\nkind = 'integer'\nlow = 1\nhigh = 10000\n",
                      "cp_sat.num_workers: must be <= 64, got 10000"),
    "log-uniform low <= 0": ("[cp_sat.presolve_probing_deterministic_time_limit]\n"
                             "kind = 'real'\nlow = 0.0\nhigh = 30.0\nprior = 'log-uniform'\n",
                             "a log-uniform range needs low > 0"),
    "unknown prior": ("[cp_sat.lns_initial_difficulty]\nkind = 'real'\nlow = 0.1\nhigh = 0.9\n"
                      "prior = 'normal'\n", "prior: must be 'uniform' or 'log-uniform'"),
    "key of another kind": ("[cp_sat.search_branching]\nkind = 'categorical'\n"
                            "values = ['FIXED_SEARCH']\nlow = 0\n",
                            "cp_sat.search_branching.low: not used by a categorical dimension"),
    "empty file": ("", "the space has no dimensions"),
    "comments only": ("# nothing here\n", "the space has no dimensions"),
}


@pytest.mark.parametrize(("text", "expected"), list(BAD_SPACES.values()), ids=list(BAD_SPACES))
def test_malformed_spaces_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = write_space(tmp_path, text)
    with pytest.raises(InputError) as exc:
        load_space(path)
    message = str(exc.value)
    assert expected in message
    assert all(p.startswith(f"{path}: ") for p in problems_of(exc))


def test_missing_space_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(InputError) as exc:
        load_space(path)
    assert problems_of(exc) == [f"{path}: cannot read (No such file or directory)"]


def test_every_problem_of_a_space_is_listed(tmp_path: Path) -> None:
    path = write_space(tmp_path, "[cp_sat.num_wrkers]\nkind = 'integer'\nlow = 1\nhigh = 2\n"
                       "[cp_sat.num_workers]\nkind = 'integer'\nlow = 3\nhigh = 1\n"
                       "[model.warm_start]\nkind = 'categorical'\nvalues = []\n"
                       "[other]\nx = 1\n")
    with pytest.raises(InputError) as exc:
        load_space(path)
    assert len(problems_of(exc)) == 4


def test_a_small_valid_space(tmp_path: Path) -> None:
    path = write_space(tmp_path, "[cp_sat.num_workers]\nkind = 'integer'\nlow = 1\nhigh = 2\n"
                       "[cp_sat.lns_initial_difficulty]\nkind = 'real'\nlow = 0.2\nhigh = 0.8\n"
                       "[model.warm_start]\nkind = 'categorical'\nvalues = [true, false]\n")
    space = load_space(path)
    assert [d.key for d in space.dimensions] == [
        "cp_sat.num_workers", "cp_sat.lns_initial_difficulty", "model.warm_start"]
    assert space.config([2, 0.5, False]) == SolverConfig.from_dict(
        {"cp_sat": {"num_workers": 2, "lns_initial_difficulty": 0.5},
         "model": {"warm_start": False}})
    base = SolverConfig.from_dict({"cp_sat": {"linearization_level": 0},
                                   "model": {"search_strategy": True}})
    over = space.config([1, 0.3, True], base=base)
    assert over.cp_sat == {"linearization_level": 0, "num_workers": 1,
                           "lns_initial_difficulty": 0.3}
    assert over.model == ModelOptions(search_strategy=True, warm_start=True)


def test_the_defaults_have_a_point_in_the_default_space(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point stands for the same run: every CP-SAT value at its default, num_workers unset
    as the count the problem's shape gets (weighted tardiness: the cores), the model switches
    as ModelOptions() has them."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    space = load_space()
    point = dict(zip([d.key for d in space.dimensions],
                     space.point_of(SolverConfig(), "weighted_tardiness")))
    assert point["cp_sat.num_workers"] == 2
    assert point["cp_sat.search_branching"] == "AUTOMATIC_SEARCH"
    assert point["cp_sat.linearization_level"] == 1
    assert point["model.symmetry_breaking"] is True
    assert point["model.warm_start"] is False
    config = space.config(list(point.values()))
    assert space.point_of(config, "weighted_tardiness") == list(point.values())
    on_makespan = space.point_of(SolverConfig(), "makespan")
    assert on_makespan[list(point).index("cp_sat.num_workers")] == 8  # the proof portfolio


def _subsolvers(params: dict) -> list[str]:
    """The portfolio CP-SAT runs with ``params``: its log's subsolver lines."""
    from fresh_solver.model.generate import generate_family
    from fresh_solver.solver.solve import build_model

    solver = cp_model.CpSolver()
    apply_parameters(solver, params | {"max_time_in_seconds": 0.05, "log_search_progress": True,
                                       "log_to_stdout": False})
    lines: list[str] = []
    solver.log_callback = lines.append
    solver.solve(build_model(generate_family("medium", 3), "template").model)
    return [line for line in lines if "subsolver" in line]


def test_the_defaults_point_runs_the_portfolio_the_defaults_run() -> None:
    """Unset CP-SAT fields at the point's values must not change what CP-SAT runs (an explicit
    num_violation_ls = 0 drops the local-search worker an unset one runs)."""
    space = load_space()
    point = space.point_of(SolverConfig.from_dict({"cp_sat": {"num_workers": 4}}), "makespan")
    portfolio = _subsolvers(space.config(point).cp_sat)
    assert portfolio and any("ls" in line for line in portfolio)
    assert portfolio == _subsolvers({"num_workers": 4})


def test_categories_are_compared_as_configurations_hold_them(tmp_path: Path) -> None:
    path = write_space(tmp_path, "[cp_sat.search_branching]\nkind = 'categorical'\n"
                       "values = [0, 1]\n")  # AUTOMATIC_SEARCH, FIXED_SEARCH by number
    space = load_space(path)
    assert space.point_of(SolverConfig(), "makespan") == ["AUTOMATIC_SEARCH"]
    fixed = SolverConfig.from_dict({"cp_sat": {"search_branching": "FIXED_SEARCH"}})
    assert space.point_of(fixed, "makespan") == ["FIXED_SEARCH"]


def test_a_config_outside_the_space_has_no_point(monkeypatch: pytest.MonkeyPatch) -> None:
    space = load_space()
    sixteen = SolverConfig.from_dict({"cp_sat": {"num_workers": 16}})
    assert space.point_of(sixteen, "makespan") is None
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)))
    for objective in ("makespan", "weighted_tardiness"):  # 32 cores: beyond the space's 8
        assert space.point_of(SolverConfig(), objective) is None


PLAIN_TYPES = (bool, int, float, str)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_point_gives_a_valid_plain_config(seed: int) -> None:
    from skopt import Space

    space = load_space()
    point = Space(space.to_skopt()).rvs(random_state=seed)[0]
    config = space.config(point)
    assert SolverConfig.from_dict(config.to_dict()) == config
    assert set(config.cp_sat) == {d.name for d in space.dimensions if d.section == "cp_sat"}
    for value in [*config.cp_sat.values(), *config.model.to_dict().values()]:
        assert type(value) in PLAIN_TYPES, (value, type(value))
    for dim, value in zip(space.dimensions, point):
        got = config.cp_sat[dim.name] if dim.section == "cp_sat" \
            else getattr(config.model, dim.name)
        assert got == pytest.approx(value) if dim.kind == "real" else got == value
    import json

    json.loads(config.canonical_json())  # plain values serialise
    apply_parameters(cp_model.CpSolver(), config.cp_sat)


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("benchmarks/spaces/*.toml")),
                         ids=lambda p: p.name)
def test_the_kept_screened_spaces_load(path: Path) -> None:
    """The spaces the README's benchmark commands name are valid spaces."""
    assert load_space(str(path)).dimensions
