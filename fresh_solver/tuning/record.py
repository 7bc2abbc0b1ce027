"""A tuning session's MLflow record, beside the pure ask/tell core.

``fresh-solver/tuning/<template_id>`` holds one parent run per session (the spec as params,
the instance-set hash, the machine fingerprint) and one nested run per trial (its point,
configuration, score, per-instance results and the fingerprint of the machine that measured
it). The record is the session's only state:
:func:`load_session` rebuilds the session from it, so a resumed CLI session and every Airflow
task see the same trials. Trial runs are keyed by their index: :func:`log_trial` never
writes a second finished run for an index, and a retry (on this worker or another) completes
the run a killed attempt left unfinished instead of adding one, so every point keeps one run.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fresh_solver import tracking
from fresh_solver.errors import InputError
from fresh_solver.fingerprint import fingerprint_id, machine_fingerprint
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.space import SearchSpace
from fresh_solver.tracking import names
from fresh_solver.tuning.scoring import Evaluation
from fresh_solver.tuning.session import Trial, TuningSession, TuningSpec

# What decides the scores must match when a session is resumed; the trial budget may grow.
RESUME_KEYS = ("template_id", "metric", "trial_time_limit_s", "seeds", "instance_set",
               "estimator", "tuner_seed", "space", "cap_factor")


def _now_ms() -> int:
    return int(time.time() * 1000)


def log_json(client, run_id: str, name: str, data: Any) -> None:
    """Write ``data`` as a JSON artifact of the run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(data, indent=1, default=str))
        client.log_artifact(run_id, str(path))


def read_json(client, run_id: str, name: str) -> Any:
    """A JSON artifact of the run."""
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(run_id, name, tmp)).read_text())


def read_run_json(client, run, name: str) -> Any:
    """A JSON artifact of ``run`` (a run a search returned), fetched from the run's artifact
    location directly. :func:`read_json` goes by run id, and MLflow then looks the run up
    again before the download: against a tracking server about five requests per file instead
    of two, paid for every trial each time a task rebuilds a session."""
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory() as tmp:
        path = download_artifacts(artifact_uri=f"{run.info.artifact_uri}/{name}", dst_path=tmp,
                                  tracking_uri=client.tracking_uri)
        return json.loads(Path(path).read_text())


def spec_params(spec: TuningSpec, space: SearchSpace, instance_hash: str) -> dict[str, str]:
    """The spec as the parent run's params (immutable in MLflow: the session's identity)."""
    return {"template_id": spec.template_id, "metric": spec.metric, "trials": str(spec.trials),
            "trial_time_limit_s": str(spec.trial_time_limit), "seeds": str(spec.seeds),
            "batch": str(spec.batch), "estimator": spec.estimator,
            "tuner_seed": str(spec.tuner_seed), "cap_factor": str(spec.cap_factor),
            "race": str(spec.race), "race_seeds": str(spec.race_seeds),
            "race_rounds": str(spec.race_rounds),
            "min_gain": str(spec.min_gain),
            "instance_set": instance_hash, "instances": ",".join(sorted(
                Path(p).name for p in spec.instance_paths))[:6000],
            "space": space.source, "space_dimensions": str(len(space.dimensions))}


