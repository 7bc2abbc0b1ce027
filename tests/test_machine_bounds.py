"""The (head, tail) machine bounds keep every non-dominated pair until a machine is crowded,
then an evenly spaced selection of them; a selection is still a set of valid bounds."""

from __future__ import annotations

from unittest import mock

from hypothesis import HealthCheck, given, settings

from fresh_solver.model import problem_from_dict
from fresh_solver.solver import constraints, solve
from fresh_solver.solver.constraints import machine_bound_pairs, pair_budget
from tests.test_properties import problems


def _pairs(heads_and_tails):
    return [(head, tail) for head, tail, _ in machine_bound_pairs(heads_and_tails)]


def _all_pairs(heads_and_tails):
    with mock.patch.object(constraints, "pair_budget", lambda n: 10**9):
        return _pairs(heads_and_tails)


def test_few_pairs_are_all_kept_and_dominated_ones_skipped() -> None:
    # heads 0, 5 and tails 3, 7: (0, 3) is every task; (0, 7) is the set {(5, 7)} whose
    # least head is 5, so it is dominated by (5, 7)
    assert _pairs([(0, 3), (5, 7)]) == [(0, 3), (5, 7)]
    assert _pairs([(0, 7), (5, 3)]) == [(0, 3), (0, 7), (5, 3)]


def test_each_pair_covers_exactly_the_tasks_with_that_head_and_tail_or_more() -> None:
    heads_and_tails = [(0, 7), (5, 3), (5, 9), (2, 2)]
    for head, tail, members in machine_bound_pairs(heads_and_tails):
        assert members == [i for i, (h, q) in enumerate(heads_and_tails)
                           if h >= head and q >= tail]


def test_a_crowded_machine_keeps_an_evenly_spaced_budget() -> None:
    # an antichain of 40 tasks (later heads, shorter tails) has one pair per interval: 820
    crowded = [(i, 40 - i) for i in range(40)]
    every = _all_pairs(crowded)
    assert len(every) == 820 > pair_budget(40) == 128
    kept = _pairs(crowded)
    assert len(kept) == 128 and kept == sorted(kept) and set(kept) <= set(every)
    assert kept[0] == every[0]
    assert len({h for h, _ in kept}) > 20  # spread over the heads, not the first few


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_a_tiny_budget_keeps_the_optimum(doc) -> None:
    problem = problem_from_dict(doc)
    reference = solve(problem, model="baseline", params={"num_workers": 2}, time_limit=10)
    with mock.patch.object(constraints, "pair_budget", lambda n: 1):
        capped = solve(problem, params={"num_workers": 2}, time_limit=10)
    assert reference.status == capped.status == "OPTIMAL"
    assert capped.objective == reference.objective and capped.valid is True
