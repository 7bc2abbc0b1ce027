"""Seeded synthetic problems: identical-job families and mixes, at three scales.

Scales follow the source document's table, counted in tasks over the whole problem: small
(5-10), medium (20-50), large (100+); xlarge (200-300) is where the core benchmarks probe the
template model's primal strength. The same (kind, scale, seed) always gives the same problem.
"""

from __future__ import annotations

import random
from typing import Any

from fresh_solver.model.problem import FORMAT, Problem, problem_from_dict

SCALES = {"small": (5, 10), "medium": (20, 50), "large": (100, 160), "xlarge": (200, 300)}
KINDS = ("family", "mix")


def _template(rng: random.Random, template_id: str, machines: list[str], n_tasks: int,
              flexibility: float) -> dict[str, Any]:
    """A chain of tasks; each has a preferred machine and, with some chance, alternatives that
    are a little slower (as real alternative machines tend to be)."""
    tasks = []
    for k in range(n_tasks):
        base = rng.randint(2, 12)
        n_modes = 1 + sum(rng.random() < flexibility for _ in range(2))
        chosen = rng.sample(machines, min(n_modes, len(machines)))
        modes = [{"machine": chosen[0], "duration": base}]
        modes += [{"machine": m, "duration": base + rng.randint(0, max(1, base // 3))}
                  for m in chosen[1:]]
        tasks.append({"id": f"t{k}", "modes": modes})
    precedences = [{"before": f"t{k}", "after": f"t{k + 1}",
                    "min_lag": rng.choice([0, 0, 0, 1, 2])} for k in range(n_tasks - 1)]
    return {"id": template_id, "tasks": tasks, "precedences": precedences}


def _jobs_in_scale(rng: random.Random, scale: str, n_tasks: int) -> int:
    """Round a drawn task budget to whole jobs, then into the scale's range (at least 2)."""
    low, high = SCALES[scale]
    n_jobs = rng.randint(low, high) // n_tasks
    return min(max(n_jobs, -(-low // n_tasks), 2), max(high // n_tasks, 2))


def generate_family(scale: str, seed: int, instance_seed: int | None = None,
                    template_id: str = "part") -> Problem:
    """One template, N identical jobs released together: the template model's home ground.

    ``instance_seed`` keeps the template (and machines) of ``seed`` and draws another job
    count in the scale, released in one to three waves: the instances a template is tuned on,
    or held out from tuning. ``template_id`` only names the template (and its jobs).
    """
    rng = random.Random(f"family-{scale}-{seed}")
    n_tasks = rng.randint(2, 5)
    n_jobs = _jobs_in_scale(rng, scale, n_tasks)
    n_machines = rng.randint(2, min(5, n_tasks + 2))
    machines = [f"M{i}" for i in range(n_machines)]
    template = _template(rng, template_id, machines, n_tasks, flexibility=0.3)
    name = f"family-{scale}-{seed}"
    jobs = [{"template": template_id, "count": n_jobs}]
    if instance_seed is not None:
        irng = random.Random(f"{name}-instance-{instance_seed}")
        n_jobs = _jobs_in_scale(irng, scale, n_tasks)
        waves = min(n_jobs, irng.randint(1, 3))
        cuts = sorted(irng.sample(range(1, n_jobs), waves - 1))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n_jobs])]
        releases = [0, *sorted(irng.randint(1, 20) for _ in range(waves - 1))]
        jobs = [{"template": template_id, "count": c, "release": r}
                for c, r in zip(sizes, releases)]
        name += f"-i{instance_seed}"
    return problem_from_dict({
        "format": FORMAT,
        "name": name,
        "machines": [{"id": m} for m in machines],
        "templates": [template],
        "jobs": jobs,
        "objective": "makespan",
    })


def generate_identical(n_jobs: int, n_tasks: int, n_machines: int, seed: int,
                       flexibility: float = 0.5, template_id: str = "part") -> Problem:
    """N identical jobs of one chain template on a shape given outright: the families
    :func:`generate_family` does not draw (more tasks per job, fewer jobs, more machine
    alternatives), such as the one on which CP-SAT proved a wrong optimum
    (``fresh_solver/params/unsound_cases/``)."""
    rng = random.Random(f"identical-{n_jobs}x{n_tasks}-m{n_machines}-{seed}")
    machines = [f"M{i}" for i in range(n_machines)]
    return problem_from_dict({
        "format": FORMAT,
        "name": f"identical-{n_jobs}x{n_tasks}-m{n_machines}-s{seed}",
        "machines": [{"id": m} for m in machines],
        "templates": [_template(rng, template_id, machines, n_tasks, flexibility)],
        "jobs": [{"template": template_id, "count": n_jobs}],
        "objective": "makespan",
    })


def generate_mix(scale: str, seed: int, objective: str = "makespan") -> Problem:
    """Several templates with counts, staggered releases and due dates, an oven-like machine
    with capacity 2."""
    rng = random.Random(f"mix-{scale}-{seed}-{objective}")
    low, high = SCALES[scale]
    budget = rng.randint(low, high)
    n_machines = rng.randint(3, 6)
    machines = [{"id": f"M{i}"} for i in range(n_machines - 1)] + [{"id": "OVEN", "capacity": 2}]
    names = [m["id"] for m in machines]
    n_templates = rng.randint(2, 3) if budget >= 8 else 1
    templates = [_template(rng, f"T{i}", names, rng.randint(2, 4), flexibility=0.3)
                 for i in range(n_templates)]
    counts = [max(1, budget // (n_templates * len(t["tasks"]))) for t in templates]

    def total() -> int:
        return sum(c * len(t["tasks"]) for c, t in zip(counts, templates))

    while total() > high and len(templates) > 1:  # one job each is already too much
        templates.pop()
        counts.pop()
    while total() < low:  # rounding down to whole jobs left the budget short
        counts[rng.randrange(len(counts))] += 1
    jobs = []
    for i, (template, share) in enumerate(zip(templates, counts)):
        release = 0
        while share > 0:
            count = min(share, rng.randint(1, 4))
            work = sum(t["modes"][0]["duration"] for t in template["tasks"])
            jobs.append({"template": template["id"], "count": count, "release": release,
                         "due": release + work * (1 + count), "weight": 1 + i})
            share -= count
            release += rng.randint(0, 10)
    return problem_from_dict({
        "format": FORMAT,
        "name": f"mix-{scale}-{seed}" + ("" if objective == "makespan" else f"-{objective}"),
        "machines": machines,
        "templates": templates,
        "jobs": jobs,
        "objective": objective,
    })


def generate(kind: str, scale: str, seed: int, objective: str = "makespan") -> Problem:
    if kind == "family":
        return generate_family(scale, seed)
    return generate_mix(scale, seed, objective)
