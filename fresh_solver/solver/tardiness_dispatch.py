"""A weighted-tardiness schedule by dispatching: the warm start for weighted tardiness.

The makespan greedy (:mod:`fresh_solver.solver.heuristic`) takes whatever can start first,
which on an overloaded shop serves jobs in arrival order whatever their weights and due dates.
Here, Giffler-Thompson style: among the tasks whose predecessors are placed, those that could
start before the earliest possible completion of any of them compete, and the one with the
highest Apparent Tardiness Cost index wins (Vepsalainen and Morton):

    weight / remaining work * exp(-max(0, slack) / (k * mean task duration))

where the remaining work is the task's duration plus its tail and the slack is what is left
before the due date after that work. ``k`` trades urgency against weighted shortest work; the
schedule is built for a few values and the best kept.
"""

from __future__ import annotations

import math

from fresh_solver.model import Problem
from fresh_solver.solver.heuristic import (
    Placement,
    Release,
    Timeline,
    best_mode,
    placement_objective,
)

K_VALUES = (1.0, 4.0)


def tardiness_dispatch(problem: Problem) -> dict[tuple[int, int], Placement]:
    """The placement of every (job index, task index) with the least weighted tardiness over
    :data:`K_VALUES`."""
    schedules = [_dispatch(problem, k) for k in K_VALUES]
    return min(schedules, key=lambda placements: placement_objective(problem, placements))


def _dispatch(problem: Problem, k: float) -> dict[tuple[int, int], Placement]:
    timelines = {m.id: Timeline(m.capacity) for m in problem.machines}
    mean_duration = max(1.0, sum(t.min_duration for job in problem.jobs
                                 for t in problem.template_of(job).tasks) / problem.num_tasks)
    release = Release(problem)
    placements: dict[tuple[int, int], Placement] = {}
    ready: dict[tuple[int, int], int] = {}  # earliest start by precedences
    options: dict[tuple[int, int], tuple[int, int, int]] = {}  # (end, start, mode)

    def make_ready(j: int, t: int) -> None:
        ready[(j, t)] = release.earliest(j, t)
        options[(j, t)] = best_mode(problem, timelines, j, t, ready[(j, t)])

    def index(key: tuple[int, int]) -> float:
        j, t = key
        job = problem.jobs[j]
        if job.due is None:
            return 0.0
        end, start, mode = options[key]
        template = problem.template_of(job)
        remaining = template.tasks[t].modes[mode].duration + template.tails[t]
        slack = max(0, job.due - start - remaining)
        return job.weight / max(1, remaining) * math.exp(-slack / (k * mean_duration))

    for key in release.first():
        make_ready(*key)
    while ready:
        first_end = min(end for end, _, _ in options.values())
        competing = [key for key, (_, start, _) in options.items() if start < first_end]
        j, t = max(competing or list(options), key=index)
        end, start, mode = options.pop((j, t))
        del ready[(j, t)]
        machine = problem.template_of(problem.jobs[j]).tasks[t].modes[mode].machine
        timelines[machine].book(start, end - start)
        placements[(j, t)] = Placement(start, mode)
        for key in options:  # only tasks that may use the booked machine can move
            modes = problem.template_of(problem.jobs[key[0]]).tasks[key[1]].modes
            if any(m.machine == machine for m in modes):
                options[key] = best_mode(problem, timelines, *key, ready[key])
        for key in release.place(j, t, end):
            make_ready(*key)
    return placements
