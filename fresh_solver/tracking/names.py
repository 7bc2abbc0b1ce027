"""The names the project writes into MLflow, and the filters that find runs by them.

One place for every tag key and run kind, so the code that writes a run and the query that
looks it up again cannot drift apart, and one rule for writing the values a filter compares with.
Tests keep the literal names: they are a contract with the MLflow UI's users.
"""

from __future__ import annotations

from fresh_solver.errors import InputError

# What a run records (the value is one of the kinds below), and what it is about.
KIND = "fresh_solver.kind"
TEMPLATE_ID = "fresh_solver.template_id"
FINGERPRINT = "fresh_solver.fingerprint"  # the machine the run measured on
CONFIG_HASH = "fresh_solver.config_hash"  # SolverConfig.hash of the set the run is about
CONFIGURATION = "fresh_solver.configuration"  # a benchmark baseline's configuration name
EVIDENCE = "fresh_solver.evidence"  # what a baseline was measured from
SOURCE_RUN = "fresh_solver.source_run"  # the benchmark run a baseline was taken from
REFERENCE = "fresh_solver.reference"  # a benchmark's reference configuration

# A tuning session (parent run) and its trials (nested runs).
SESSION_KEY = "fresh_solver.session_key"  # the Airflow run that owns the session
BEST_TRIAL = "fresh_solver.best_trial"  # set last, by the race: "0" when the defaults won
BEST_CONFIG_HASH = "fresh_solver.best_config_hash"
HELD_OUT_SET = "fresh_solver.held_out_set"
MIXED_FINGERPRINTS = "fresh_solver.mixed_fingerprints"  # trials measured on different machines
VALIDATION_RUN_ID = "fresh_solver.validation_run_id"
REGISTERED_VERSION = "fresh_solver.registered_version"
TRIAL = "fresh_solver.trial"  # the trial's index (0: the reference)
ROLE = "fresh_solver.role"  # "reference" or "trial"
POINT = "fresh_solver.point"  # the point of the space, as JSON
CONFIG = "fresh_solver.config"  # the configuration, as JSON
STATUS = "fresh_solver.status"  # "ok" or "failed"
ERROR = "fresh_solver.error"  # why a trial failed
UNSOUND = "fresh_solver.unsound"  # why a trial's configuration made CP-SAT claim a wrong optimum

# A benchmark run started by the daily DAG, and the baseline it refreshed.
AIRFLOW_RUN = "fresh_solver.airflow_run"  # the Airflow run that measured it (retries reuse it)
BENCHMARK_KEY = "fresh_solver.benchmark_key"
REGRESSION = "fresh_solver.regression"  # the regression verdict's status on a benchmark run
REGRESSION_SEVERITY = "fresh_solver.regression.severity"
BASELINE_RUN = "fresh_solver.baseline_run"  # the baseline a benchmark run was judged against

# A validation run, a registered version, a production roll-up, a re-validation.
TUNING_RUN_ID = "fresh_solver.tuning_run_id"  # the session a validation judged (its key)
# On a registered model: the alias and Production versions the last promote or reconcile saw.
OBSERVED = "fresh_solver.observed"
ROLLUP_KEY = "fresh_solver.rollup_key"
REVALIDATES = "fresh_solver.revalidates"  # the version a benchmark-triggered validation checks

# Kinds of run (the value of KIND).
TUNING_SESSION = "tuning-session"
BENCHMARK = "benchmark"
BASELINE = "baseline"
PROFILE = "profile"
PRODUCTION_SOLVE = "production_solve"

PARENT_RUN = "mlflow.parentRunId"  # MLflow's own: a nested run's parent


def literal(value: object) -> str:
    """``value`` as a string literal of an MLflow filter. MLflow's parser has no escape
    character (``'it\\'s'`` matches nothing), so a value with a single quote is written in
    double quotes; one with both kinds cannot be searched for."""
    text = str(value)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise InputError(f"{text!r}: MLflow cannot search for a value with both kinds of quote")


def runs_where(tags: dict[str, object] | None = None, params: dict[str, object] | None = None,
               *, finished: bool = False) -> str:
    """An MLflow ``filter_string``: every tag and param equal to its value, and the run
    finished when ``finished``."""
    clauses = [f"tags.`{key}` = {literal(value)}" for key, value in (tags or {}).items()]
    clauses += [f"params.`{key}` = {literal(value)}" for key, value in (params or {}).items()]
    if finished:
        clauses.append("attributes.status = 'FINISHED'")
    return " and ".join(clauses)
