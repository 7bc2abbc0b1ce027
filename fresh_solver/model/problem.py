"""The `fresh-solver/problem-v1` problem: machines, job templates and jobs.

Everything here is frozen and validated once, on the way in, so the model builders and the
checker can trust the data: ids are unique and resolve, durations and times are non-negative
integers, precedences are acyclic. Bad input raises :class:`InputError` listing every problem
with its JSON path (``templates[0].tasks[3].modes``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fresh_solver.errors import InputError

FORMAT = "fresh-solver/problem-v1"
OBJECTIVES = ("makespan", "weighted_tardiness")


@dataclass(frozen=True)
class Machine:
    """A resource tasks run on: ``capacity`` tasks at once (1: a unary machine, on which the
    models use no-overlap; more: a cumulative one)."""

    id: str
    capacity: int = 1


@dataclass(frozen=True)
class Mode:
    """One way to run a task: on ``machine`` for ``duration`` time units."""

    machine: str
    duration: int


@dataclass(frozen=True)
class Task:
    """A step of a template: it runs once per job, in exactly one of its ``modes`` (machine
    alternatives, each with its own duration)."""

    id: str
    modes: tuple[Mode, ...]

    @property
    def min_duration(self) -> int:
        return min(m.duration for m in self.modes)


@dataclass(frozen=True)
class Precedence:
    """``after`` starts at least ``min_lag`` units after ``before`` ends."""

    before: str
    after: str
    min_lag: int = 0


@dataclass(frozen=True)
class Template:
    """The structure shared by every job built from it."""

    id: str
    tasks: tuple[Task, ...]
    precedences: tuple[Precedence, ...]

    @cached_property
    def task_index(self) -> dict[str, int]:
        return {t.id: i for i, t in enumerate(self.tasks)}

    @cached_property
    def topological_order(self) -> tuple[int, ...]:
        """Task indices, every task after all its predecessors (validated acyclic)."""
        order = _topological_order(len(self.tasks), self._edges)
        assert order is not None, "validated templates are acyclic"
        return tuple(order)

    @cached_property
    def _edges(self) -> list[tuple[int, int, int]]:
        idx = self.task_index
        return [(idx[p.before], idx[p.after], p.min_lag) for p in self.precedences]

    @cached_property
    def heads(self) -> tuple[int, ...]:
        """Earliest start of each task relative to the job's release (min durations, lags)."""
        head = [0] * len(self.tasks)
        preds: dict[int, list[tuple[int, int]]] = {}
        for b, a, lag in self._edges:
            preds.setdefault(a, []).append((b, lag))
        for t in self.topological_order:
            for b, lag in preds.get(t, ()):
                head[t] = max(head[t], head[b] + self.tasks[b].min_duration + lag)
        return tuple(head)

    @cached_property
    def tails(self) -> tuple[int, ...]:
        """Least time from each task's end to the end of the job (min durations, lags)."""
        tail = [0] * len(self.tasks)
        succs: dict[int, list[tuple[int, int]]] = {}
        for b, a, lag in self._edges:
            succs.setdefault(b, []).append((a, lag))
        for t in reversed(self.topological_order):
            for a, lag in succs.get(t, ()):
                tail[t] = max(tail[t], lag + self.tasks[a].min_duration + tail[a])
        return tuple(tail)

    @property
    def critical_path(self) -> int:
        """Least duration of one job of this template, from its release to its last end."""
        return max(h + t.min_duration + tl for h, t, tl in zip(self.heads, self.tasks, self.tails))


@dataclass(frozen=True)
class Job:
    """One instance of a template: its tasks may not start before ``release``; with a ``due``
    date it adds ``weight`` × its lateness to weighted tardiness. Jobs of one template that
    agree on these are interchangeable, which the template model exploits."""

    id: str
    template: str
    release: int = 0
    due: int | None = None
    weight: int = 1

    @property
    def group_key(self) -> tuple[str, int, int | None, int]:
        """Jobs with equal keys are interchangeable: only they may be ordered among themselves."""
        return (self.template, self.release, self.due, self.weight)