@dataclass
class SessionRecord:
    """Where one session lives: the parent run of its trials."""

    client: Any
    experiment_id: str
    run_id: str

    def trial_runs(self) -> dict[int, Any]:
        """Finished (or failed) trial runs by index; an unfinished one is a killed attempt."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=names.runs_where({names.PARENT_RUN: self.run_id}),
            max_results=10000)
        return {int(r.data.tags[names.TRIAL]): r for r in runs
                if r.info.status in ("FINISHED", "FAILED") and names.TRIAL in r.data.tags}

    def fingerprints(self) -> dict[str, list[int]]:
        """The trials' measuring machines: fingerprint id -> trial indices (trials logged
        before fingerprints were recorded are left out). More than one id means the session's
        scores compare times taken on different machines."""
        machines: dict[str, list[int]] = {}
        for index, run in sorted(self.trial_runs().items()):
            if names.FINGERPRINT in run.data.tags:
                machines.setdefault(run.data.tags[names.FINGERPRINT], []).append(index)
        return machines

    def log_trial(self, trial: Trial, space: SearchSpace, fingerprint: str | None = None) -> str:
        """The trial's nested run, tagged with the measuring machine's fingerprint (this
        machine's unless ``fingerprint`` names the one the trial ran on); an already finished
        run for its index is returned as it is. A run that a killed
        attempt left unfinished (RUNNING, or KILLED by an earlier version of this code) is
        completed with this attempt's results rather than joined by a second run: a point
        keeps one run, whichever worker retried it."""
        from mlflow.entities import Metric, Param, RunTag

        earlier = self.client.search_runs(
            [self.experiment_id],
            filter_string=names.runs_where({names.PARENT_RUN: self.run_id,
                                            names.TRIAL: trial.index}))
        for run in earlier:
            if run.info.status in ("FINISHED", "FAILED"):
                return run.info.run_id
        evaluation = trial.evaluation
        tags = {names.PARENT_RUN: self.run_id, names.TRIAL: str(trial.index),
                names.FINGERPRINT: fingerprint or fingerprint_id(),
                names.ROLE: "reference" if trial.point is None else "trial",
                names.POINT: json.dumps(trial.point),
                names.CONFIG_HASH: trial.config.hash if trial.config else "invalid",
                names.STATUS: "failed" if evaluation.failed else "ok",
                "mlflow.runName": f"trial-{trial.index:03d}" if trial.point is not None
                else "reference-defaults"}
        if evaluation.failed:
            tags[names.ERROR] = evaluation.failed[:4000]
        if evaluation.unsound:
            tags[names.UNSOUND] = evaluation.failed[:4000]
        if earlier:  # the killed attempt's run (params are the point's: the same values)
            rid = earlier[0].info.run_id
            self.client.update_run(rid, status="RUNNING")
            self.client.log_batch(rid, tags=[RunTag(k, v) for k, v in tags.items()])
            if names.ERROR in earlier[0].data.tags and not evaluation.failed:
                self.client.delete_tag(rid, names.ERROR)
        else:
            rid = self.client.create_run(self.experiment_id, tags=tags).info.run_id
        params = trial.params or {d.key: v for d, v in zip(space.dimensions, trial.point)}
        metrics = {"score": evaluation.score, "capped_runs": evaluation.capped,
                   "failed": float(bool(evaluation.failed))}
        self.client.log_batch(
            rid, metrics=[Metric(k, float(v), _now_ms(), 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag(names.CONFIG,
                         trial.config.canonical_json() if trial.config else "null")])
        log_json(self.client, rid, "results.json", evaluation.to_dict())
        self.client.set_terminated(rid, "FAILED" if evaluation.failed else "FINISHED")
        return rid

    def tag_unsound(self, unsound: dict[int, str]) -> None:
        """Tag every unsound trial's run with its reason, including trials whose proofs a
        later trial's schedule refuted after they were logged."""
        for index, run in self.trial_runs().items():
            if index in unsound and run.data.tags.get(names.UNSOUND) != unsound[index][:4000]:
                self.client.set_tag(run.info.run_id, names.UNSOUND, unsound[index][:4000])

    def load_trials(self) -> list[Trial]:
        """Every finished trial, in index order (the order they were told)."""
        trials = []
        for index, run in sorted(self.trial_runs().items()):
            evaluation = Evaluation.from_dict(read_run_json(self.client, run, "results.json"))
            stored = json.loads(run.data.tags[names.CONFIG])
            trials.append(Trial(index, json.loads(run.data.tags[names.POINT]),
                                None if stored is None else SolverConfig.from_dict(stored),
                                evaluation))
        return trials

    def finish(self, session: TuningSession, winner: Trial, race: dict[str, Any]) -> dict:
        """The parent's artifacts, metrics and tags; the session's summary (`tune --json`)."""
        import pandas as pd

        client, run_id = self.client, self.run_id
        if race:
            log_json(client, run_id, "race.json", race)
        unsound = session.unsound_trials
        self.tag_unsound(unsound)
        rows = [{"trial": t.index, "role": "reference" if t.point is None else "trial",
                 "score": t.evaluation.score, "capped_runs": t.evaluation.capped,
                 "failed": t.evaluation.failed or "", "unsound": unsound.get(t.index, ""),
                 "config_hash": t.config.hash if t.config else "invalid", **t.params}
                for t in session.trials]
        with tempfile.TemporaryDirectory() as tmp:
            pd.DataFrame(rows).to_csv(Path(tmp) / "trials.csv", index=False)
            client.log_artifact(run_id, str(Path(tmp) / "trials.csv"))
            if session.searched:
                _convergence_plot(session.optimizer(), Path(tmp) / "convergence.png")
                client.log_artifact(run_id, str(Path(tmp) / "convergence.png"))
        log_json(client, run_id, "parameters.json", winner.config.to_dict())
        log_json(client, run_id, "incumbent_results.json", winner.evaluation.to_dict())
        for key, value in (("best_score", winner.evaluation.score),
                           ("default_score", session.reference.evaluation.score),
                           ("trials", len(session.searched)),
                           ("unsound_trials", len(unsound))):
            client.log_metric(run_id, key, float(value))
        client.set_tag(run_id, names.BEST_CONFIG_HASH, winner.config.hash)
        client.set_tag(run_id, names.BEST_TRIAL, str(winner.index))
        client.set_terminated(run_id, "FINISHED")
        return {"run_id": run_id, "experiment": tracking.tuning_experiment(
                    session.spec.template_id),
                "best_params": winner.config.to_dict(), "best_score": winner.evaluation.score,
                "default_score": session.reference.evaluation.score,
                "trials": len(session.searched), "best_trial": winner.index,
                "search_best_trial": session.best.index, "race": race,
                "unsound_trials": len(unsound),
                "unsound": {str(i): why for i, why in sorted(unsound.items())},
                "tuned": winner.index != session.reference.index,
                "best_config_hash": winner.config.hash}


def _convergence_plot(optimizer, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skopt.plots import plot_convergence

    ax = plot_convergence(optimizer.get_result())
    ax.set_ylabel("log of the score (lower is better)")
    ax.figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(ax.figure)


def open_session(spec: TuningSpec, resume_run_id: str | None = None,
                 session_key: str | None = None,
                 reopen: bool = True) -> tuple[TuningSession, SessionRecord]:
    """A session and its record: new, resumed from ``resume_run_id``, or — with a
    ``session_key`` (e.g. an Airflow run id) — the session already made under that key, so
    a retried task continues it instead of starting a second one. Trials are loaded. A
    resumed session is marked RUNNING again only with ``reopen`` (the CLI's ``--resume``, which
    may add trials); the DAG's tasks read and append without touching its status."""
    session = TuningSession.from_spec(spec)
    client = tracking.client()
    experiment_id = tracking.experiment_id(client, tracking.tuning_experiment(spec.template_id))
    params = spec_params(spec, session.space, session.instance_hash)
    if session_key and not resume_run_id:
        found = client.search_runs([experiment_id],
                                   filter_string=names.runs_where({names.SESSION_KEY: session_key}),
                                   max_results=1)
        resume_run_id = found[0].info.run_id if found else None
    if resume_run_id:
        run = tracking.get_run(client, resume_run_id)
        logged = run.data.params
        mismatched = [f"{k}: the run has {logged.get(k)!r}, this call {params[k]!r}"
                      for k in RESUME_KEYS if logged.get(k) != params[k]]
        if mismatched:
            raise InputError([f"--resume {resume_run_id}: {m}" for m in mismatched])
        record = SessionRecord(client, experiment_id, resume_run_id)
        session.trials = record.load_trials()
        if session.trials and session.trials[0].index != 0:
            raise InputError(f"--resume {resume_run_id}: the session has no reference trial; "
                             "start a new session")
        if reopen and run.info.status != "RUNNING":
            client.update_run(resume_run_id, status="RUNNING")
        return session, record

    from mlflow.entities import Param

    tags = {"mlflow.runName": f"tune-{spec.template_id}", names.KIND: names.TUNING_SESSION,
            **{f"machine.{k}": v for k, v in machine_fingerprint().items()}}
    if session_key:
        tags[names.SESSION_KEY] = session_key
    run = client.create_run(experiment_id, tags=tags)
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    log_json(client, run.info.run_id, "search_space.json", session.space.as_dict())
    return session, SessionRecord(client, experiment_id, run.info.run_id)


def start_reference(session: TuningSession, record: SessionRecord) -> None:
    """Score and log the CP-SAT defaults first (unless the session already has them): they set
    every pair's target. A failed reference fails the session: nothing to pair trials with."""
    if not session.trials:
        record.log_trial(session.tell_reference(session.score_reference()), session.space)
    failed = session.reference.evaluation.failed
    if failed:
        record.client.set_terminated(record.run_id, "FAILED")
        raise RuntimeError(f"the reference run (CP-SAT defaults) failed: {failed}")
