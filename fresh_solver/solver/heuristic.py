"""A fast constructive schedule, used as the template model's warm start.

Dispatching in the Giffler-Thompson spirit: repeatedly take, among tasks whose predecessors are
all placed, the one that can start earliest (ties: earliest due date, then most work remaining),
and place it in the mode that finishes first, in the earliest gap its machine has room for.
It is greedy and always feasible; CP-SAT improves on it.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass

from fresh_solver.model import Problem
from fresh_solver.solver.built import objective_of


@dataclass(frozen=True)
class Placement:
    start: int
    mode: int  # index into the task's modes


def placement_objective(problem: Problem, placements: dict[tuple[int, int], Placement]) -> int:
    """What a placement of every (job index, task index) scores on the problem's objective."""
    ends = [0] * len(problem.jobs)
    for (j, t), p in placements.items():
        mode = problem.template_of(problem.jobs[j]).tasks[t].modes[p.mode]
        ends[j] = max(ends[j], p.start + mode.duration)
    return objective_of(problem, ends)


class Timeline:
    """Busy intervals of one machine, sorted by start; finds the earliest start with room."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.intervals: list[tuple[int, int]] = []
        self._usage: list[tuple[int, int]] | None = None  # capacity > 1: (time, units in use)

    def earliest_start(self, est: int, duration: int) -> int:
        if duration == 0:
            return est
        if self.capacity == 1:  # the common case: first gap that is long enough
            start = est
            for s, e in self.intervals:
                if s >= start + duration:
                    break
                start = max(start, e)
            return start
        return self._earliest_with_room(est, duration)

    def _earliest_with_room(self, est: int, duration: int) -> int:
        """One sweep over the usage profile (cached until the next booking): the first window
        of ``duration`` from ``est`` on where fewer than ``capacity`` units are in use."""
        if self._usage is None:
            changes: dict[int, int] = {}
            for s, e in self.intervals:
                changes[s] = changes.get(s, 0) + 1
                changes[e] = changes.get(e, 0) - 1
            level, self._usage = 0, []
            for time in sorted(changes):
                level += changes[time]
                self._usage.append((time, level))
        start = est
        level = 0
        for time, used in self._usage:
            if time <= est:
                level = used
                continue
            if level >= self.capacity:
                start = time  # full until here: the window can start no earlier
            elif time >= start + duration:
                return start
            level = used
        return start  # after the last change nothing is in use

    def book(self, start: int, duration: int) -> None:
        if duration:
            bisect.insort(self.intervals, (start, start + duration))
            self._usage = None


class Release:
    """Precedence bookkeeping both constructive schedules share: which tasks have all their
    predecessors placed, and the earliest start those predecessors' ends allow."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.ends: dict[tuple[int, int], int] = {}
        self.preds_left = {
            (j, t): sum(problem.template_of(job).task_index[p.after] == t
                        for p in problem.template_of(job).precedences)
            for j, job in enumerate(problem.jobs)
            for t in range(len(problem.template_of(job).tasks))}

    def first(self) -> list[tuple[int, int]]:
        """The tasks without predecessors, in (job, task) order."""
        return [key for key, left in self.preds_left.items() if left == 0]

    def earliest(self, j: int, t: int) -> int:
        """The job's release, or the latest predecessor end plus its lag."""
        job = self.problem.jobs[j]
        template = self.problem.template_of(job)
        return max([job.release] + [self.ends[(j, template.task_index[p.before])] + p.min_lag
                                    for p in template.precedences
                                    if template.task_index[p.after] == t])

    def place(self, j: int, t: int, end: int) -> list[tuple[int, int]]:
        """Record that (j, t) ends at ``end``; the successors this releases."""
        self.ends[(j, t)] = end
        template = self.problem.template_of(self.problem.jobs[j])
        released = []
        for p in template.precedences:
            if p.before == template.tasks[t].id:
                after = (j, template.task_index[p.after])
                self.preds_left[after] -= 1
                if self.preds_left[after] == 0:
                    released.append(after)
        return released


def best_mode(problem: Problem, timelines: dict[str, Timeline], j: int, t: int,
              est: int) -> tuple[int, int, int]:
    """(end, start, mode index) of the mode that finishes first from ``est`` on (ties: the
    earlier start, then the first mode)."""
    options = []
    for k, mode in enumerate(problem.template_of(problem.jobs[j]).tasks[t].modes):
        start = timelines[mode.machine].earliest_start(est, mode.duration)
        options.append((start + mode.duration, start, k))
    return min(options)


def greedy_schedule(problem: Problem) -> dict[tuple[int, int], Placement]:
    """Placement of every (job index, task index)."""
    timelines = {m.id: Timeline(m.capacity) for m in problem.machines}
    release = Release(problem)
    placements: dict[tuple[int, int], Placement] = {}
    ready: list[tuple[int, int, int, int, int]] = []  # (est, due, -work, job, task)

    def push(j: int, t: int) -> None:
        job = problem.jobs[j]
        template = problem.template_of(job)
        work = template.tasks[t].min_duration + template.tails[t]
        due = job.due if job.due is not None else problem.horizon
        heapq.heappush(ready, (release.earliest(j, t), due, -work, j, t))

    for key in release.first():
        push(*key)
    while ready:
        est, _, _, j, t = heapq.heappop(ready)
        end, start, k = best_mode(problem, timelines, j, t, est)
        timelines[problem.template_of(problem.jobs[j]).tasks[t].modes[k].machine].book(
            start, end - start)
        placements[(j, t)] = Placement(start, k)
        for key in release.place(j, t, end):
            push(*key)
    return placements
