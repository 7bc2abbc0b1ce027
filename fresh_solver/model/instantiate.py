"""N jobs of one template: the instances a template benchmark scales over.

The source document's ``TemplateBenchmark(instance_counts=[1, 3, 5, 10])`` means "this template
with 1, 3, 5, 10 jobs". :func:`instantiate_template` builds such a problem from a problem file
that defines the template.

The rule for releases, due dates and weights: the file's jobs of that template, in file order
(an entry with ``count: N`` counts as N jobs), give one (release, due, weight) profile each; job
``k`` of the new problem takes profile ``k mod P``. So N equal to the file's own job count gives
the file's jobs again, a smaller N takes the first N of them, a larger N cycles through them. A
template the file declares but no job uses gives release 0, no due date, weight 1.

The new problem keeps the file's objective and time unit, and only the machines the template
can run on (with their capacities): the others would carry no task.
"""

from __future__ import annotations

from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.model.problem import FORMAT, LIMITS, Problem, problem_from_dict


def instantiate_template(problem: Problem, template_id: str, n_jobs: int) -> Problem:
    """A problem of ``n_jobs`` jobs of ``template_id`` as ``problem`` defines it (module
    docstring: how releases, due dates and weights are chosen). Refuses an unknown template
    or a job count outside 1..LIMITS["count"] with an :class:`InputError`."""
    template = problem.template_by_id.get(template_id)
    if template is None:
        known = ", ".join(sorted(problem.template_by_id)) or "none"
        raise InputError(f"{problem.name}: no template {template_id!r} (it has: {known})")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or not (
            1 <= n_jobs <= LIMITS["count"]):
        raise InputError(f"job count must be an integer in 1..{LIMITS['count']}, "
                         f"got {n_jobs!r}")
    profiles = [(j.release, j.due, j.weight) for j in problem.jobs if j.template == template_id]
    profiles = profiles or [(0, None, 1)]
    used = {m.machine for task in template.tasks for m in task.modes}
    jobs: list[dict[str, Any]] = []
    for k in range(n_jobs):
        release, due, weight = profiles[k % len(profiles)]
        job: dict[str, Any] = {"id": f"{template_id}#{k}", "template": template_id,
                               "release": release, "weight": weight}
        if due is not None:
            job["due"] = due
        jobs.append(job)
    return problem_from_dict({
        "format": FORMAT,
        "name": f"{problem.name}-{template_id}-n{n_jobs}",
        "time_unit_minutes": problem.time_unit_minutes,
        "machines": [{"id": m.id, "capacity": m.capacity} for m in problem.machines
                     if m.id in used],
        "templates": [{
            "id": template.id,
            "tasks": [{"id": t.id, "modes": [{"machine": m.machine, "duration": m.duration}
                                             for m in t.modes]} for t in template.tasks],
            "precedences": [{"before": p.before, "after": p.after, "min_lag": p.min_lag}
                            for p in template.precedences],
        }],
        "jobs": jobs,
        "objective": problem.objective,
    })
