"""Template model constraints: the scheduling rules, then the template-level strengths."""

from __future__ import annotations

from collections import defaultdict

from ortools.sat.python import cp_model

from fresh_solver.model import Problem
from fresh_solver.solver.built import TaskVars
from fresh_solver.solver.tardiness_bound import weighted_tardiness_lower_bound


def add_precedences(model: cp_model.CpModel, problem: Problem,
                    tasks: dict[tuple[int, int], TaskVars]) -> None:
    for j, job in enumerate(problem.jobs):
        template = problem.template_of(job)
        for p in template.precedences:
            before = tasks[(j, template.task_index[p.before])]
            after = tasks[(j, template.task_index[p.after])]
            model.add(after.start >= before.end + p.min_lag)


def add_machine_resources(model: cp_model.CpModel, problem: Problem,
                          tasks: dict[tuple[int, int], TaskVars]) -> None:
    """No-overlap on unary machines, cumulative on machines with capacity.

    A zero-duration task occupies no machine time (as the checker and the greedy agree), so it
    stays out of both; CP-SAT's no-overlap would otherwise forbid it inside a busy interval.
    """
    intervals = defaultdict(list)
    for task in tasks.values():
        for mode, interval in zip(task.modes, task.intervals):
            if mode.duration > 0:
                intervals[mode.machine].append(interval)
    for machine in problem.machines:
        if machine.capacity == 1:
            model.add_no_overlap(intervals[machine.id])
        else:
            demands = [1] * len(intervals[machine.id])
            model.add_cumulative(intervals[machine.id], demands, machine.capacity)


