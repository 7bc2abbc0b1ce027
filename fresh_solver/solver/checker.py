"""Independent schedule checker: is a `fresh-solver/schedule-v1` schedule valid for its problem?

This module deliberately shares no code with the CP-SAT model builders. A checker that reused
the builders' indexing, bounds or constraint helpers would inherit their bugs and certify wrong
schedules as correct, so everything here is recomputed from the raw :class:`Problem` and
:class:`Schedule` dataclasses in plain Python: no OR-Tools, no template helper properties
(``heads``, ``tails``, ``topological_order``, ``task_index`` ...), no cached lookups of the
problem. Keep it that way: when the builders change, this file should not have to.

:func:`check_schedule` returns every violation it finds as a sentence naming the job, task and
machine involved; an empty list means the schedule is valid. It keeps checking what it can when
assignments are missing, duplicated or refer to unknown jobs, tasks or machines.
"""

from __future__ import annotations

from fresh_solver.model.problem import Job, Problem, Task, Template
from fresh_solver.model.schedule import Assignment, Schedule

__all__ = ["check_schedule"]


def _where(a: Assignment) -> str:
    return f"job {a.job!r} task {a.task!r} on {a.machine!r}"


def check_schedule(problem: Problem, schedule: Schedule) -> list[str]:
    """Return every violation as a human-readable sentence; [] means the schedule is valid."""
    problems: list[str] = []
    capacity = {m.id: m.capacity for m in problem.machines}
    templates: dict[str, Template] = {t.id: t for t in problem.templates}
    jobs: dict[str, Job] = {j.id: j for j in problem.jobs}
    # (job id, task id) -> Task, for every task the problem requires
    required: dict[tuple[str, str], Task] = {}
    for job in problem.jobs:
        template = templates.get(job.template)
        if template is None:
            problems.append(f"job {job.id!r}: its template {job.template!r} is not in the problem")
            continue
        for task in template.tasks:
            required[(job.id, task.id)] = task

    # Each assignment on its own: identity, mode, duration, start, release.
    placed: dict[tuple[str, str], Assignment] = {}  # first assignment of each (job, task)
    for a in schedule.assignments:
        key = (a.job, a.task)
        job = jobs.get(a.job)
        task = required.get(key)
        if job is None:
            problems.append(f"{_where(a)}: unknown job {a.job!r}")
        elif task is None:
            problems.append(
                f"{_where(a)}: template {job.template!r} of job {a.job!r} has no task {a.task!r}"
            )
        elif key in placed:
            problems.append(f"{_where(a)}: task assigned more than once")
        else:
            placed[key] = a

        if a.machine not in capacity:
            problems.append(f"{_where(a)}: unknown machine {a.machine!r}")
        elif task is not None:
            durations = {m.machine: m.duration for m in task.modes}
            if a.machine not in durations:
                allowed = ", ".join(repr(m.machine) for m in task.modes)
                problems.append(f"{_where(a)}: not a mode of this task (allowed: {allowed})")
            elif a.end >= a.start and a.end - a.start != durations[a.machine]:
                problems.append(
                    f"{_where(a)}: ends at {a.end}, duration of that mode is "
                    f"{durations[a.machine]} but end-start is {a.end - a.start}"
                )
        if a.end < a.start:
            problems.append(f"{_where(a)}: ends at {a.end}, before its start {a.start}")
        if a.start < 0:
            problems.append(f"{_where(a)}: starts at {a.start}, before time 0")
        elif job is not None and a.start < job.release:
            problems.append(
                f"{_where(a)}: starts at {a.start}, before the job's release {job.release}"
            )

    for job_id, task_id in required:
        if (job_id, task_id) not in placed:
            problems.append(f"job {job_id!r} task {task_id!r}: not assigned")

    # Precedences with lags, between the tasks that were placed.
    for job in problem.jobs:
        template = templates.get(job.template)
        for p in template.precedences if template is not None else ():
            before = placed.get((job.id, p.before))
            after = placed.get((job.id, p.after))
            if before is None or after is None:
                continue  # reported as not assigned
            earliest = before.end + p.min_lag
            if after.start < earliest:
                lag = f" + min_lag {p.min_lag}" if p.min_lag else ""
                problems.append(
                    f"{_where(after)}: starts at {after.start}, but task {p.before!r} "
                    f"(on {before.machine!r}) ends at {before.end}{lag}, so it may start "
                    f"at {earliest} at the earliest"
                )

    problems.extend(_capacity_violations(schedule.assignments, capacity))
    problems.extend(_objective_violations(problem, schedule, jobs))
    return problems


def _capacity_violations(
    assignments: tuple[Assignment, ...], capacity: dict[str, int]
) -> list[str]:
    """Sweep over start/end events per machine; intervals are half-open [start, end)."""
    events: dict[str, list[tuple[int, int, int]]] = {}  # machine -> (time, +1/-1, index)
    for i, a in enumerate(assignments):
        if a.machine in capacity and a.end > a.start:  # zero-duration tasks occupy nothing
            events.setdefault(a.machine, []).extend([(a.start, 1, i), (a.end, -1, i)])
    problems = []
    for machine, machine_events in events.items():
        machine_events.sort()  # at equal times ends (-1) come before starts (+1)
        running: dict[int, None] = {}  # insertion-ordered set of running assignment indices
        overloaded = False
        for time, delta, i in machine_events:
            if delta < 0:
                del running[i]
                overloaded = overloaded and len(running) > capacity[machine]
                continue
            running[i] = None
            if len(running) > capacity[machine] and not overloaded:
                overloaded = True  # report once per overload episode
                names = ", ".join(
                    f"job {assignments[k].job!r} task {assignments[k].task!r}" for k in running
                )
                problems.append(
                    f"machine {machine!r}: {len(running)} tasks run at time {time} but its "
                    f"capacity is {capacity[machine]} ({names})"
                )
    return problems


def _objective_violations(problem: Problem, schedule: Schedule, jobs: dict[str, Job]) -> list[str]:
    problems = []
    if schedule.objective_kind != problem.objective:
        problems.append(
            f"objective kind is {schedule.objective_kind!r} but the problem's objective is "
            f"{problem.objective!r}"
        )
    if problem.objective == "weighted_tardiness":
        job_end: dict[str, int] = {}
        for a in schedule.assignments:
            if a.job in jobs:
                job_end[a.job] = max(job_end.get(a.job, a.end), a.end)
        value = sum(
            job.weight * max(0, job_end[job.id] - job.due)
            for job in problem.jobs
            if job.due is not None and job.id in job_end
        )
    else:
        value = max((a.end for a in schedule.assignments), default=0)
    if schedule.objective_value != value:
        problems.append(
            f"objective value is {schedule.objective_value} but the schedule's "
            f"{problem.objective} is {value}"
        )
    return problems
