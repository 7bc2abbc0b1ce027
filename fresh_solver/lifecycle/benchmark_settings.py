"""The benchmark DAG's settings: one table that the DAG's Airflow Params and the lifecycle's own
check both read, so the UI form, a REST trigger and ``airflow dags test`` accept the same values.

Light on purpose (no solver, MLflow or Airflow import): the DAG file imports it at parse time.
The default budget is modest: per template 3 held-out instances x 1 seed x 8 repetitions x 2
configurations at a 2 s cap, at most ~96 s of solving (the non-reference configuration stops
once it reaches the reference's target, so usually much less). 8 repetitions is what
``python -m benchmarks.detector_power`` recommends for the detector.
"""

from __future__ import annotations

from typing import Any

from fresh_solver.lifecycle.settings import EVERY_TEMPLATE, resolve_table, table_schema

_NAMES = r"[A-Za-z0-9_.\-]+"

# name -> (default, JSON-schema fields, description)
BENCHMARK_SETTINGS: dict[str, tuple[Any, dict[str, Any], str]] = {
    "templates": (EVERY_TEMPLATE, {"type": "string",
                                   "pattern": rf"^(\*|{_NAMES}(,{_NAMES})*)$"},
                  "Templates to benchmark, comma-separated; '*': every registered template "
                  "with a served Production version."),
    "instances": (3, {"type": "integer", "minimum": 1, "maximum": 50},
                  "Held-out instances per template benchmarked (the first of its set)."),
    "repetitions": (8, {"type": "integer", "minimum": 1, "maximum": 100},
                    "Repetitions of every (instance, seed) pair per configuration."),
    "seeds": (1, {"type": "integer", "minimum": 1, "maximum": 20},
              "Solver seeds 0..seeds-1 per instance."),
    "time_limit": (2.0, {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                   "Seconds per solve (the cap; an unreached target counts PAR2 = 2 x cap)."),
    "threshold": (1.2, {"type": "number", "minimum": 1},
                  "Least slow-down worth an alarm: the Production/defaults time ratio now over "
                  "the same ratio in the baseline run (1.2 = 20 % slower relative to the "
                  "defaults)."),
    "alpha": (0.05, {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
              "Family-wise significance (one-sided Mann-Whitney per instance, Holm across "
              "instances)."),
    "revalidation_seeds": (0, {"type": "integer", "minimum": 0, "maximum": 20},
                           "Seeds per held-out instance when re-validating; 0: as many as "
                           "the served version was validated with."),
    "revalidation_time_limit": (0.0, {"type": "number", "minimum": 0, "maximum": 3600},
                                "Seconds per re-validation solve; 0: the served version's "
                                "own validation time limit."),
}

# Used when the served version's validation run does not say (a version registered by hand).
FALLBACK_REVALIDATION_SEEDS = 3
FALLBACK_REVALIDATION_TIME_LIMIT = 3.0


def schema() -> dict[str, Any]:
    """The benchmark settings as one JSON schema."""
    return table_schema(BENCHMARK_SETTINGS)


def resolve(conf: dict[str, Any] | None) -> dict[str, Any]:
    """The benchmark settings: defaults overlaid with ``conf``, checked; every problem named."""
    return resolve_table(BENCHMARK_SETTINGS, conf, "'*' or comma-separated names of letters, "
                         "digits, '_', '.' and '-'")


def selected(settings: dict[str, Any]) -> list[str] | None:
    """The templates the settings name, or None for every one."""
    if settings["templates"] == EVERY_TEMPLATE:
        return None
    return list(dict.fromkeys(settings["templates"].split(",")))
