"""The independent schedule checker: a valid schedule passes, each kind of violation is caught."""

from __future__ import annotations

import dataclasses

import pytest

from fresh_solver.model.problem import Problem, problem_from_dict
from fresh_solver.model.schedule import Assignment, Schedule
from fresh_solver.solver.checker import check_schedule


def make_problem(
    objective: str = "makespan", *, cut_bake_lag: int = 2, rush_release: int = 3
) -> Problem:
    """M1, M2 unary; OVEN capacity 2; 'cut' has two modes; cut -> bake has a lag."""
    return problem_from_dict({
        "format": "fresh-solver/problem-v1",
        "name": "checker-test",
        "machines": [{"id": "M1"}, {"id": "M2"}, {"id": "OVEN", "capacity": 2}],
        "templates": [{
            "id": "part",
            "tasks": [
                {"id": "cut", "modes": [{"machine": "M1", "duration": 3},
                                        {"machine": "M2", "duration": 4}]},
                {"id": "bake", "modes": [{"machine": "OVEN", "duration": 5}]},
                {"id": "finish", "modes": [{"machine": "M1", "duration": 2}]},
            ],
            "precedences": [
                {"before": "cut", "after": "bake", "min_lag": cut_bake_lag},
                {"before": "bake", "after": "finish"},
            ],
        }],
        "jobs": [
            {"template": "part", "count": 2, "due": 13},
            {"id": "rush", "template": "part", "release": rush_release, "due": 15, "weight": 4},
        ],
        "objective": objective,
    })


# part#0 and rush touch on M1 at 3; the oven runs 2 at once during [6, 10).
VALID_ASSIGNMENTS = [
    {"job": "part#0", "task": "cut", "machine": "M1", "start": 0, "end": 3},
    {"job": "part#0", "task": "bake", "machine": "OVEN", "start": 5, "end": 10},
    {"job": "part#0", "task": "finish", "machine": "M1", "start": 10, "end": 12},
    {"job": "part#1", "task": "cut", "machine": "M2", "start": 0, "end": 4},
    {"job": "part#1", "task": "bake", "machine": "OVEN", "start": 6, "end": 11},
    {"job": "part#1", "task": "finish", "machine": "M1", "start": 12, "end": 14},
    {"job": "rush", "task": "cut", "machine": "M1", "start": 3, "end": 6},
    {"job": "rush", "task": "bake", "machine": "OVEN", "start": 11, "end": 16},
    {"job": "rush", "task": "finish", "machine": "M1", "start": 16, "end": 18},
]
MAKESPAN = 18
# part#0 ends 12 (due 13): 0; part#1 ends 14: 1 * 1; rush ends 18 (due 15): 4 * 3.
WEIGHTED_TARDINESS = 13


def make_schedule(kind: str, value: int) -> Schedule:
    return Schedule.from_dict({
        "format": "fresh-solver/schedule-v1",
        "problem": "checker-test",
        "objective": {"kind": kind, "value": value},
        "assignments": VALID_ASSIGNMENTS,
    })


@pytest.fixture
def problem() -> Problem:
    return make_problem("makespan")


@pytest.fixture
def schedule() -> Schedule:
    return make_schedule("makespan", MAKESPAN)


@pytest.fixture
def wt_problem() -> Problem:
    return make_problem("weighted_tardiness")


@pytest.fixture
def wt_schedule() -> Schedule:
    return make_schedule("weighted_tardiness", WEIGHTED_TARDINESS)


def moved(schedule: Schedule, job: str, task: str, **changes: object) -> Schedule:
    """The schedule with one assignment changed (machine, start, end)."""
    found = [a for a in schedule.assignments if (a.job, a.task) == (job, task)]
    assert len(found) == 1
    new = tuple(
        dataclasses.replace(a, **changes) if a is found[0] else a for a in schedule.assignments
    )
    return dataclasses.replace(schedule, assignments=new)


def mentioning(violations: list[str], *words: str) -> list[str]:
    return [v for v in violations if all(w in v for w in words)]


# --------------------------------------------------------------------------------------------
# Valid schedules


def test_valid_makespan_schedule(problem: Problem, schedule: Schedule) -> None:
    assert check_schedule(problem, schedule) == []


def test_valid_weighted_tardiness_schedule(wt_problem: Problem, wt_schedule: Schedule) -> None:
    assert check_schedule(wt_problem, wt_schedule) == []


def test_assignment_order_does_not_matter(problem: Problem, schedule: Schedule) -> None:
    shuffled = dataclasses.replace(schedule, assignments=schedule.assignments[::-1])
    assert check_schedule(problem, shuffled) == []


