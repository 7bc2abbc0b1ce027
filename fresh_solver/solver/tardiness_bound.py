"""A lower bound on weighted tardiness that CP-SAT does not find by itself.

CP-SAT's bound on weighted tardiness stays at 0 on overloaded shops: its linear relaxation
sees every job alone, and each job alone could be on time. The tardiness comes from jobs
competing for the same machines, which a relaxation per machine group sees:

* Take a set of machines M with total capacity c and, per job, the work it must do there (the
  least duration of each task whose every mode is on M). Whatever the schedule, by the time k
  jobs have finished their work on M, at least the k smallest works have been done, at most c
  units per time unit from the earliest of the jobs' heads on M: the k-th completion on M is at
  least ``head + ceil(sum of the k smallest works / c)``.
* A job ends at least its least tail after its completion on M, so it is late by at least
  that completion minus (its due date less that tail). Pairing completions and due dates both
  in increasing order gives the least total of ``max(0, completion - due)`` (the SPT/EDD bound
  of single-machine total tardiness; ``max(0, x)`` is convex).
* Weights: ``sum w_j T_j = sum over weight levels l of (w_l - w_{l-1}) * sum_{w_j >= w_l} T_j``,
  and each inner sum is bounded as above over its jobs alone (other jobs only delay them).

Machine sets tried: each machine alone, and all machines together. Also the per-job bound
(release + critical path past the due date). The bound is the best of these; it is valid for
any schedule, so the optimum is unchanged when it is added to the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fresh_solver.model import Problem


@dataclass(frozen=True)
class _Work:
    """One job's share of a machine set: its work there, earliest start there, due date for
    its completion there, and weight."""

    work: int
    head: int
    due: int
    weight: int


def weighted_tardiness_lower_bound(problem: Problem) -> int:
    """A lower bound on the weighted tardiness of every schedule of ``problem`` (0 when the
    objective is makespan or no job has a due date)."""
    if problem.objective != "weighted_tardiness":
        return 0
    machine_sets = [frozenset([m.id]) for m in problem.machines]
    machine_sets.append(frozenset(m.id for m in problem.machines))
    capacity = {m.id: m.capacity for m in problem.machines}
    bounds = [_per_job_bound(problem)]
    for machines in machine_sets:
        works = _works_on(problem, machines)
        bounds.append(_layered_bound(works, sum(capacity[m] for m in machines)))
    return max(bounds)


def _per_job_bound(problem: Problem) -> int:
    """Each job alone: it cannot end before its release plus its critical path."""
    return sum(job.weight * max(0, job.release + problem.template_of(job).critical_path - job.due)
               for job in problem.jobs if job.due is not None)


def _works_on(problem: Problem, machines: frozenset[str]) -> list[_Work]:
    """Per job with a due date, its work on ``machines`` (tasks whose every mode is there)."""
    works = []
    for job in problem.jobs:
        if job.due is None:
            continue
        template = problem.template_of(job)
        inside = [t for t, task in enumerate(template.tasks)
                  if task.min_duration > 0 and all(m.machine in machines for m in task.modes)]
        if not inside:
            continue
        works.append(_Work(
            work=sum(template.tasks[t].min_duration for t in inside),
            head=job.release + min(template.heads[t] for t in inside),
            due=job.due - min(template.tails[t] for t in inside),
            weight=job.weight,
        ))
    return works


def _layered_bound(works: list[_Work], capacity: int) -> int:
    """Weighted bound as a sum over weight levels of unweighted SPT/EDD bounds."""
    bound, previous = 0, 0
    for level in sorted({w.weight for w in works}):
        heavy = [w for w in works if w.weight >= level]
        bound += (level - previous) * _spt_edd_bound(heavy, capacity)
        previous = level
    return bound


def _spt_edd_bound(works: list[_Work], capacity: int) -> int:
    """Least total tardiness on ``capacity`` parallel units: k-th completion no earlier than
    the earliest head plus the k smallest works over the capacity, paired with sorted dues."""
    if not works:
        return 0
    start = min(w.head for w in works)
    done, total = 0, 0
    for work, due in zip(sorted(w.work for w in works), sorted(w.due for w in works)):
        done += work
        total += max(0, start + math.ceil(done / capacity) - due)
    return total
