"""The problem-v1 format (DESIGN §3): parsing, defaults, round trip, and refusing bad input."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fresh_solver
from fresh_solver.errors import InputError
from fresh_solver.model import (
    Job,
    Machine,
    Precedence,
    Problem,
    load_problem,
    problem_from_dict,
    problem_to_dict,
)

# DESIGN §3's example, exactly as printed there.
DESIGN_EXAMPLE = """
{
  "format": "fresh-solver/problem-v1",
  "name": "bracket-line-w48",
  "time_unit_minutes": 15,
  "machines": [{"id": "CNC1"}, {"id": "CNC2"}, {"id": "OVEN", "capacity": 3}],
  "templates": [{
    "id": "bracket",
    "tasks": [
      {"id": "cut",  "modes": [{"machine": "CNC1", "duration": 4}, {"machine": "CNC2", "duration": 5}]},
      {"id": "bake", "modes": [{"machine": "OVEN", "duration": 8}]}
    ],
    "precedences": [{"before": "cut", "after": "bake", "min_lag": 0}]
  }],
  "jobs": [
    {"template": "bracket", "count": 10, "release": 0},
    {"id": "rush-17", "template": "bracket", "release": 4, "due": 40, "weight": 5}
  ],
  "objective": "makespan"
}
"""  # noqa: E501


def example() -> dict[str, Any]:
    return json.loads(DESIGN_EXAMPLE)


def three_task_doc(**template_extra: Any) -> dict[str, Any]:
    """One template with tasks a, b, c on unary machine M; template fields from the caller."""
    template = {
        "id": "T",
        "tasks": [{"id": k, "modes": [{"machine": "M", "duration": 1}]} for k in "abc"],
        **template_extra,
    }
    return {
        "format": "fresh-solver/problem-v1",
        "machines": [{"id": "M"}],
        "templates": [template],
        "jobs": [{"template": "T"}],
    }


# --------------------------------------------------------------------------------------------
# The example and the defaults


def test_design_example_parses_exactly() -> None:
    p = problem_from_dict(example())
    assert p.name == "bracket-line-w48"
    assert p.time_unit_minutes == 15
    assert p.objective == "makespan"
    assert p.machines == (Machine("CNC1", 1), Machine("CNC2", 1), Machine("OVEN", 3))

    (template,) = p.templates
    assert template.id == "bracket"
    assert [t.id for t in template.tasks] == ["cut", "bake"]
    assert [(m.machine, m.duration) for m in template.tasks[0].modes] == [
        ("CNC1", 4), ("CNC2", 5)]
    assert [(m.machine, m.duration) for m in template.tasks[1].modes] == [("OVEN", 8)]
    assert template.precedences == (Precedence("cut", "bake", 0),)

    assert [j.id for j in p.jobs] == [f"bracket#{k}" for k in range(10)] + ["rush-17"]
    for job in p.jobs[:10]:
        assert job == Job(job.id, "bracket", release=0, due=None, weight=1)
    assert p.jobs[10] == Job("rush-17", "bracket", release=4, due=40, weight=5)
    assert p.num_tasks == 22


def test_defaults_when_fields_are_left_out() -> None:
    doc = three_task_doc()
    p = problem_from_dict(doc)
    assert p.name == "problem"
    assert p.objective == "makespan"
    assert p.time_unit_minutes == 1
    assert p.machines == (Machine("M", 1),)
    assert p.jobs == (Job("T#0", "T", release=0, due=None, weight=1),)


def test_count_ids_are_template_hash_index_and_continue_across_entries() -> None:
    doc = example()
    doc["jobs"] = [
        {"template": "bracket", "count": 2},
        {"template": "bracket", "count": 3, "release": 7},
    ]
    p = problem_from_dict(doc)
    assert [j.id for j in p.jobs] == [f"bracket#{k}" for k in range(5)]
    assert [j.release for j in p.jobs] == [0, 0, 7, 7, 7]


def test_absent_precedences_mean_a_chain_in_listed_order() -> None:
    p = problem_from_dict(three_task_doc())
    assert p.templates[0].precedences == (Precedence("a", "b", 0), Precedence("b", "c", 0))


def test_empty_precedences_mean_none() -> None:
    p = problem_from_dict(three_task_doc(precedences=[]))
    assert p.templates[0].precedences == ()


def test_min_lag_defaults_to_zero() -> None:
    p = problem_from_dict(three_task_doc(precedences=[
        {"before": "c", "after": "a"}, {"before": "a", "after": "b", "min_lag": 3}]))
    assert p.templates[0].precedences == (Precedence("c", "a", 0), Precedence("a", "b", 3))


def test_weighted_tardiness_objective_is_accepted() -> None:
    doc = example()
    doc["objective"] = "weighted_tardiness"
    assert problem_from_dict(doc).objective == "weighted_tardiness"


# --------------------------------------------------------------------------------------------
# Round trip


def roundtrip(p: Problem) -> Problem:
    return problem_from_dict(json.loads(json.dumps(problem_to_dict(p))))


def test_round_trip_design_example() -> None:
    p = problem_from_dict(example())
    again = roundtrip(p)
    assert again == p
    assert problem_to_dict(again) == problem_to_dict(p)
    # Interchangeable groups survive: the 10 count jobs still share one key.
    assert len({j.group_key for j in again.jobs[:10]}) == 1


@pytest.mark.parametrize("doc", [
    three_task_doc(),
    three_task_doc(precedences=[]),
    three_task_doc(precedences=[{"before": "c", "after": "a", "min_lag": 2}]),
], ids=["chain", "none", "lag"])
def test_round_trip_precedence_variants(doc: dict[str, Any]) -> None:
    p = problem_from_dict(doc)
    assert roundtrip(p) == p


def test_round_trip_bundled_example(tmp_path) -> None:
    path = Path(fresh_solver.__file__).parent / "examples" / "bracket_line.json"
    p = load_problem(path)
    out = tmp_path / "again.json"
    out.write_text(json.dumps(problem_to_dict(p)))
    assert load_problem(out) == p


# --------------------------------------------------------------------------------------------
# Bad input: one case per kind; the message must name the JSON path.

Mutation = Callable[[dict[str, Any]], None]


def _set(path: list[Any], value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _delete(path: list[Any]) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return mutate


def _append(path: list[Any], value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node = doc
        for key in path:
            node = node[key]
        node.append(copy.deepcopy(value))
    return mutate


def _copy_template(doc: dict[str, Any]) -> None:
    doc["templates"].append(copy.deepcopy(doc["templates"][0]))


MODE0 = ["templates", 0, "tasks", 0, "modes", 0]
PREC0 = ["templates", 0, "precedences", 0]

BAD_INPUTS: list[tuple[str, Mutation, str, str]] = [
    # (case id, mutation of the DESIGN example, path, message fragment)
    ("unknown-machine", _set([*MODE0, "machine"], "LASER"),
     "templates[0].tasks[0].modes[0].machine", "unknown machine 'LASER'"),
    ("unknown-template", _set(["jobs", 1, "template"], "widget"),
     "jobs[1].template", "unknown template 'widget'"),
    ("unknown-task-before", _set([*PREC0, "before"], "paint"),
     "templates[0].precedences[0].before", "unknown task 'paint'"),
    ("unknown-task-after", _set([*PREC0, "after"], "paint"),
     "templates[0].precedences[0].after", "unknown task 'paint'"),
    ("duplicate-machine", _set(["machines", 1, "id"], "CNC1"),
     "machines[1].id", "duplicate machine id 'CNC1'"),
    ("duplicate-template", _copy_template,
     "templates[1].id", "duplicate template id 'bracket'"),
    ("duplicate-task", _set(["templates", 0, "tasks", 1, "id"], "cut"),
     "templates[0].tasks[1].id", "duplicate task id 'cut'"),
    ("duplicate-job-id-vs-count", _set(["jobs", 1, "id"], "bracket#3"),
     "jobs", "duplicate job id 'bracket#3'"),
    ("duplicate-job-id", _append(["jobs"], {"id": "rush-17", "template": "bracket"}),
     "jobs", "duplicate job id 'rush-17'"),
    ("precedence-cycle", _append(["templates", 0, "precedences"],
                                 {"before": "bake", "after": "cut"}),
     "templates[0].precedences", "cycle"),
    ("self-precedence", _set([*PREC0, "after"], "cut"),
     "templates[0].precedences[0]", "cannot precede itself"),
    ("empty-modes", _set(["templates", 0, "tasks", 1, "modes"], []),
     "templates[0].tasks[1].modes", "must not be empty"),
    ("missing-modes", _delete(["templates", 0, "tasks", 1, "modes"]),
     "templates[0].tasks[1].modes", "must be a list"),
    ("negative-duration", _set([*MODE0, "duration"], -1),
     "templates[0].tasks[0].modes[0].duration", "must be >= 0"),
    ("float-duration", _set([*MODE0, "duration"], 2.5),
     "templates[0].tasks[0].modes[0].duration", "must be an integer, got 2.5"),
    ("string-duration", _set([*MODE0, "duration"], "3"),
     "templates[0].tasks[0].modes[0].duration", "must be an integer, got '3'"),
    ("bool-duration", _set([*MODE0, "duration"], True),
     "templates[0].tasks[0].modes[0].duration", "must be an integer, got True"),
    ("float-release", _set(["jobs", 0, "release"], 2.5),
     "jobs[0].release", "must be an integer"),
    ("string-due", _set(["jobs", 1, "due"], "40"),
     "jobs[1].due", "must be an integer"),
    ("bool-weight", _set(["jobs", 1, "weight"], True),
     "jobs[1].weight", "must be an integer"),
    ("float-min-lag", _set([*PREC0, "min_lag"], 0.5),
     "templates[0].precedences[0].min_lag", "must be an integer"),
    ("negative-release", _set(["jobs", 0, "release"], -1),
     "jobs[0].release", "must be >= 0"),
    ("float-capacity", _set(["machines", 2, "capacity"], 1.5),
     "machines[2].capacity", "must be an integer"),
    ("zero-capacity", _set(["machines", 2, "capacity"], 0),
     "machines[2].capacity", "must be >= 1"),
    ("count-zero", _set(["jobs", 0, "count"], 0), "jobs[0].count", "must be >= 1"),
    ("count-negative", _set(["jobs", 0, "count"], -2), "jobs[0].count", "must be >= 1"),
    ("count-float", _set(["jobs", 0, "count"], 2.5), "jobs[0].count", "must be an integer"),
    ("missing-format", _delete(["format"]), "format", "fresh-solver/problem-v1"),
    ("wrong-format", _set(["format"], "fresh-solver/problem-v2"),
     "format", "fresh-solver/problem-v1"),
    ("unknown-field-top", _set(["deadline"], 3), "deadline", "unknown field"),
    ("unknown-field-job", _set(["jobs", 1, "deadline"], 3), "jobs[1].deadline",
     "unknown field"),
    ("unknown-field-mode", _set([*MODE0, "speed"], 2),
     "templates[0].tasks[0].modes[0].speed", "unknown field"),
    ("id-and-count", _set(["jobs", 1, "count"], 2), "jobs[1]", "not both"),
    ("unknown-objective", _set(["objective"], "flowtime"), "objective", "must be one of"),
    ("empty-machines", _set(["machines"], []), "machines", "must not be empty"),
    ("empty-jobs", _set(["jobs"], []), "jobs", "must not be empty"),
    ("machine-twice-in-task", _set(["templates", 0, "tasks", 0, "modes", 1, "machine"], "CNC1"),
     "templates[0].tasks[0].modes[1].machine", "listed twice"),
]


@pytest.mark.parametrize(("mutate", "path", "fragment"),
                         [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_names_the_path(mutate: Mutation, path: str, fragment: str) -> None:
    doc = example()
    mutate(doc)
    with pytest.raises(InputError) as info:
        problem_from_dict(doc)
    problems = info.value.problems
    assert any(p.startswith(f"{path}: ") and fragment in p for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    doc = example()
    _set([*MODE0, "duration"], -1)(doc)
    _set(["jobs", 1, "template"], "widget")(doc)
    _set(["machines", 1, "id"], "CNC1")(doc)
    with pytest.raises(InputError) as info:
        problem_from_dict(doc)
    joined = "\n".join(info.value.problems)
    for path in ("templates[0].tasks[0].modes[0].duration", "jobs[1].template", "machines[1].id"):
        assert path in joined


def test_top_level_not_an_object() -> None:
    with pytest.raises(InputError, match="must be an object"):
        problem_from_dict([example()])


def test_load_problem_malformed_json(tmp_path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "fresh-solver/problem-v1", "machines": [')
    with pytest.raises(InputError) as info:
        load_problem(path)
    (message,) = info.value.problems
    assert "malformed JSON" in message
    assert str(path) in message


def test_load_problem_prefixes_the_file_to_the_json_path(tmp_path) -> None:
    doc = example()
    _set([*MODE0, "machine"], "LASER")(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as info:
        load_problem(path)
    assert any(p.startswith(f"{path}: templates[0].tasks[0].modes[0].machine: ")
               for p in info.value.problems), info.value.problems


def test_load_problem_missing_file(tmp_path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_problem(tmp_path / "nope.json")


# --------------------------------------------------------------------------------------------
# Junk anywhere in the document gives InputError, never another exception.

def test_templates_not_a_list_is_input_error() -> None:
    doc = example()
    doc["templates"] = 5
    with pytest.raises(InputError, match="templates: must be a list"):
        problem_from_dict(doc)


@pytest.mark.parametrize("bad_id", [["bracket"], {"id": "bracket"}], ids=["list", "object"])
def test_unhashable_template_id_is_input_error(bad_id: Any) -> None:
    doc = example()
    doc["templates"][0]["id"] = bad_id
    with pytest.raises(InputError, match=r"templates\[0\]\.id: must be a non-empty string"):
        problem_from_dict(doc)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.floats(-2, 12, allow_nan=False)
    | st.sampled_from(["", "CNC1", "OVEN", "cut", "bake", "bracket", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["id", "machine", "duration", "count", "before", "tasks"]), inner,
        max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


ALL_PATHS = [p for p in _paths(example()) if p]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(ALL_PATHS), JSON_VALUES), min_size=1, max_size=3))
def test_junk_gives_input_error_or_a_problem(edits: list[tuple[tuple, Any]]) -> None:
    doc = example()
    for path, value in edits:
        node = doc
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced the structure above this path
    try:
        p = problem_from_dict(doc)
    except InputError as exc:
        assert exc.problems and all(isinstance(m, str) and m for m in exc.problems)
    else:
        assert isinstance(p, Problem)
        assert roundtrip(p) == p


# ---- numeric limits: no valid problem overflows the models' 64-bit arithmetic -------------


def edge_problem(capacity: int = 10**6, duration: int = 10**9, release: int = 10**12,
                 weight: int = 10**6, count: int = 2,
                 objective: str = "weighted_tardiness") -> dict[str, Any]:
    return {"format": "fresh-solver/problem-v1", "name": "edge",
            "machines": [{"id": "A", "capacity": capacity}, {"id": "B"}],
            "templates": [{"id": "T", "tasks": [
                {"id": "a", "modes": [{"machine": "A", "duration": duration}]},
                {"id": "b", "modes": [{"machine": "B", "duration": duration}]}]}],
            "jobs": [{"template": "T", "count": count, "release": release,
                      "due": release + duration, "weight": weight}],
            "objective": objective}


@pytest.mark.parametrize("objective", ["makespan", "weighted_tardiness"])
def test_a_problem_at_the_limits_solves_with_both_models(objective: str) -> None:
    from fresh_solver.solver import solve

    problem = problem_from_dict(edge_problem(objective=objective))
    for model in ("template", "baseline"):
        result = solve(problem, model=model, time_limit=5)
        assert result.status in ("OPTIMAL", "FEASIBLE"), (model, result.status)
        assert result.valid is True


@pytest.mark.parametrize(("change", "path", "limit"), [
    ({"capacity": 10**10}, "machines[0].capacity", "1e+06"),  # was MODEL_INVALID
    ({"duration": 3 * 10**18}, "templates[0].tasks[0].modes[0].duration", "1e+09"),
    ({"release": 10**13}, "jobs[0].release", "1e+12"),
    ({"weight": 10**7}, "jobs[0].weight", "1e+06"),
    ({"count": 10**6}, "jobs[0].count", "1e+05"),
])
def test_a_field_past_its_limit_is_refused_by_name(change: dict, path: str,
                                                   limit: str) -> None:
    with pytest.raises(InputError) as error:
        problem_from_dict(edge_problem(**change))
    assert any(p.startswith(f"{path}: must be <= {limit}") for p in error.value.problems), \
        error.value.problems


def test_fields_within_limits_whose_product_overflows_are_refused() -> None:
    with pytest.raises(InputError, match=r"jobs: the time horizon .* x total weight of jobs"):
        problem_from_dict(edge_problem(count=3))  # 3 x 1e6 weight x 1e12 horizon > 2^61


def test_cli_refuses_an_overflowing_problem_with_exit_2(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    from fresh_solver.cli import main

    path = tmp_path / "huge.json"
    path.write_text(json.dumps(edge_problem(capacity=10**10)))
    assert main(["solve", str(path)]) == 2
    err = capsys.readouterr().err
    assert "machines[0].capacity: must be <= 1e+06" in err and "Traceback" not in err
