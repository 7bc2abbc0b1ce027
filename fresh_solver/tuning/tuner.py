"""Bayesian optimisation of a solver configuration, one MLflow run per trial.

The loop a person runs with `fresh-solver tune`: open (or resume) the session, score the
CP-SAT defaults as the reference, then rounds of ask → evaluate → tell → log until the trial
budget is spent, and a final race. The same steps, one Airflow task each, make the retune DAG
(``fresh_solver.lifecycle.retune``); both go through the pure ask/tell core
(``tuning.session``) and its MLflow record (``tuning.record``), so they ask the same points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fresh_solver.tuning.record import open_session, start_reference
from fresh_solver.tuning.session import ESTIMATORS, TuningSpec

__all__ = ["ESTIMATORS", "TuningSpec", "tune"]


def tune(spec: TuningSpec, resume_run_id: str | None = None,
         progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Run (or resume) a whole session; ``progress(done, total, best_score)`` after each
    round. Returns the session's summary (the `tune --json` object)."""
    session, record = open_session(spec, resume_run_id)
    start_reference(session, record)
    while len(session.searched) < spec.trials:
        n = min(spec.batch, spec.trials - len(session.searched))
        points = session.ask(n)
        evaluations = [session.evaluate_point(p) for p in points]
        for trial in session.tell(points, evaluations):
            record.log_trial(trial, session.space)
        if progress:
            progress(len(session.searched), spec.trials, session.best.evaluation.score)
    winner, race = session.race()
    return record.finish(session, winner, race)