@dataclass(frozen=True)
class Problem:
    """A validated scheduling problem (DESIGN §3): machines, job templates, the jobs built from
    them and the objective. Immutable, so a model builder, the checker and a tuning session
    can share one without copying."""

    name: str
    machines: tuple[Machine, ...]
    templates: tuple[Template, ...]
    jobs: tuple[Job, ...]
    objective: str = "makespan"
    time_unit_minutes: float = 1

    @cached_property
    def machine_by_id(self) -> dict[str, Machine]:
        return {m.id: m for m in self.machines}

    @cached_property
    def template_by_id(self) -> dict[str, Template]:
        return {t.id: t for t in self.templates}

    def template_of(self, job: Job) -> Template:
        return self.template_by_id[job.template]

    @property
    def num_tasks(self) -> int:
        return sum(len(self.template_of(j).tasks) for j in self.jobs)

    @cached_property
    def horizon(self) -> int:
        """A safe upper bound on any end time: all work in sequence after the last release."""
        work = sum(
            max(m.duration for m in t.modes)
            + sum(max(p.min_lag, 0) for p in self.template_of(j).precedences if p.before == t.id)
            for j in self.jobs
            for t in self.template_of(j).tasks
        )
        return max(j.release for j in self.jobs) + work


# --------------------------------------------------------------------------------------------
# From and to JSON-able dicts


# Input limits: large enough for any real shop (nanosecond-scale durations, a million
# identical machines), small enough that no valid problem overflows CP-SAT's 64-bit
# arithmetic (tests/test_problem.py solves problems at these edges with both models).
LIMITS = {"duration": 10**9, "min_lag": 10**9, "release": 10**12, "due": 2 * 10**12,
          "weight": 10**6, "capacity": 10**6, "count": 10**5}
MAX_PRODUCT = 2**61  # horizon x total capacity, horizon x total weight


class _Errors:
    """Collects every validation problem so the user sees them all at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def raise_if_any(self) -> None:
        if self.items:
            raise InputError(self.items)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(errors: _Errors, path: str, value: Any, *, minimum: int | None = 0,
         maximum: int | None = None) -> int:
    if not _is_int(value):
        errors.add(path, f"must be an integer, got {value!r}")
        return 0
    if minimum is not None and value < minimum:
        errors.add(path, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        errors.add(path, f"must be <= {maximum:.0e} (fresh-solver's limit, see README), "
                         f"got {value}")
        return maximum
    return value


def _str(errors: _Errors, path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        errors.add(path, f"must be a non-empty string, got {value!r}")
        return ""
    return value


def _obj(errors: _Errors, path: str, value: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        errors.add(path, f"must be an object, got {type(value).__name__}")
        return {}
    for key in sorted(set(value) - allowed):
        errors.add(f"{path}.{key}" if path else key, "unknown field")
    return value


def _list(errors: _Errors, path: str, value: Any, *, nonempty: bool = True) -> list[Any]:
    if not isinstance(value, list):
        errors.add(path, f"must be a list, got {type(value).__name__}")
        return []
    if nonempty and not value:
        errors.add(path, "must not be empty")
    return value


def _topological_order(n: int, edges: list[tuple[int, int, int]]) -> list[int] | None:
    """Kahn's algorithm; None when the graph has a cycle."""
    indegree = [0] * n
    succs: list[list[int]] = [[] for _ in range(n)]
    for b, a, _ in edges:
        succs[b].append(a)
        indegree[a] += 1
    ready = [i for i in range(n) if indegree[i] == 0]
    order = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for a in succs[node]:
            indegree[a] -= 1
            if indegree[a] == 0:
                ready.append(a)
    return order if len(order) == n else None


