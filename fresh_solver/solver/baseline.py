"""The baseline model: what a user writes from the OR-Tools scheduling examples.

It follows `flexible_job_shop_sat.py` and `jobshop_sat.py`: one interval per task with
start/duration/end variables, an optional interval per alternative machine tied to it by
enforced equalities, exactly one alternative, no-overlap per machine (cumulative when a machine
has capacity), precedences, and the makespan as a max-equality over job ends. No symmetry
breaking, no redundant constraints, no hints. It is the yardstick the template model is measured
against: never tune or weaken it. (Zero-duration tasks stay out of the machine constraints:
they occupy no machine time, the project's one meaning of them.)
"""

from __future__ import annotations

import time

from ortools.sat.python import cp_model

from fresh_solver.model import Problem
from fresh_solver.solver.built import BuiltModel, TaskVars, sink_tasks


def build_baseline_model(problem: Problem) -> BuiltModel:
    t0 = time.perf_counter()
    model = cp_model.CpModel()
    horizon = problem.horizon
    tasks: dict[tuple[int, int], TaskVars] = {}
    machine_intervals: dict[str, list[cp_model.IntervalVar]] = {m.id: [] for m in problem.machines}

    for j, job in enumerate(problem.jobs):
        template = problem.template_of(job)
        for t, task in enumerate(template.tasks):
            suffix = f"_{j}_{t}"
            durations = [m.duration for m in task.modes]
            start = model.new_int_var(job.release, horizon, "start" + suffix)
            duration = model.new_int_var(min(durations), max(durations), "duration" + suffix)
            end = model.new_int_var(0, horizon, "end" + suffix)
            interval = model.new_interval_var(start, duration, end, "interval" + suffix)
            if len(task.modes) == 1:
                if durations[0] > 0:  # a zero-duration task occupies no machine time
                    machine_intervals[task.modes[0].machine].append(interval)
                tasks[(j, t)] = TaskVars(start, end, task.modes, (True,), (interval,))
                continue
            presences, alternatives = [], []
            for k, mode in enumerate(task.modes):
                alt = f"{suffix}_{k}"
                presence = model.new_bool_var("presence" + alt)
                alt_start = model.new_int_var(0, horizon, "start" + alt)
                alt_end = model.new_int_var(0, horizon, "end" + alt)
                alt_interval = model.new_optional_interval_var(
                    alt_start, mode.duration, alt_end, presence, "interval" + alt)
                model.add(start == alt_start).only_enforce_if(presence)
                model.add(duration == mode.duration).only_enforce_if(presence)
                model.add(end == alt_end).only_enforce_if(presence)
                if mode.duration > 0:
                    machine_intervals[mode.machine].append(alt_interval)
                presences.append(presence)
                alternatives.append(alt_interval)
            model.add_exactly_one(presences)
            tasks[(j, t)] = TaskVars(start, end, task.modes, tuple(presences), tuple(alternatives))

        for p in template.precedences:
            before = tasks[(j, template.task_index[p.before])]
            after = tasks[(j, template.task_index[p.after])]
            model.add(after.start >= before.end + p.min_lag)

    for machine in problem.machines:
        intervals = machine_intervals[machine.id]
        if machine.capacity == 1:
            model.add_no_overlap(intervals)
        else:
            model.add_cumulative(intervals, [1] * len(intervals), machine.capacity)

    job_ends = []
    for j in range(len(problem.jobs)):
        job_end = model.new_int_var(0, horizon, f"job_end_{j}")
        model.add_max_equality(job_end, [tasks[(j, t)].end for t in sink_tasks(problem, j)])
        job_ends.append(job_end)
    if problem.objective == "makespan":
        makespan = model.new_int_var(0, horizon, "makespan")
        model.add_max_equality(makespan, job_ends)
        model.minimize(makespan)
    else:
        tardiness = []
        for job, job_end in zip(problem.jobs, job_ends):
            if job.due is None:
                continue
            tardy = model.new_int_var(0, horizon, f"tardiness_{job.id}")
            model.add_max_equality(tardy, [0, job_end - job.due])
            tardiness.append(job.weight * tardy)
        if tardiness:  # no due dates: a feasibility problem
            model.minimize(sum(tardiness))

    return BuiltModel("baseline", problem, model, tasks, time.perf_counter() - t0)