def interchangeable_groups(problem: Problem) -> list[list[int]]:
    """Job indices grouped by (template, release, due, weight); only groups of two or more."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for j, job in enumerate(problem.jobs):
        groups[job.group_key].append(j)
    return [g for g in groups.values() if len(g) > 1]


def ordering_task(problem: Problem, job_index: int) -> int | None:
    """The task symmetry breaking orders a group's jobs by, None for no ordering.

    Ordering by any one task is sound; which one matters for speed. First choice: the first
    task (in topological order) with one mode on a unary machine: the jobs' occurrences never
    overlap there, so the order is strict and fixes that machine's sequence. Else the first
    single-mode task on a machine with capacity (a weak order). Tasks with machine
    alternatives are never used: on the development families that weak order slowed CP-SAT
    down more than it pruned.
    """
    template = problem.template_of(problem.jobs[job_index])
    single = [t for t in template.topological_order
              if len(template.tasks[t].modes) == 1 and template.tasks[t].modes[0].duration > 0]
    unary = [t for t in single
             if problem.machine_by_id[template.tasks[t].modes[0].machine].capacity == 1]
    return (unary or single or [None])[0]


def add_symmetry_breaking(model: cp_model.CpModel, problem: Problem,
                          tasks: dict[tuple[int, int], TaskVars]) -> None:
    """Order interchangeable jobs by the start of their ordering task.

    Sound: jobs in a group are identical in every respect, so relabelling them in the order in
    which they start that task turns any schedule into one that satisfies the order, with the
    same objective. Where the task runs alone on a unary machine, consecutive jobs are apart by
    at least its duration.
    """
    for group in interchangeable_groups(problem):
        t = ordering_task(problem, group[0])
        if t is None:
            continue
        modes = tasks[(group[0], t)].modes
        alone = len(modes) == 1 and problem.machine_by_id[modes[0].machine].capacity == 1
        gap = modes[0].duration if alone else 0  # strict only where they cannot overlap
        for a, b in zip(group, group[1:]):
            model.add(tasks[(b, t)].start >= tasks[(a, t)].start + gap)


def add_redundant_makespan_bounds(model: cp_model.CpModel, problem: Problem,
                                  tasks: dict[tuple[int, int], TaskVars],
                                  makespan: cp_model.IntVar) -> None:
    """Head + load + tail bounds per machine, and total work over total capacity.

    On machine m, the tasks whose head is at least h and whose tail is at least q all run
    after h and end before the makespan less q, so capacity x (makespan - h - q) bounds their
    load (over the mode literals). Every (h, q) among the heads and tails there is stated: the
    strongest such set is the one-machine preemptive bound with heads and tails, which CP-SAT's
    propagators find in part and its LP relaxation not at all. A pair whose set has a larger
    least head or least tail than the pair itself is skipped: the same set is stated with those
    larger constants, which is stronger. Where many alternatives crowd a machine the pairs grow
    quadratically (mk03: 635 on one machine of 66 optional tasks), so a machine keeps at most
    :func:`pair_budget` of them (:func:`machine_bound_pairs`).
    """
    entries: dict[str, list[tuple[int, int, cp_model.LinearExprT]]] = defaultdict(list)
    for (j, t), task in tasks.items():
        job = problem.jobs[j]
        template = problem.template_of(job)
        for mode, presence in zip(task.modes, task.presences):
            if mode.duration > 0:
                entries[mode.machine].append((job.release + template.heads[t], template.tails[t],
                                              mode.duration * presence))
    for machine in problem.machines:
        on_machine = entries[machine.id]
        for head, tail, members in machine_bound_pairs([(h, q) for h, q, _ in on_machine]):
            load = [on_machine[i][2] for i in members]
            model.add(machine.capacity * (makespan - head - tail) >= sum(load))
    total_capacity = sum(m.capacity for m in problem.machines)
    earliest = min(job.release for job in problem.jobs)
    model.add(total_capacity * (makespan - earliest)
              >= sum(work for on_machine in entries.values() for _, _, work in on_machine))


def pair_budget(tasks_on_machine: int) -> int:
    """The most (head, tail) bounds one machine states: at least 128, which keeps every one on
    the shared job shops (at most 106 per machine) and on the generated families (a handful),
    and twice the machine's task count (a task counted on each machine it may use), which cuts
    FJSP machines crowded by alternatives from quadratic to linear: mk03 went from 4,899
    constraints to 2,028 and reached its first solution and its proof about twice as soon
    (README, "Measuring": the strength benchmark's figures, 8 workers, seeds 0-5)."""
    return max(128, 2 * tasks_on_machine)


def machine_bound_pairs(heads_and_tails: list[tuple[int, int]],
                        ) -> list[tuple[int, int, list[int]]]:
    """The non-dominated (head, tail) pairs of one machine's tasks, in sorted order, each with
    the indices of the tasks its bound covers (found once here, where dominance needs them);
    over :func:`pair_budget`, an evenly spaced selection of them."""
    pairs = []
    for head in sorted({h for h, _ in heads_and_tails}):
        for tail in sorted({q for h, q in heads_and_tails if h >= head}):
            members = [i for i, (h, q) in enumerate(heads_and_tails) if h >= head and q >= tail]
            if (min(heads_and_tails[i][0] for i in members) > head
                    or min(heads_and_tails[i][1] for i in members) > tail):
                continue  # dominated: the same set with larger constants is stated
            pairs.append((head, tail, members))
    budget = pair_budget(len(heads_and_tails))
    if len(pairs) <= budget:
        return pairs
    step = len(pairs) / budget
    return [pairs[int(i * step)] for i in range(budget)]


def add_redundant_tardiness_bound(model: cp_model.CpModel, problem: Problem,
                                  weighted_tardiness: cp_model.LinearExprT) -> None:
    """Weighted tardiness >= the machine-set bound (:mod:`~fresh_solver.solver.tardiness_bound`),
    which CP-SAT's relaxation, seeing each job alone, does not find."""
    bound = weighted_tardiness_lower_bound(problem)
    if bound > 0:
        model.add(weighted_tardiness >= bound)


def add_search_strategy(model: cp_model.CpModel, problem: Problem,
                        tasks: dict[tuple[int, int], TaskVars]) -> None:
    """Branch on starts, lowest earliest start first: list scheduling inside the search."""
    order = sorted(tasks, key=lambda key: (problem.jobs[key[0]].release, key[1], key[0]))
    model.add_decision_strategy([tasks[k].start for k in order], cp_model.CHOOSE_LOWEST_MIN,
                                cp_model.SELECT_MIN_VALUE)