def test_touching_intervals_on_unary_machine_are_valid(
    problem: Problem, schedule: Schedule
) -> None:
    by_key = {(a.job, a.task): a for a in schedule.assignments}
    first, second = by_key[("part#0", "cut")], by_key[("rush", "cut")]
    assert first.machine == second.machine == "M1" and first.end == second.start
    assert check_schedule(problem, schedule) == []


def test_zero_duration_task_occupies_nothing() -> None:
    problem = problem_from_dict({
        "format": "fresh-solver/problem-v1",
        "machines": [{"id": "M"}],
        "templates": [{"id": "t", "tasks": [
            {"id": "long", "modes": [{"machine": "M", "duration": 5}]},
            {"id": "mark", "modes": [{"machine": "M", "duration": 0}]},
        ], "precedences": []}],
        "jobs": [{"id": "j", "template": "t"}],
    })
    schedule = Schedule("p", "makespan", 5, (
        Assignment("j", "long", "M", 0, 5),
        Assignment("j", "mark", "M", 2, 2),
    ))
    assert check_schedule(problem, schedule) == []


def test_empty_problem_schedule_makespan_is_zero(problem: Problem) -> None:
    empty = Schedule("checker-test", "makespan", 0, ())
    violations = check_schedule(problem, empty)
    assert len(violations) == 9
    assert all("not assigned" in v for v in violations)


# --------------------------------------------------------------------------------------------
# One violation kind at a time


def test_overlap_on_unary_machine(problem: Problem, schedule: Schedule) -> None:
    bad = moved(schedule, "part#1", "finish", start=11, end=13)  # part#0 finishes [10, 12)
    violations = check_schedule(problem, bad)
    assert len(violations) == 1
    assert mentioning(violations, "'M1'", "capacity is 1", "'part#0'", "'part#1'", "'finish'")


def test_capacity_two_exceeded_by_three(problem: Problem, schedule: Schedule) -> None:
    bad = moved(schedule, "rush", "bake", start=8, end=13)  # joins part#0 and part#1 in OVEN
    violations = check_schedule(problem, bad)
    assert len(violations) == 1
    assert mentioning(violations, "'OVEN'", "3 tasks", "time 8", "capacity is 2", "'rush'")


def test_capacity_two_accepts_two_at_once(problem: Problem, schedule: Schedule) -> None:
    ovens = [a for a in schedule.assignments if a.machine == "OVEN"]
    assert sum(a.start <= 7 < a.end for a in ovens) == 2
    assert check_schedule(problem, schedule) == []


@pytest.mark.parametrize("machine, expected", [
    ("M2", "not a mode"),  # a real machine, but 'finish' only runs on M1
    ("M9", "unknown machine"),
])
def test_wrong_machine(problem: Problem, schedule: Schedule, machine: str, expected: str) -> None:
    bad = moved(schedule, "part#0", "finish", machine=machine)
    violations = check_schedule(problem, bad)
    assert len(violations) == 1
    assert mentioning(violations, expected, "'part#0'", "'finish'", repr(machine))


def test_alternative_mode_with_its_own_duration(problem: Problem, schedule: Schedule) -> None:
    # part#1 cut on M2 takes 4; the same interval on M1 (duration 3) is a wrong duration.
    assert check_schedule(problem, schedule) == []
    bad = moved(schedule, "part#1", "cut", machine="M1", start=6, end=10)
    violations = check_schedule(problem, bad)
    assert mentioning(violations, "'part#1'", "'cut'", "'M1'", "duration of that mode is 3")


def test_wrong_duration(problem: Problem, schedule: Schedule) -> None:
    bad = moved(schedule, "part#1", "finish", end=15)
    violations = check_schedule(problem, bad)
    assert violations == [
        "job 'part#1' task 'finish' on 'M1': ends at 15, duration of that mode is 2 "
        "but end-start is 3"
    ]


def test_end_before_start(problem: Problem, schedule: Schedule) -> None:
    bad = moved(schedule, "part#1", "finish", start=14, end=12)
    violations = check_schedule(problem, bad)
    assert mentioning(violations, "'part#1'", "'finish'", "before its start")


def test_negative_start(problem: Problem, schedule: Schedule) -> None:
    bad = moved(schedule, "part#1", "cut", start=-1, end=3)
    violations = check_schedule(problem, bad)
    assert len(violations) == 1
    assert mentioning(violations, "'part#1'", "'cut'", "before time 0")


def test_broken_precedence(problem: Problem, schedule: Schedule) -> None:
    bad = moved(schedule, "part#0", "bake", start=6, end=11)  # finish starts at 10
    violations = check_schedule(problem, bad)
    assert len(violations) == 1
    assert mentioning(violations, "'part#0'", "'finish'", "'bake'", "ends at 11")


