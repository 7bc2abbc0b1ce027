"""Template model variables: each template is analysed once, then stamped for every job.

Per task the stamp holds its modes, its head (least time from the job's release to its start)
and its tail (least time from its end to the job's end). Start domains are tightened with them,
so every job starts from tight windows without CP-SAT having to propagate them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ortools.sat.python import cp_model

from fresh_solver.model import Mode, Problem, Template
from fresh_solver.solver.built import TaskVars


@dataclass(frozen=True)
class TaskStamp:
    modes: tuple[Mode, ...]
    head: int
    tail: int
    min_duration: int


def stamp_template(template: Template) -> tuple[TaskStamp, ...]:
    return tuple(
        TaskStamp(task.modes, head, tail, task.min_duration)
        for task, head, tail in zip(template.tasks, template.heads, template.tails)
    )


def add_task_variables(
    model: cp_model.CpModel, problem: Problem, horizon: int
) -> dict[tuple[int, int], TaskVars]:
    """One start per (job, task); one fixed-size interval per mode sharing that start."""
    stamps = {t.id: stamp_template(t) for t in problem.templates}
    tasks: dict[tuple[int, int], TaskVars] = {}
    for j, job in enumerate(problem.jobs):
        for t, stamp in enumerate(stamps[job.template]):
            suffix = f"_{j}_{t}"
            latest = max(horizon - stamp.min_duration - stamp.tail, job.release + stamp.head)
            start = model.new_int_var(job.release + stamp.head, latest, "start" + suffix)
            if len(stamp.modes) == 1:
                duration = stamp.modes[0].duration
                interval = model.new_fixed_size_interval_var(start, duration, "interval" + suffix)
                tasks[(j, t)] = TaskVars(start, start + duration, stamp.modes, (True,), (interval,))
                continue
            presences = [model.new_bool_var(f"presence{suffix}_{k}")
                         for k in range(len(stamp.modes))]
            intervals = [
                model.new_optional_fixed_size_interval_var(
                    start, mode.duration, presence, f"interval{suffix}_{k}")
                for k, (mode, presence) in enumerate(zip(stamp.modes, presences))
            ]
            model.add_exactly_one(presences)
            # A main interval with a real end variable: CP-SAT detects precedences between
            # interval ends and starts, which a sum over mode literals would hide.
            durations = cp_model.Domain.from_values(sorted({m.duration for m in stamp.modes}))
            duration = model.new_int_var_from_domain(durations, "duration" + suffix)
            model.add(duration == sum(m.duration * p for m, p in zip(stamp.modes, presences)))
            end = model.new_int_var(job.release + stamp.head + stamp.min_duration,
                                    latest + max(m.duration for m in stamp.modes), "end" + suffix)
            model.new_interval_var(start, duration, end, "task" + suffix)
            tasks[(j, t)] = TaskVars(start, end, stamp.modes, tuple(presences), tuple(intervals))
    return tasks
