"""The retune DAG's settings: one table that the DAG's Airflow Params and the lifecycle's own
check both read, so the UI form, a REST trigger and `airflow dags test` accept the same values.

Light on purpose (no solver, MLflow or Airflow import): the DAG file imports it at parse time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.inputs import read_toml

EVERY_TEMPLATE = "*"

# name -> (default, JSON-schema fields, description)
# A text setting that may be left empty. Airflow's trigger form marks every Param whose type
# does not allow null as required, keeps its Trigger button disabled while one is empty, and
# sends an emptied text field as null: so null is allowed, and read as "" (resolve_table).
OPTIONAL_TEXT = {"type": ["string", "null"]}

RETUNE_SETTINGS: dict[str, tuple[Any, dict[str, Any], str]] = {
    "template_id": (EVERY_TEMPLATE, {"type": "string", "pattern": r"^([A-Za-z0-9_.\-]+|\*)$"},
                    "Template to retune (registered model fresh-solver-<template_id>); '*': "
                    "one run for each template listed in retune_templates.toml."),
    "instances_folder": ("", OPTIONAL_TEXT,
                         "Folder of problem files containing the template; empty: generate "
                         "instances with the generator_* settings."),
    "held_out_fraction": (0.34, {"type": "number", "minimum": 0.05, "maximum": 0.9},
                          "Share of the folder's files held out for validation (the files "
                          "whose SHA-256 of the file name sorts first)."),
    "generator_scale": ("medium", {"type": "string", "enum": ["small", "medium", "large"]},
                        "Generated family scale."),
    "generator_seed": (10, {"type": "integer", "minimum": 0},
                       "Generated family (template) seed."),
    "train_instances": (6, {"type": "integer", "minimum": 1, "maximum": 50},
                        "Generated training instances."),
    "held_out_instances": (6, {"type": "integer", "minimum": 1, "maximum": 50},
                           "Generated held-out instances (instance seeds from 1000)."),
    "trials": (20, {"type": "integer", "minimum": 1, "maximum": 500},
               "Trials besides the reference (CP-SAT defaults)."),
    "batch_size": (4, {"type": "integer", "minimum": 1, "maximum": 64},
                   "Points asked per round; one mapped trial task each, or several to a "
                   "task where a trial solves for under 2 s."),
    "trial_time_limit": (3.0, {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                         "Seconds per solve in a trial."),
    "seeds": (1, {"type": "integer", "minimum": 1, "maximum": 20},
              "Solver seeds per training instance."),
    "metric": ("auto", {"type": "string", "enum": [
        "auto", "time_to_target", "time_to_optimum", "objective_at_limit", "gap_integral"]},
        "Trial score (validation judges by the matching one); auto: time to target when the "
        "CP-SAT defaults prove every training instance within trial_time_limit, else the "
        "primal gap integral."),
    "space": ("", OPTIONAL_TEXT,
              "Search space: a TOML file, or a shipped space by name (default, demo); "
              "empty: default."),
    "estimator": ("GP", {"type": "string", "enum": ["GP", "RF", "ET", "random"]},
                  "Surrogate model (random: random search)."),
    "tuner_seed": (0, {"type": "integer", "minimum": 0}, "Optimiser seed."),
    "cap_factor": (2.0, {"type": "number", "anyOf": [{"enum": [0]}, {"minimum": 1}]},
                   "Adaptive capping factor; 0 turns capping off."),
    "race": (2, {"type": "integer", "minimum": 0, "maximum": 10},
             "Best trials re-run against the defaults on fresh seeds (0: off)."),
    "race_seeds": (2, {"type": "integer", "minimum": 1, "maximum": 20},
                   "Fresh seeds of the race."),
    "race_rounds": (1, {"type": "integer", "minimum": 1, "maximum": 10},
                    "Blocks of race_seeds fresh seeds an undecided race may take (a "
                    "contender ahead of the defaults, not yet significant)."),
    "min_gain": (1.1, {"type": "number", "exclusiveMinimum": 0},
                 "Least confirmed race gain over the defaults to keep a tuned set."),
    "validation_seeds": (3, {"type": "integer", "minimum": 1, "maximum": 20},
                         "Solver seeds per held-out instance."),
    "validation_time_limit": (3.0, {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                              "Seconds per validation solve."),
    "min_speedup": (1.2, {"type": "number", "exclusiveMinimum": 0},
                    "Pass rule: geometric-mean speedup vs the defaults."),
    "max_p_value": (0.05, {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                    "Pass rule: one-sided Wilcoxon p vs the defaults."),
    "min_speedup_vs_production": (0.9, {"type": "number", "exclusiveMinimum": 0},
                                  "Pass rule: least speedup vs the current Production set."),
    "quality_tolerance": (0.0, {"type": "number", "minimum": 0, "maximum": 1},
                          "Pass rule: relative objective loss allowed."),
}


# A scheduled run that starts later than this after its time is one Airflow made up for a
# time it missed: unpausing the DAG (catchup off) at once starts a run for the last scheduled
# time before now, up to a week ago, which the user did not ask for.
MISSED_RUN_GRACE = timedelta(hours=1)


def missed_run(run_type: str, scheduled_at: datetime | None, now: datetime) -> str | None:
    """Why a run is a missed scheduled one that should retune nothing (None: run it). A
    scheduler that was down for less than :data:`MISSED_RUN_GRACE` still runs the week's."""
    if run_type != "scheduled" or scheduled_at is None or now - scheduled_at <= MISSED_RUN_GRACE:
        return None
    late = now - scheduled_at
    return (f"the scheduled run for {scheduled_at:%Y-%m-%d %H:%M} UTC starts {late.days} d "
            f"{late.seconds // 3600} h late (the DAG was paused or the scheduler down then): "
            "it retunes nothing; the next scheduled run will, or trigger one now")


