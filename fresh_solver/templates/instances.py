"""Where the facade's instances come from when the source document's call names none.

The document's calls name a template id and, at most, job counts. The project's real calls need
problem files. The defaults, in this order:

1. **The template's entry in the retune templates file** (``FRESH_SOLVER_RETUNE_TEMPLATES``,
   else ``dags/retune_templates.toml`` of a source checkout): the same instances and
   validation settings the scheduled retune uses (its folder's held-out files, or its
   generated family), so the facade and the DAG judge a template alike.
2. **Otherwise a generated family** named after the template: the ``small`` scale (5-10 tasks,
   the document's smallest row) of family seed 10 (the retune DAG's default seed), with
   :data:`SMALL_VALIDATION`: 3 held-out instances x 2 solver seeds, 2 s per solve. Six pairs
   are the fewest with which a one-sided Wilcoxon test can pass (p < 0.05) with one pair
   slower; small instances keep a validation to seconds, so the document's examples are
   usable interactively. Say ``instances=`` / ``template_file=`` for real data.

Generated files are written once under ``$FRESH_SOLVER_HOME/instances/<template_id>``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from fresh_solver import tracking
from fresh_solver.errors import InputError
from fresh_solver.model import Problem, load_problem

TEMPLATES_ENV = "FRESH_SOLVER_RETUNE_TEMPLATES"
SMALL_VALIDATION = {"generator_scale": "small", "generator_seed": 10, "train_instances": 1,
                    "held_out_instances": 3, "validation_seeds": 2,
                    "validation_time_limit": 2.0}


def templates_file() -> Path | None:
    """The retune templates file the defaults read, or None when there is none."""
    named = os.environ.get(TEMPLATES_ENV)
    path = Path(named) if named else \
        Path(__file__).resolve().parents[2] / "dags" / "retune_templates.toml"
    return path if path.is_file() else None


def retune_entry(template_id: str) -> dict[str, Any] | None:
    """The template's ``[[retune]]`` table, or None."""
    from fresh_solver.lifecycle.settings import scheduled_confs

    path = templates_file()
    if path is None:
        return None
    return next((e for e in scheduled_confs(path) if e["template_id"] == template_id), None)


def settings_for(template_id: str) -> dict[str, Any]:
    """The retune settings the defaults use for ``template_id`` (module docstring)."""
    from fresh_solver.lifecycle.settings import resolve

    entry = retune_entry(template_id)
    return resolve(entry if entry is not None else {"template_id": template_id,
                                                    **SMALL_VALIDATION})


def held_out(template_id: str) -> tuple[list[str], dict[str, Any]]:
    """Held-out problem files for validating a set of ``template_id``, and the settings
    (seeds, time limit, pass rule) that go with them."""
    from fresh_solver.lifecycle.retune import generate_instances, split_folder

    settings = settings_for(template_id)
    if settings["instances_folder"]:
        _, files = split_folder(Path(settings["instances_folder"]), template_id,
                                settings["held_out_fraction"])
    else:
        _, files = generate_instances(template_id, settings)
    return files, settings


def template_source(template_id: str, template_file: str | Path | None = None) -> Problem:
    """A problem that defines ``template_id``: ``template_file``, else the first file of the
    template's retune entry, else its generated family (module docstring)."""
    from fresh_solver.model.generate import generate_family

    if template_file is not None:
        return load_problem(template_file)
    settings = settings_for(template_id)
    if settings["instances_folder"]:
        files, _ = held_out(template_id)
        return load_problem(files[0])
    return generate_family(settings["generator_scale"], settings["generator_seed"],
                           template_id=template_id)


def instantiate(template_id: str, counts: list[int] | tuple[int, ...],
                source: Problem) -> list[str]:
    """Problem files of ``template_id`` with each job count (``instantiate_template``),
    written once under the data folder; their paths."""
    from fresh_solver.model.instantiate import instantiate_template
    from fresh_solver.model.problem import problem_to_dict

    if not counts:
        raise InputError("instance_counts: give at least one job count")
    problems = [instantiate_template(source, template_id, n) for n in counts]
    body = json.dumps([problem_to_dict(p) for p in problems], sort_keys=True)
    folder = tracking.home() / "instances" / template_id / \
        f"counts-{hashlib.sha256(body.encode()).hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for problem in problems:
        path = folder / f"{problem.name}.json"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(problem_to_dict(problem), indent=1) + "\n")
            tmp.replace(path)
        paths.append(str(path))
    return paths
