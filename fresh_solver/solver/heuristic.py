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


@dataclass(frozen=True)
class Placement:
    start: int
    mode: int  # index into the task's modes


class _Timeline:
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


def greedy_schedule(problem: Problem) -> dict[tuple[int, int], Placement]:
    """Placement of every (job index, task index)."""
    timelines = {m.id: _Timeline(m.capacity) for m in problem.machines}
    ends: dict[tuple[int, int], int] = {}
    placements: dict[tuple[int, int], Placement] = {}
    preds_left: dict[tuple[int, int], int] = {}
    ready: list[tuple[int, int, int, int, int]] = []  # (est, due, -work, job, task)

    def push(j: int, t: int) -> None:
        job = problem.jobs[j]
        template = problem.template_of(job)
        est = job.release
        for p in template.precedences:
            if template.task_index[p.after] == t:
                est = max(est, ends[(j, template.task_index[p.before])] + p.min_lag)
        work = template.tasks[t].min_duration + template.tails[t]
        due = job.due if job.due is not None else problem.horizon
        heapq.heappush(ready, (est, due, -work, j, t))

    for j, job in enumerate(problem.jobs):
        template = problem.template_of(job)
        for t in range(len(template.tasks)):
            preds_left[(j, t)] = sum(1 for p in template.precedences
                                     if template.task_index[p.after] == t)
            if preds_left[(j, t)] == 0:
                push(j, t)

    while ready:
        est, _, _, j, t = heapq.heappop(ready)
        template = problem.template_of(problem.jobs[j])
        task = template.tasks[t]
        best = None
        for k, mode in enumerate(task.modes):
            start = timelines[mode.machine].earliest_start(est, mode.duration)
            if best is None or start + mode.duration < best[0]:
                best = (start + mode.duration, start, k)
        end, start, k = best
        timelines[task.modes[k].machine].book(start, task.modes[k].duration)
        placements[(j, t)] = Placement(start, k)
        ends[(j, t)] = end
        for p in template.precedences:
            if p.before == task.id:
                succ = template.task_index[p.after]
                preds_left[(j, succ)] -= 1
                if preds_left[(j, succ)] == 0:
                    push(j, succ)
    return placements
