"""Weighted tardiness in the template model: its lower bound (never above an optimum, tight
where it should be), its dispatching warm start (a valid schedule scored as the checker scores
it) and no symmetry breaking."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fresh_solver.model import Assignment, Schedule, problem_from_dict
from fresh_solver.model.generate import generate_mix
from fresh_solver.model.problem import FORMAT
from fresh_solver.params.options import switches_for
from fresh_solver.solver import PLAIN, ModelOptions, check_schedule, solve
from fresh_solver.solver.heuristic import placement_objective
from fresh_solver.solver.solve import build_model
from fresh_solver.solver.tardiness_bound import weighted_tardiness_lower_bound
from fresh_solver.solver.tardiness_dispatch import tardiness_dispatch
from tests.test_properties import EXAMPLES, PARAMS, problems

ONE_MACHINE = {"format": FORMAT, "machines": [{"id": "A"}, {"id": "B"}],
               "objective": "weighted_tardiness"}


@st.composite
def tardy_problems(draw: st.DrawFn) -> dict[str, Any]:
    """The property tests' problems, with weighted tardiness and due dates tight enough
    that jobs compete for them."""
    doc = draw(problems())
    doc["objective"] = "weighted_tardiness"
    for job in doc["jobs"]:
        job["due"] = job["release"] + draw(st.integers(0, 8))
    return doc


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tardy_problems())
def test_the_bound_never_exceeds_the_optimum(doc: dict[str, Any]) -> None:
    """Against the baseline (which knows nothing of the bound): below its optimum, or below
    its best schedule where many identical jobs keep it from a proof in the time given."""
    problem = problem_from_dict(doc)
    bound = weighted_tardiness_lower_bound(problem)
    optimum = solve(problem, model="baseline", params=PARAMS, time_limit=5)
    assert 0 <= bound <= optimum.objective, (bound, optimum.objective)
    if optimum.status == "OPTIMAL":
        with_bound = solve(problem, model="template", params=PARAMS, time_limit=10)
        assert with_bound.status == "OPTIMAL" and with_bound.objective == optimum.objective


def test_identical_jobs_on_one_machine_are_bounded_exactly() -> None:
    """Three jobs of 4 units on one machine, all due at 4: 0 + 4 + 8 late at best."""
    problem = problem_from_dict(ONE_MACHINE | {
        "templates": [{"id": "T", "tasks": [{"id": "x", "modes": [{"machine": "A",
                                                                    "duration": 4}]}]}],
        "jobs": [{"template": "T", "count": 3, "due": 4}]})
    assert weighted_tardiness_lower_bound(problem) == 12
    result = solve(problem, params=PARAMS, time_limit=10)
    assert result.status == "OPTIMAL" and result.objective == 12 and result.best_bound == 12


def test_heavier_jobs_count_by_weight_level() -> None:
    """Two heavy jobs (weight 3) and one light job compete for one machine: all three are
    late by 0 + 2 + 5 at least (x1), the heavy pair alone by 0 + 2 (x the 2 more weight):
    7 + 4 = 11, the optimum (heavy jobs first); the least weight times the unweighted bound
    would give 7."""
    problem = problem_from_dict(ONE_MACHINE | {
        "templates": [{"id": "T", "tasks": [{"id": "x", "modes": [{"machine": "A",
                                                                    "duration": 3}]}]}],
        "jobs": [{"template": "T", "count": 2, "due": 4, "weight": 3},
                 {"template": "T", "count": 1, "due": 4, "weight": 1}]})
    assert weighted_tardiness_lower_bound(problem) == 11
    assert solve(problem, model="baseline", params=PARAMS, time_limit=10).objective == 11


def test_tails_and_machine_alternatives_are_respected() -> None:
    """A task with a mode off the machine set is not counted there; a tail moves the due."""
    problem = problem_from_dict(ONE_MACHINE | {
        "templates": [{"id": "T", "tasks": [
            {"id": "x", "modes": [{"machine": "A", "duration": 5}]},
            {"id": "y", "modes": [{"machine": "A", "duration": 2}, {"machine": "B",
                                                                    "duration": 2}]}],
            "precedences": [{"before": "x", "after": "y"}]}],
        "jobs": [{"template": "T", "count": 2, "due": 7}]})
    # on A alone: works 5, 5 (y may run on B); dues 7 - 2 = 5: completions 5, 10 -> 0 + 5
    assert weighted_tardiness_lower_bound(problem) == 5
    result = solve(problem, model="baseline", params=PARAMS, time_limit=10)
    assert result.objective == 5


def test_makespan_and_no_due_dates_give_zero() -> None:
    template = {"id": "T", "tasks": [{"id": "x", "modes": [{"machine": "A", "duration": 4}]}]}
    assert weighted_tardiness_lower_bound(problem_from_dict(ONE_MACHINE | {
        "templates": [template], "jobs": [{"template": "T", "count": 3}]})) == 0
    assert weighted_tardiness_lower_bound(problem_from_dict(ONE_MACHINE | {
        "objective": "makespan", "templates": [template],
        "jobs": [{"template": "T", "count": 3, "due": 1}]})) == 0


def test_overloaded_generated_mixes_get_a_bound_above_zero() -> None:
    """Where CP-SAT's own bound stays at 0 (generated mixes at the large scale), the template
    model states a positive one; switching the redundant bounds off removes it."""
    problem = generate_mix("large", 1, "weighted_tardiness")
    bound = weighted_tardiness_lower_bound(problem)
    assert bound > 0
    with_bound = solve(problem, params=PARAMS, time_limit=0.5)
    without = solve(problem, options=ModelOptions(redundant_bounds=False), params=PARAMS,
                    time_limit=0.5)
    assert with_bound.best_bound >= bound
    assert without.best_bound < bound
    assert PLAIN.redundant_bounds is False


def dispatched_schedule(problem) -> Schedule:
    """The dispatcher's placements as a schedule the independent checker can judge."""
    placements = tardiness_dispatch(problem)
    assignments = []
    for (j, t), placement in placements.items():
        job = problem.jobs[j]
        task = problem.template_of(job).tasks[t]
        mode = task.modes[placement.mode]
        assignments.append(Assignment(job.id, task.id, mode.machine, placement.start,
                                      placement.start + mode.duration))
    return Schedule(problem.name, problem.objective, placement_objective(problem, placements),
                    tuple(assignments))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tardy_problems())