def max_rounds() -> int:
    """Rounds the retune DAG unrolls (mapped trials → tell, which asks the next round's
    points); a run needs ceil(trials / batch_size) of them. Read at DAG parse time."""
    return int(os.environ.get("FRESH_SOLVER_RETUNE_ROUNDS", "6"))


Table = dict[str, tuple[Any, dict[str, Any], str]]  # name -> (default, JSON schema, help)


def table_schema(table: Table) -> dict[str, Any]:
    """A settings table as one JSON schema (what Airflow checks its Params against, too)."""
    return {"type": "object", "additionalProperties": False,
            "properties": {name: spec for name, (_, spec, _) in table.items()}}


def resolve_table(table: Table, conf: dict[str, Any] | None, pattern_meaning: str
                  ) -> dict[str, Any]:
    """Defaults of ``table`` overlaid with ``conf``, checked against it; every problem named
    (a value that fails a ``pattern`` is said to be no ``pattern_meaning``)."""
    from jsonschema import Draft202012Validator

    settings = {name: default for name, (default, _, _) in table.items()}
    settings |= dict(conf or {})
    for name, (_, spec, _) in table.items():
        if spec == OPTIONAL_TEXT and settings.get(name) is None:
            settings[name] = ""
    problems = [f"params{''.join(f'.{p}' for p in error.absolute_path)}: "
                + (f"{error.instance!r} is not {pattern_meaning}"
                   if error.validator == "pattern" else error.message)
                for error in Draft202012Validator(table_schema(table)).iter_errors(settings)]
    if problems:
        raise InputError(sorted(problems))
    return settings


def schema() -> dict[str, Any]:
    """The retune settings as one JSON schema."""
    return table_schema(RETUNE_SETTINGS)


def resolve(conf: dict[str, Any] | None) -> dict[str, Any]:
    """The retune settings: defaults overlaid with ``conf``, checked; every problem named."""
    return resolve_table(RETUNE_SETTINGS, conf, "a name of letters, digits, '_', '.' and '-'")


def scheduled_confs(path: str | Path) -> list[dict[str, Any]]:
    """The runs a scheduled retune starts: one conf per ``[[retune]]`` table of the TOML file
    (each a ``template_id`` and the settings it overrides), every one checked."""
    entries = read_toml(path).get("retune", [])
    problems = []
    for i, entry in enumerate(entries):
        if entry.get("template_id", EVERY_TEMPLATE) == EVERY_TEMPLATE:
            problems.append(f"{path}: retune[{i}].template_id: name one template")
            continue
        try:
            resolve(entry)
        except InputError as exc:
            problems += [f"{path}: retune[{i}]: {p}" for p in exc.problems]
    if not entries:
        problems.append(f"{path}: no [[retune]] table: nothing to retune")
    if problems:
        raise InputError(problems)
    return entries