@pytest.mark.parametrize("lag, broken", [(0, False), (2, True)])
def test_broken_lag(lag: int, broken: bool) -> None:
    # cut ends at 3 and bake starts at 4: fine without a lag, too early with min_lag 2.
    bad = moved(make_schedule("makespan", MAKESPAN), "part#0", "bake", start=4, end=9)
    violations = check_schedule(make_problem(cut_bake_lag=lag), bad)
    if broken:
        assert len(violations) == 1
        assert mentioning(violations, "'part#0'", "'bake'", "'cut'", "min_lag 2", "at 5")
    else:
        assert violations == []


def test_start_before_release(schedule: Schedule) -> None:
    violations = check_schedule(make_problem(rush_release=4), schedule)  # rush cut starts at 3
    assert len(violations) == 1
    assert mentioning(violations, "'rush'", "'cut'", "'M1'", "release 4")


def test_missing_task(problem: Problem, schedule: Schedule) -> None:
    kept = tuple(a for a in schedule.assignments if (a.job, a.task) != ("part#1", "bake"))
    violations = check_schedule(problem, dataclasses.replace(schedule, assignments=kept))
    assert violations == ["job 'part#1' task 'bake': not assigned"]


def test_missing_task_does_not_stop_other_checks(problem: Problem, schedule: Schedule) -> None:
    bad = moved(schedule, "part#1", "finish", start=11, end=13)
    kept = tuple(a for a in bad.assignments if (a.job, a.task) != ("rush", "finish"))
    violations = check_schedule(problem, dataclasses.replace(bad, assignments=kept))
    assert mentioning(violations, "'rush'", "'finish'", "not assigned")
    assert mentioning(violations, "'M1'", "capacity is 1")
    assert mentioning(violations, "objective value is 18", "makespan is 16")


def test_duplicated_task(problem: Problem, schedule: Schedule) -> None:
    extra = Assignment("part#1", "cut", "M2", 4, 8)  # M2 is free then: only the duplicate
    bad = dataclasses.replace(schedule, assignments=(*schedule.assignments, extra))
    violations = check_schedule(problem, bad)
    assert len(violations) == 1
    assert mentioning(violations, "'part#1'", "'cut'", "'M2'", "more than once")


@pytest.mark.parametrize("extra, expected", [
    (Assignment("ghost", "cut", "M2", 4, 8), "unknown job 'ghost'"),
    (Assignment("part#0", "polish", "M2", 4, 6), "has no task 'polish'"),
])
def test_unknown_job_or_task(
    problem: Problem, schedule: Schedule, extra: Assignment, expected: str
) -> None:
    bad = dataclasses.replace(schedule, assignments=(*schedule.assignments, extra))
    violations = check_schedule(problem, bad)
    assert len(violations) == 1
    assert mentioning(violations, expected, "'M2'")


@pytest.mark.parametrize("value", [0, 17, 19])
def test_wrong_makespan_value(problem: Problem, schedule: Schedule, value: int) -> None:
    violations = check_schedule(problem, dataclasses.replace(schedule, objective_value=value))
    assert violations == [f"objective value is {value} but the schedule's makespan is 18"]


def test_wrong_objective_kind(problem: Problem, schedule: Schedule) -> None:
    bad = dataclasses.replace(schedule, objective_kind="weighted_tardiness")
    violations = check_schedule(problem, bad)
    assert len(violations) == 1
    assert mentioning(violations, "'weighted_tardiness'", "'makespan'")


# 0: no tardiness at all; 4: weights ignored; 12: part#1 forgotten; 18: the makespan.
@pytest.mark.parametrize("value", [0, 4, 12, 18])
def test_weighted_tardiness_miscomputed(
    wt_problem: Problem, wt_schedule: Schedule, value: int
) -> None:
    bad = dataclasses.replace(wt_schedule, objective_value=value)
    violations = check_schedule(wt_problem, bad)
    assert violations == [
        f"objective value is {value} but the schedule's weighted_tardiness is 13"
    ]


def test_weighted_tardiness_follows_the_last_task(
    wt_problem: Problem, wt_schedule: Schedule
) -> None:
    # rush finishing 2 later adds weight 4 * 2 = 8 of tardiness.
    later = moved(wt_schedule, "rush", "finish", start=18, end=20)
    assert mentioning(check_schedule(wt_problem, later), "weighted_tardiness is 21")
    fixed = dataclasses.replace(later, objective_value=21)
    assert check_schedule(wt_problem, fixed) == []
