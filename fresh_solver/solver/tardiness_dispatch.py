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
from fresh_solver.solver.heuristic import Placement, _Timeline

K_VALUES = (1.0, 4.0)


def tardiness_dispatch(problem: Problem) -> dict[tuple[int, int], Placement]:
    """The placement of every (job index, task index) with the least weighted tardiness over
    :data:`K_VALUES`."""
    schedules = [_dispatch(problem, k) for k in K_VALUES]
    return min(schedules, key=lambda placements: weighted_tardiness(problem, placements))


def weighted_tardiness(problem: Problem, placements: dict[tuple[int, int], Placement]) -> int:
    """What a placement scores (jobs without a due date count nothing)."""
    total = 0
    for j, job in enumerate(problem.jobs):
        if job.due is None:
            continue
        tasks = problem.template_of(job).tasks
        end = max(placements[(j, t)].start + task.modes[placements[(j, t)].mode].duration
                  for t, task in enumerate(tasks))
        total += job.weight * max(0, end - job.due)
    return total


def _dispatch(problem: Problem, k: float) -> dict[tuple[int, int], Placement]:
    timelines = {m.id: _Timeline(m.capacity) for m in problem.machines}
    mean_duration = max(1.0, sum(t.min_duration for job in problem.jobs
                                 for t in problem.template_of(job).tasks) / problem.num_tasks)
    ends: dict[tuple[int, int], int] = {}
    placements: dict[tuple[int, int], Placement] = {}
    preds_left: dict[tuple[int, int], int] = {}
    ready: dict[tuple[int, int], int] = {}  # earliest start by precedences
    options: dict[tuple[int, int], tuple[int, int, int]] = {}  # (end, start, mode)

    def earliest(j: int, t: int) -> int:
        job = problem.jobs[j]
        template = problem.template_of(job)
        return max([job.release] + [ends[(j, template.task_index[p.before])] + p.min_lag
                                    for p in template.precedences
                                    if template.task_index[p.after] == t])

    def best_mode(j: int, t: int) -> tuple[int, int, int]:
        best = None
        for i, m in enumerate(problem.template_of(problem.jobs[j]).tasks[t].modes):
            start = timelines[m.machine].earliest_start(ready[(j, t)], m.duration)
            best = min(best or (start + m.duration, start, i), (start + m.duration, start, i))
        return best

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

    for j, job in enumerate(problem.jobs):
        template = problem.template_of(job)
        for t in range(len(template.tasks)):
            preds_left[(j, t)] = sum(template.task_index[p.after] == t
                                     for p in template.precedences)
            if preds_left[(j, t)] == 0:
                ready[(j, t)] = earliest(j, t)
                options[(j, t)] = best_mode(j, t)

    while ready:
        first_end = min(end for end, _, _ in options.values())
        competing = [key for key, (_, start, _) in options.items() if start < first_end]
        j, t = max(competing or list(options), key=index)
        _, start, mode = options.pop((j, t))
        del ready[(j, t)]
        template = problem.template_of(problem.jobs[j])
        chosen = template.tasks[t].modes[mode]
        timelines[chosen.machine].book(start, chosen.duration)
        placements[(j, t)] = Placement(start, mode)
        ends[(j, t)] = start + chosen.duration
        for key in options:  # only tasks that may use the booked machine can move
            modes = problem.template_of(problem.jobs[key[0]]).tasks[key[1]].modes
            if any(m.machine == chosen.machine for m in modes):
                options[key] = best_mode(*key)
        for p in template.precedences:
            if p.before == template.tasks[t].id:
                after = template.task_index[p.after]
                preds_left[(j, after)] -= 1
                if preds_left[(j, after)] == 0:
                    ready[(j, after)] = earliest(j, after)
                    options[(j, after)] = best_mode(j, after)
    return placements