def _parse_template(
    errors: _Errors, path: str, raw: Any, machine_ids: set[str]
) -> Template | None:
    raw = _obj(errors, path, raw, {"id", "tasks", "precedences"})
    tid = _str(errors, f"{path}.id", raw.get("id"))
    tasks: list[Task] = []
    seen_tasks: set[str] = set()
    for k, raw_task in enumerate(_list(errors, f"{path}.tasks", raw.get("tasks"))):
        tpath = f"{path}.tasks[{k}]"
        raw_task = _obj(errors, tpath, raw_task, {"id", "modes"})
        task_id = _str(errors, f"{tpath}.id", raw_task.get("id"))
        if task_id in seen_tasks:
            errors.add(f"{tpath}.id", f"duplicate task id {task_id!r}")
        seen_tasks.add(task_id)
        modes: list[Mode] = []
        seen_machines: set[str] = set()
        for i, raw_mode in enumerate(_list(errors, f"{tpath}.modes", raw_task.get("modes"))):
            mpath = f"{tpath}.modes[{i}]"
            raw_mode = _obj(errors, mpath, raw_mode, {"machine", "duration"})
            machine = _str(errors, f"{mpath}.machine", raw_mode.get("machine"))
            if machine and machine not in machine_ids:
                errors.add(f"{mpath}.machine", f"unknown machine {machine!r}")
            if machine in seen_machines:
                errors.add(f"{mpath}.machine", f"machine {machine!r} listed twice for this task")
            seen_machines.add(machine)
            duration = _int(errors, f"{mpath}.duration", raw_mode.get("duration"),
                            maximum=LIMITS["duration"])
            modes.append(Mode(machine, duration))
        tasks.append(Task(task_id, tuple(modes)))

    if "precedences" not in raw:  # absent: a chain in the order listed
        precedences = [Precedence(a.id, b.id) for a, b in zip(tasks, tasks[1:])]
    else:
        precedences = []
        raw_precs = _list(errors, f"{path}.precedences", raw["precedences"], nonempty=False)
        for i, raw_prec in enumerate(raw_precs):
            ppath = f"{path}.precedences[{i}]"
            raw_prec = _obj(errors, ppath, raw_prec, {"before", "after", "min_lag"})
            before = _str(errors, f"{ppath}.before", raw_prec.get("before"))
            after = _str(errors, f"{ppath}.after", raw_prec.get("after"))
            for key, name in (("before", before), ("after", after)):
                if name and name not in seen_tasks:
                    errors.add(f"{ppath}.{key}", f"unknown task {name!r}")
            if before and before == after:
                errors.add(ppath, f"task {before!r} cannot precede itself")
            lag = _int(errors, f"{ppath}.min_lag", raw_prec.get("min_lag", 0),
                       maximum=LIMITS["min_lag"])
            precedences.append(Precedence(before, after, lag))

    if errors.items:
        return None
    template = Template(tid, tuple(tasks), tuple(precedences))
    if _topological_order(len(tasks), template._edges) is None:
        errors.add(f"{path}.precedences", "precedences form a cycle")
        return None
    return template