def test_the_dispatcher_gives_a_valid_schedule_scored_right(doc: dict[str, Any]) -> None:
    """Valid (precedences, lags, capacities, releases) and its weighted tardiness is the
    checker's; the bound stays below it."""
    problem = problem_from_dict(doc)
    schedule = dispatched_schedule(problem)
    assert check_schedule(problem, schedule) == []
    assert weighted_tardiness_lower_bound(problem) <= schedule.objective_value


def test_the_dispatcher_serves_heavy_urgent_jobs_first() -> None:
    """One machine, a light job and a heavy job both due at 3: the heavy one goes first."""
    problem = problem_from_dict(ONE_MACHINE | {
        "templates": [{"id": "T", "tasks": [{"id": "x", "modes": [{"machine": "A",
                                                                    "duration": 3}]}]}],
        "jobs": [{"template": "T", "id": "light", "due": 3, "weight": 1},
                 {"template": "T", "id": "heavy", "due": 3, "weight": 5}]})
    schedule = dispatched_schedule(problem)
    assert schedule.objective_value == 3  # the light job waits
    assert {a.job: a.start for a in schedule.assignments} == {"heavy": 0, "light": 3}


def test_generated_mixes_get_valid_dispatched_schedules() -> None:
    for seed in range(3):
        problem = generate_mix("xlarge", seed, "weighted_tardiness")
        assert check_schedule(problem, dispatched_schedule(problem)) == []


def test_weighted_tardiness_is_hinted_by_default_and_makespan_is_not() -> None:
    """``tardiness_hint`` (on) hints the dispatcher's schedule on weighted tardiness only;
    ``warm_start`` (off) is the makespan greedy's switch and does nothing here."""
    problem = generate_mix("medium", 2, "weighted_tardiness")

    def hints(options: ModelOptions, doc=problem) -> int:
        return len(build_model(doc, "template", options).model.proto.solution_hint.vars)

    assert hints(ModelOptions()) >= problem.num_tasks
    assert hints(ModelOptions(tardiness_hint=False)) == 0
    assert hints(ModelOptions(tardiness_hint=False, warm_start=True)) == 0
    assert hints(ModelOptions(), generate_mix("medium", 2)) == 0
    assert switches_for("weighted_tardiness") == [
        "symmetry_breaking", "redundant_bounds", "search_strategy", "tardiness_hint"]
    assert "tardiness_hint" not in switches_for("makespan")
