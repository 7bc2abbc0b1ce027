"""Bayesian optimisation of a solver configuration, one MLflow run per trial.

The seam is scikit-optimize's ask/tell: :class:`TuningSession` asks the optimiser for a batch
of points, :func:`run_trial` scores one point (a pure function of plain values, so an Airflow
task can run it elsewhere), and the session tells the scores back. The CP-SAT defaults are
scored first as the reference; every later trial is paired with it on the same instances and
seeds. Everything is logged to ``fresh-solver/tuning/<template_id>``: a parent run per session,
a nested run per trial, so an interrupted session resumes from MLflow instead of starting over.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from fresh_solver import tracking
from fresh_solver.errors import InputError
from fresh_solver.fingerprint import machine_fingerprint
from fresh_solver.model import Problem, load_problem
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.space import SearchSpace, load_space, plain_value
from fresh_solver.performance.time_to_target import geometric_mean
from fresh_solver.tuning.scoring import (
    METRICS,
    Evaluation,
    Reference,
    evaluate,
    per_pair,
    references_from,
    worst_score,
)
from fresh_solver.validation.compare import wilcoxon_p

# "random" is random search over the same space (for comparison); GBRT is broken (DESIGN §9).
ESTIMATORS = ("GP", "RF", "ET", "random")


@dataclass(frozen=True)
class TuningSpec:
    """Everything that defines a tuning session; a resumed session must match it."""

    template_id: str
    instance_paths: tuple[str, ...]
    trials: int
    trial_time_limit: float
    seeds: int
    metric: str = "time_to_target"
    space_path: str | None = None
    batch: int = 1
    estimator: str = "GP"
    tuner_seed: int = 0
    cap_factor: float | None = 2.0
    # The final race: the best few trials and the reference again, on fresh seeds. A trial's
    # own score is one noisy draw; only a confirmed, significant gain replaces the defaults.
    race: int = 2
    race_seeds: int = 2
    min_gain: float = 1.1

    def check(self) -> None:
        problems = []
        if not self.template_id or "/" in self.template_id:
            problems.append(f"--template-id: must be a non-empty name without '/', "
                            f"got {self.template_id!r}")
        if not self.instance_paths:
            problems.append("--instances: give at least one problem file")
        if self.trials < 1:
            problems.append(f"--trials: must be >= 1, got {self.trials}")
        if not 0 < self.trial_time_limit < math.inf:
            problems.append(f"--trial-time-limit: must be a positive number of seconds, "
                            f"got {self.trial_time_limit}")
        if self.cap_factor is not None and not 1 <= self.cap_factor < math.inf:
            problems.append(f"--cap-factor: must be >= 1 (or 0 for no capping), "
                            f"got {self.cap_factor}")
        if self.seeds < 1:
            problems.append(f"--seeds: must be >= 1, got {self.seeds}")
        if self.batch < 1:
            problems.append(f"--batch: must be >= 1, got {self.batch}")
        if self.race < 0 or self.race_seeds < 1 or not 0 < self.min_gain < math.inf:
            problems.append("--race must be >= 0, --race-seeds >= 1 and --min-gain > 0")
        if self.metric not in METRICS:
            problems.append(f"--metric: must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.estimator not in ESTIMATORS:
            problems.append(f"--estimator: must be one of {', '.join(ESTIMATORS)}, "
                            f"got {self.estimator!r}")
        if problems:
            raise InputError(problems)


def load_instances(paths: tuple[str, ...]) -> tuple[dict[str, Problem], str]:
    """Problems keyed by file name, and the instance set's hash (over the files' contents)."""
    problems: dict[str, Problem] = {}
    digest = hashlib.sha256()
    for path in sorted(paths):
        problem = load_problem(path)
        key = Path(path).name
        if key in problems:
            raise InputError(f"--instances: two files are named {key!r}")
        problems[key] = problem
        digest.update(key.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return problems, digest.hexdigest()[:16]


def run_trial(config: dict[str, Any], instances: dict[str, Problem], seeds: list[int],
              metric: str, time_limit: float,
              references: dict[tuple[str, int], Reference] | None,
              incumbent: dict[tuple[str, int], float] | None,
              cap_factor: float | None) -> Evaluation:
    """Score one configuration; a crash or invalid configuration is a failed trial with the
    worst score, never an exception, so the session goes on."""
    try:
        return evaluate(SolverConfig.from_dict(config), instances, seeds, metric=metric,
                        time_limit=time_limit, references=references, incumbent=incumbent,
                        cap_factor=cap_factor)
    except Exception as exc:  # noqa: BLE001 - any trial failure is recorded, not raised
        return Evaluation(worst_score(metric, time_limit), failed=f"{type(exc).__name__}: {exc}")


def surrogate_target(score: float) -> float:
    """What the optimiser's model sees: the log of the score. Scores are geometric means (of
    run times for the time metrics, spanning orders of magnitude with a plateau of PAR2 and
    capped runs); their log is the mean of the per-run logs, the scale on which a surrogate's
    Gaussian noise fits (SMAC's log-transformed runtimes). Floored like the geometric mean."""
    return math.log(max(score, 1e-4))


@dataclass
class Trial:
    index: int
    point: list[Any] | None  # None for the reference (CP-SAT defaults)
    config: SolverConfig | None  # None when the point's configuration is invalid
    evaluation: Evaluation

    @property
    def params(self) -> dict[str, Any]:
        """The trial's configuration, flat, as MLflow params and table columns."""
        if self.config is None:
            return {}
        return ({f"cp_sat.{k}": v for k, v in self.config.cp_sat.items()}
                | {f"model.{k}": v for k, v in self.config.model.to_dict().items()})


@dataclass
class TuningSession:
    spec: TuningSpec
    space: SearchSpace
    instances: dict[str, Problem]
    instance_hash: str
    run_id: str
    experiment: str
    trials: list[Trial] = field(default_factory=list)
    references: dict[tuple[str, int], Reference] = field(default_factory=dict)
    _optimizer: Any = None
    _client: Any = None

    @cached_property
    def anchor(self) -> list[Any] | None:
        """The reference's (the CP-SAT defaults') own point of the space, if it holds one."""
        return self.space.point_of(SolverConfig())

    @cached_property
    def experiment_id(self) -> str:
        """Looked up (or created) once, not for every trial logged."""
        return tracking.experiment_id(self._client, self.experiment)

    @property
    def seeds(self) -> list[int]:
        return list(range(self.spec.seeds))

    @property
    def reference(self) -> Trial:
        return self.trials[0]

    @property
    def searched(self) -> list[Trial]:
        return [t for t in self.trials if t.point is not None]

    @property
    def best(self) -> Trial:
        """The best valid trial so far; the reference when nothing beat it."""
        return min((t for t in self.trials if t.config is not None),
                   key=lambda t: (t.evaluation.score, t.index))

    # ---- the ask/tell seam ------------------------------------------------------------------
    def ask(self, n: int) -> list[list[Any]]:
        points = self._optimizer.ask(n_points=n) if n > 1 else [self._optimizer.ask()]
        return [[plain_value(v) for v in p] for p in points]

    def tell(self, points: list[list[Any]], evaluations: list[Evaluation]) -> None:
        start = len(self.trials)
        for i, (point, evaluation) in enumerate(zip(points, evaluations)):
            trial = Trial(start + i, point, self._config_or_none(point), evaluation)
            self.trials.append(trial)
            self._log_trial(trial)
        self._optimizer.tell(points, [surrogate_target(e.score) for e in evaluations])

    def tell_reference(self) -> None:
        """Tell the optimiser the reference's score at the defaults' own point of the space
        (when the space holds it), so its model knows where the defaults stand."""
        if self.anchor is not None and not self.reference.evaluation.failed:
            self._optimizer.tell(self.anchor, surrogate_target(self.reference.evaluation.score))

    def evaluate_points(self, points: list[list[Any]]) -> list[Evaluation]:
        incumbent = per_pair(self.best.evaluation) if not self.best.evaluation.failed else None
        evaluations = []
        for point in points:
            config = self._config_or_none(point)
            if config is None:
                evaluations.append(Evaluation(
                    worst_score(self.spec.metric, self.spec.trial_time_limit),
                    failed=f"invalid configuration at {point}"))
                continue
            evaluations.append(run_trial(
                config.to_dict(), self.instances, self.seeds, self.spec.metric,
                self.spec.trial_time_limit, self.references, incumbent, self.spec.cap_factor))
        return evaluations

    def _config_or_none(self, point: list[Any]) -> SolverConfig | None:
        try:
            return self.space.config(point)
        except InputError:
            return None

    # ---- MLflow -----------------------------------------------------------------------------
    def _log_trial(self, trial: Trial) -> None:
        from mlflow.entities import Metric, Param, RunTag

        evaluation = trial.evaluation
        tags = {"mlflow.parentRunId": self.run_id, "fresh_solver.trial": str(trial.index),
                "fresh_solver.role": "reference" if trial.point is None else "trial",
                "fresh_solver.point": json.dumps(trial.point),
                "fresh_solver.config_hash": trial.config.hash if trial.config else "invalid",
                "fresh_solver.status": "failed" if evaluation.failed else "ok",
                "mlflow.runName": f"trial-{trial.index:03d}" if trial.point is not None
                else "reference-defaults"}
        if evaluation.failed:
            tags["fresh_solver.error"] = evaluation.failed[:4000]
        run = self._client.create_run(self.experiment_id, tags=tags)
        rid = run.info.run_id
        params = trial.params or {d.key: v for d, v in zip(self.space.dimensions, trial.point)}
        metrics = {"score": evaluation.score, "capped_runs": evaluation.capped,
                   "failed": float(bool(evaluation.failed))}
        self._client.log_batch(
            rid, metrics=[Metric(k, float(v), _now_ms(), 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag("fresh_solver.config",
                         trial.config.canonical_json() if trial.config else "null")])
        _log_json(self._client, rid, "results.json", evaluation.to_dict())
        self._client.set_terminated(rid, "FAILED" if evaluation.failed else "FINISHED")

    def race(self) -> tuple[Trial, dict[str, Any]]:
        """Re-run the best few trials and the reference on fresh seeds, paired; the winner is
        the fastest contender with a geometric-mean gain of at least ``min_gain`` and a
        Wilcoxon p below 0.1, else the reference (the CP-SAT defaults)."""
        spec = self.spec
        contenders = sorted((t for t in self.searched if t.config is not None
                             and not t.evaluation.failed
                             and t.evaluation.score < self.reference.evaluation.score),
                            key=lambda t: t.evaluation.score)[:spec.race]
        if not contenders:
            return self.reference, {"contenders": {}, "winner": self.reference.index}
        seeds = list(range(spec.seeds, spec.seeds + spec.race_seeds))
        reference = run_trial(SolverConfig().to_dict(), self.instances, seeds, spec.metric,
                              spec.trial_time_limit, None, None, None)
        base = per_pair(reference)
        results: dict[int, dict[str, float]] = {}
        for trial in contenders:
            evaluation = run_trial(trial.config.to_dict(), self.instances, seeds, spec.metric,
                                   spec.trial_time_limit, references_from(reference), None,
                                   None)
            if evaluation.failed or reference.failed:
                continue
            scores = per_pair(evaluation)
            keys = sorted(base)
            gain = geometric_mean([base[k] / max(scores[k], 1e-4) for k in keys])
            p_value = wilcoxon_p([max(base[k], 1e-4) for k in keys],
                                 [max(scores[k], 1e-4) for k in keys])
            results[trial.index] = {"gain": gain, "p_value": p_value}
        accepted = [(r["gain"], i) for i, r in results.items()
                    if r["gain"] >= spec.min_gain and r["p_value"] < 0.1]
        winner = self.trials[max(accepted)[1]] if accepted else self.reference
        return winner, {"contenders": results, "winner": winner.index, "seeds": seeds}

    def finish(self) -> dict[str, Any]:
        """Race the best trials, then the parent's artifacts and metrics; the session's
        summary (the `tune --json` object)."""
        import pandas as pd

        best, race = self.race() if self.spec.race else (self.best, {})
        if race:
            _log_json(self._client, self.run_id, "race.json", race)
        rows = [{"trial": t.index, "role": "reference" if t.point is None else "trial",
                 "score": t.evaluation.score, "capped_runs": t.evaluation.capped,
                 "failed": t.evaluation.failed or "",
                 "config_hash": t.config.hash if t.config else "invalid", **t.params}
                for t in self.trials]
        with tempfile.TemporaryDirectory() as tmp:
            pd.DataFrame(rows).to_csv(Path(tmp) / "trials.csv", index=False)
            self._client.log_artifact(self.run_id, str(Path(tmp) / "trials.csv"))
            if len(self.searched) >= 1:
                _convergence_plot(self._optimizer, Path(tmp) / "convergence.png")
                self._client.log_artifact(self.run_id, str(Path(tmp) / "convergence.png"))
        _log_json(self._client, self.run_id, "parameters.json", best.config.to_dict())
        _log_json(self._client, self.run_id, "incumbent_results.json", best.evaluation.to_dict())
        for key, value in (("best_score", best.evaluation.score),
                           ("default_score", self.reference.evaluation.score),
                           ("trials", len(self.searched))):
            self._client.log_metric(self.run_id, key, float(value))
        self._client.set_tag(self.run_id, "fresh_solver.best_config_hash", best.config.hash)
        self._client.set_tag(self.run_id, "fresh_solver.best_trial", str(best.index))
        self._client.set_terminated(self.run_id, "FINISHED")
        return {"run_id": self.run_id, "experiment": self.experiment,
                "best_params": best.config.to_dict(), "best_score": best.evaluation.score,
                "default_score": self.reference.evaluation.score,
                "trials": len(self.searched), "best_trial": best.index,
                "search_best_trial": self.best.index, "race": race}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_json(client, run_id: str, name: str, data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(data, indent=1, default=str))
        client.log_artifact(run_id, str(path))


def _convergence_plot(optimizer, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skopt.plots import plot_convergence

    ax = plot_convergence(optimizer.get_result())
    ax.set_ylabel("log of the score (lower is better)")
    ax.figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(ax.figure)


def _make_optimizer(space: SearchSpace, spec: TuningSpec, anchored: bool,
                    resumed_trials: int = 0):
    """skopt's Optimizer. Random search is its initial random phase that never ends (skopt's
    own "dummy" estimator fails on this scikit-learn). The reference's point, when the space
    holds it, is told on top of the random start (as gp_minimize counts its x0). A resumed
    session draws from a stream of its own (seeded by the trials already done) so it does not
    repeat their points."""
    from skopt import Optimizer

    warnings.filterwarnings("ignore", category=UserWarning, module="skopt")
    random_search = spec.estimator == "random"
    return Optimizer(space.to_skopt(), base_estimator="GP" if random_search else spec.estimator,
                     n_initial_points=10**9 if random_search else min(5, spec.trials) + anchored,
                     random_state=spec.tuner_seed + 7919 * resumed_trials)


def _spec_params(spec: TuningSpec, space: SearchSpace, instance_hash: str) -> dict[str, str]:
    return {"template_id": spec.template_id, "metric": spec.metric, "trials": str(spec.trials),
            "trial_time_limit_s": str(spec.trial_time_limit), "seeds": str(spec.seeds),
            "batch": str(spec.batch), "estimator": spec.estimator,
            "tuner_seed": str(spec.tuner_seed), "cap_factor": str(spec.cap_factor),
            "race": str(spec.race), "race_seeds": str(spec.race_seeds),
            "min_gain": str(spec.min_gain),
            "instance_set": instance_hash, "instances": ",".join(sorted(
                Path(p).name for p in spec.instance_paths))[:6000],
            "space": space.source, "space_dimensions": str(len(space.dimensions))}


def start_session(spec: TuningSpec, resume_run_id: str | None = None) -> TuningSession:
    """A new session (reference scored and logged), or one resumed from its MLflow runs."""
    spec.check()
    instances, instance_hash = load_instances(spec.instance_paths)
    space = load_space(spec.space_path)
    client = tracking.client()
    experiment = tracking.tuning_experiment(spec.template_id)
    params = _spec_params(spec, space, instance_hash)
    if resume_run_id:
        run = tracking.get_run(client, resume_run_id)
        logged = run.data.params
        # What decides the scores must match; the trial budget may grow.
        keys = ("template_id", "metric", "trial_time_limit_s", "seeds", "instance_set",
                "estimator", "tuner_seed", "space", "cap_factor")
        mismatched = [f"{k}: the run has {logged.get(k)!r}, this call {params[k]!r}"
                      for k in keys if logged.get(k) != params[k]]
        if mismatched:
            raise InputError([f"--resume {resume_run_id}: {m}" for m in mismatched])
        session = TuningSession(spec, space, instances, instance_hash, resume_run_id,
                                experiment, _client=client)
        _restore_trials(session)
        client.update_run(resume_run_id, status="RUNNING")
        return session

    exp_id = tracking.experiment_id(client, experiment)
    run = client.create_run(exp_id, tags={"mlflow.runName": f"tune-{spec.template_id}",
                                          "fresh_solver.kind": "tuning-session",
                                          **{f"machine.{k}": v for k, v in
                                             machine_fingerprint().items()}})
    from mlflow.entities import Param

    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    _log_json(client, run.info.run_id, "search_space.json", space.as_dict())
    session = TuningSession(spec, space, instances, instance_hash, run.info.run_id, experiment,
                            _client=client)
    session._optimizer = _make_optimizer(space, spec, session.anchor is not None)
    return session


def score_reference(session: TuningSession) -> None:
    """Score the CP-SAT defaults first: they set every pair's target and stay the reference."""
    reference = SolverConfig()
    evaluation = run_trial(reference.to_dict(), session.instances, session.seeds,
                           session.spec.metric, session.spec.trial_time_limit, None, None, None)
    session.references = references_from(evaluation)
    trial = Trial(0, None, reference, evaluation)
    session.trials.append(trial)
    session._log_trial(trial)
    if evaluation.failed:  # without the reference there is nothing to pair trials with
        session._client.set_terminated(session.run_id, "FAILED")
        raise RuntimeError(f"the reference run (CP-SAT defaults) failed: {evaluation.failed}")
    session.tell_reference()


def _restore_trials(session: TuningSession) -> None:
    """Tell the optimiser every finished trial of the session, in order."""
    client = session._client
    runs = client.search_runs(
        [session.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{session.run_id}'", max_results=10000)
    by_index: dict[int, Any] = {}
    for run in runs:
        if run.info.status in ("FINISHED", "FAILED") and "fresh_solver.trial" in run.data.tags:
            by_index[int(run.data.tags["fresh_solver.trial"])] = run
    if 0 not in by_index:
        raise InputError(f"--resume {session.run_id}: the session has no reference trial; "
                         "start a new session")
    points, scores = [], []
    for index in sorted(by_index):
        run = by_index[index]
        evaluation = _load_evaluation(client, run.info.run_id)
        point = json.loads(run.data.tags["fresh_solver.point"])
        stored = json.loads(run.data.tags["fresh_solver.config"])
        config = None if stored is None else SolverConfig.from_dict(stored)
        session.trials.append(Trial(len(session.trials), point, config, evaluation))
        if point is not None:
            points.append(point)
            scores.append(surrogate_target(evaluation.score))
    session.references = references_from(session.reference.evaluation)
    session._optimizer = _make_optimizer(session.space, session.spec,
                                         session.anchor is not None, len(points))
    session.tell_reference()
    if points:
        session._optimizer.tell(points, scores)


def _load_evaluation(client, run_id: str) -> Evaluation:
    from fresh_solver.tuning.scoring import RunScore

    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, "results.json", tmp)
        data = json.loads(Path(path).read_text())
    return Evaluation(data["score"], [RunScore(**r) for r in data["runs"]], data["failed"])


def tune(spec: TuningSpec, resume_run_id: str | None = None,
         progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Run (or resume) a whole session; ``progress(done, total, best_score)`` after each batch."""
    session = start_session(spec, resume_run_id)
    if not session.trials:
        score_reference(session)
    while len(session.searched) < spec.trials:
        n = min(spec.batch, spec.trials - len(session.searched))
        points = session.ask(n)
        session.tell(points, session.evaluate_points(points))
        if progress:
            progress(len(session.searched), spec.trials, session.best.evaluation.score)
    return session.finish()