def problem_from_dict(data: Any) -> Problem:
    """Validate a `fresh-solver/problem-v1` document and build the immutable problem."""
    errors = _Errors()
    top_fields = {"format", "name", "time_unit_minutes", "machines", "templates", "jobs",
                  "objective"}
    data = _obj(errors, "", data, top_fields)
    errors.raise_if_any()
    if data.get("format") != FORMAT:
        errors.add("format", f"must be {FORMAT!r}, got {data.get('format')!r}")
    name = _str(errors, "name", data.get("name", "problem"))
    unit = data.get("time_unit_minutes", 1)
    if isinstance(unit, bool) or not isinstance(unit, int | float) or not 0 < unit < math.inf:
        errors.add("time_unit_minutes", f"must be a positive number, got {unit!r}")
    objective = data.get("objective", "makespan")
    if objective not in OBJECTIVES:
        errors.add("objective", f"must be one of {', '.join(OBJECTIVES)}, got {objective!r}")

    machines: list[Machine] = []
    for i, raw in enumerate(_list(errors, "machines", data.get("machines"))):
        raw = _obj(errors, f"machines[{i}]", raw, {"id", "capacity"})
        mid = _str(errors, f"machines[{i}].id", raw.get("id"))
        if mid in {m.id for m in machines}:
            errors.add(f"machines[{i}].id", f"duplicate machine id {mid!r}")
        capacity = _int(errors, f"machines[{i}].capacity", raw.get("capacity", 1), minimum=1,
                        maximum=LIMITS["capacity"])
        machines.append(Machine(mid, capacity))
    machine_ids = {m.id for m in machines}

    templates: list[Template] = []
    template_ids: set[str] = set()
    for i, raw in enumerate(_list(errors, "templates", data.get("templates"))):
        before = len(errors.items)
        sub = _Errors()
        template = _parse_template(sub, f"templates[{i}]", raw, machine_ids)
        errors.items.extend(sub.items)
        if template is None or len(errors.items) > before:
            continue
        if template.id in template_ids:
            errors.add(f"templates[{i}].id", f"duplicate template id {template.id!r}")
        template_ids.add(template.id)
        templates.append(template)
    raw_templates = data.get("templates")
    declared_templates = {
        raw.get("id") for raw in (raw_templates if isinstance(raw_templates, list) else [])
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str)
    }

    jobs: list[Job] = []
    next_copy: dict[str, int] = {}
    for i, raw in enumerate(_list(errors, "jobs", data.get("jobs"))):
        path = f"jobs[{i}]"
        raw = _obj(errors, path, raw, {"id", "template", "count", "release", "due", "weight"})
        template = _str(errors, f"{path}.template", raw.get("template"))
        if template and template not in declared_templates:
            errors.add(f"{path}.template", f"unknown template {template!r}")
        release = _int(errors, f"{path}.release", raw.get("release", 0),
                       maximum=LIMITS["release"])
        due = raw.get("due")
        if due is not None:
            due = _int(errors, f"{path}.due", due, maximum=LIMITS["due"])
        weight = _int(errors, f"{path}.weight", raw.get("weight", 1), maximum=LIMITS["weight"])
        if "id" in raw and "count" in raw:
            errors.add(path, "give either 'id' (one job) or 'count' (identical jobs), not both")
        if "id" in raw:
            ids = [_str(errors, f"{path}.id", raw["id"])]
        else:
            count = _int(errors, f"{path}.count", raw.get("count", 1), minimum=1,
                         maximum=LIMITS["count"])
            # Several count entries of one template continue the numbering instead of clashing.
            first = next_copy.get(template, 0)
            next_copy[template] = first + max(count, 0)
            ids = [f"{template}#{k}" for k in range(first, first + max(count, 0))]
        for job_id in ids:
            jobs.append(Job(job_id, template, release, due, weight))
    seen_jobs: set[str] = set()
    for job in jobs:
        if job.id in seen_jobs:
            errors.add("jobs", f"duplicate job id {job.id!r}")
        seen_jobs.add(job.id)

    errors.raise_if_any()
    problem = Problem(name, tuple(machines), tuple(templates), tuple(jobs), objective, unit)
    _check_magnitudes(problem)
    return problem


def _check_magnitudes(problem: Problem) -> None:
    """The models multiply the horizon by machine capacity (redundant load bounds) and by job
    weights (weighted tardiness); CP-SAT refuses a model whose sums may leave 64 bits. Each
    field has its own limit; this is the limit on their products."""
    horizon = problem.horizon
    capacity = sum(m.capacity for m in problem.machines)
    weight = sum(j.weight for j in problem.jobs if j.due is not None)
    problems = [f"{what}: the time horizon ({horizon}: releases plus all durations and lags) "
                f"x {name} ({factor}) = {horizon * factor:.3g} exceeds {MAX_PRODUCT:.3g}, the "
                "range the models' 64-bit sums hold; use a coarser time unit"
                for what, name, factor in (("machines", "total capacity", capacity),
                                           ("jobs", "total weight of jobs with a due date",
                                            weight))
                if horizon * factor > MAX_PRODUCT]
    if problems:
        raise InputError(problems)


def problem_to_dict(problem: Problem) -> dict[str, Any]:
    """The `fresh-solver/problem-v1` document, one entry per job (round-trips exactly)."""
    def job_dict(job: Job) -> dict[str, Any]:
        out: dict[str, Any] = {"id": job.id, "template": job.template, "release": job.release}
        if job.due is not None:
            out["due"] = job.due
        if job.weight != 1:
            out["weight"] = job.weight
        return out

    return {
        "format": FORMAT,
        "name": problem.name,
        "time_unit_minutes": problem.time_unit_minutes,
        "machines": [{"id": m.id, "capacity": m.capacity} for m in problem.machines],
        "templates": [
            {
                "id": t.id,
                "tasks": [
                    {"id": k.id, "modes": [{"machine": m.machine, "duration": m.duration}
                                           for m in k.modes]}
                    for k in t.tasks
                ],
                "precedences": [
                    {"before": p.before, "after": p.after, "min_lag": p.min_lag}
                    for p in t.precedences
                ],
            }
            for t in problem.templates
        ],
        "jobs": [job_dict(j) for j in problem.jobs],
        "objective": problem.objective,
    }
