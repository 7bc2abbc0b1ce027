"""The MLflow Model Registry as the registry of blessed parameter sets (DESIGN §6).

One registered model per template, ``fresh-solver-<template_id>``; a version holds
``parameters.json`` (a :class:`SolverConfig`) and the validation tags. Promotion moves the
``Production`` stage (archiving the previous version) and the ``production`` alias together,
records ``approved_by`` and appends to the promotion history. Whether a version may be served
at all rests on evidence nobody can edit in the UI (:mod:`fresh_solver.registry.evidence`):
its validation run's params checked against its own ``parameters.json``, or a recorded
override; tags are for people.

Reviewers may also promote in the MLflow UI, by one of two paths that do not update each
other: the alias editor (default UI) or the stage dropdown (classic UI, which does not archive
the previous Production version unless asked). The project's one answer: **the version
promoted most recently, by either path, is served.** Stage transitions carry a time
(``last_updated_timestamp``); alias moves carry none, so every observation (each promote,
reconcile, production loader resolution and health round) stores what it saw and when it
first saw the current alias; an alias move not yet observed is dated "now". So a stage move
loses to an alias move only when both fall between two observations (an alias move wins a tie
with a stage transition in the same window). :meth:`ParameterRegistry.reconcile` then leaves
exactly one Production version, with the alias on it, and records what it found in the
history.

History entries are registered-model tags ``fresh_solver.history.<ms>.<id>`` holding JSON:
unique keys, never rewritten, so two processes can append at once.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.params.config import SolverConfig
from fresh_solver.registry import evidence as ev
from fresh_solver.registry.rest import client_errors
from fresh_solver.tracking import names

ALIAS = "production"
HISTORY_PREFIX = "fresh_solver.history."
UNSOUND = "unsound"  # the evidence basis of a set that holds a known-unsound combination


def model_name(template_id: str) -> str:
    return f"fresh-solver-{template_id}"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Promotion:
    """Which version is served and how we know."""

    version: str | None
    path: str  # "alias", "stage", "both", "none"
    refused: tuple[str, ...] = ()  # promoted versions that may not be served, and why


class ParameterRegistry:
    """Parameter sets as MLflow registered models, one per template (``fresh-solver-<id>``):
    registering a validated set, promoting a version with its reviewer on record, and
    resolving what serves, with the guard that refuses a version whose evidence does not
    hold."""

    def __init__(self, client=None):
        from fresh_solver import tracking

        self.client = client or tracking.client()
        # parameters.json per version, read once per decision (serving, promote)
        self._texts: dict[tuple[str, str], str] = {}

    def _transition(self, template_id: str, version: str, stage: str,
                    archive: bool = False) -> None:
        """Stages are deprecated in MLflow 3 but are the reviewers' UI: silence only that."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.client.transition_model_version_stage(
                model_name(template_id), version, stage, archive_existing_versions=archive)

    # ---- reading ----------------------------------------------------------------------------
    def templates(self) -> list[str]:
        """Template ids of every registered model of this project."""
        models = self.client.search_registered_models("name LIKE 'fresh-solver-%'")
        return sorted(m.name.removeprefix("fresh-solver-") for m in models)

    def versions(self, template_id: str) -> list:
        found = self.client.search_model_versions(f"name = '{model_name(template_id)}'")
        return sorted(found, key=lambda v: int(v.version))

    def version(self, template_id: str, version: str | int):
        try:
            return self.client.get_model_version(model_name(template_id), str(version))
        except client_errors() as exc:
            if _missing(exc):
                raise InputError(f"{model_name(template_id)} has no version {version}") \
                    from None
            raise

    def production_versions(self, template_id: str) -> list[str]:
        """The versions in stage Production (one when the registry is consistent)."""
        return [str(v.version) for v in self.versions(template_id)
                if v.current_stage == "Production"]

    def alias_version(self, template_id: str) -> str | None:
        """The version the ``production`` alias names, or None (no alias, or no model)."""
        try:
            return str(self.client.get_model_version_by_alias(model_name(template_id),
                                                              ALIAS).version)
        except client_errors() as exc:
            # With access control, asking about a model that does not exist yet is refused
            # (403) rather than not found: "none yet" only when the model really is absent.
            if _missing(exc) or (_denied(exc) and self._model(template_id) is None):
                return None
            raise

    def load_config(self, template_id: str, version: str | int) -> SolverConfig:
        """The version's parameter set, validated on the installed OR-Tools."""
        return self._config(self.version(template_id, version))

    def _config(self, mv) -> SolverConfig:
        return SolverConfig.from_dict(json.loads(self._text(mv)))

    def _text(self, mv) -> str:
        key = (mv.name, str(mv.version))
        if key not in self._texts:  # fetched once per decision (serving, promote)
            self._texts[key] = ev.download_text(self.client, mv.source)
        return self._texts[key]

    def evidence(self, template_id: str, version) -> ev.Evidence:
        """Whether ``version`` (a number or a ModelVersion) may be served, and on what
        record (see :mod:`fresh_solver.registry.evidence`)."""
        mv = version if hasattr(version, "run_id") else self.version(template_id, version)
        try:
            if (unsound := self._known_unsound(mv)) is not None:
                return ev.Evidence(False, UNSOUND, unsound)
            return ev.evidence(self.client, template_id, mv,
                               lambda: ev.content_hash(self._text(mv)))
        except json.JSONDecodeError:
            return ev.Evidence(False, "none", "its parameters.json is not JSON")
        except FileNotFoundError:
            return ev.Evidence(False, "none", "its parameters.json is gone")
        except client_errors() as exc:  # one broken version must not stop the others
            if _missing(exc):
                return ev.Evidence(False, "none", "its parameters.json is gone")
            raise

    def _known_unsound(self, mv) -> str | None:
        """Why the version's set may never be served, validated or not: it holds a
        known-unsound combination (CP-SAT proves wrong optima with it). A set that does not
        parse is judged later, when it is loaded."""
        from fresh_solver.params.unsound import unsound_match

        try:
            found = unsound_match(self._config(mv))
        except InputError:
            return None
        return None if found is None else found.describe()

    def history(self, template_id: str) -> list[dict[str, Any]]:
        model = self._model(template_id)
        entries = [json.loads(v) for k, v in (model.tags if model else {}).items()
                   if k.startswith(HISTORY_PREFIX)]
        return sorted(entries, key=lambda e: (e["at_ms"], e["id"]))

    def _observed(self, template_id: str) -> dict[str, Any] | None:
        """What the last promote or reconcile saw (alias, Production versions, when)."""
        model = self._model(template_id)
        return json.loads((model.tags if model else {}).get(names.OBSERVED, "null") or "null")

    def _model(self, template_id: str):
        """The registered model, or None. Searched, not fetched: with access control a fetch
        of a model that does not exist yet is refused (403) rather than not found."""
        found = self.client.search_registered_models(f"name = '{model_name(template_id)}'")
        return found[0] if found else None

    # ---- writing ----------------------------------------------------------------------------
    def register(self, template_id: str, config: SolverConfig,
                 report: dict[str, Any] | None = None, tuning_run_id: str | None = None) -> str:
        """A new version holding ``config``. ``report`` is a validation report
        (``ValidationReport.to_dict()``, the `validate --json` output) of this very set: when
        it passed, the version goes to Staging. Without one the version is tagged
        ``validation_status = unvalidated`` and can only be served by a reviewer's override."""
        from mlflow.exceptions import MlflowException

        name = model_name(template_id)
        if report is not None:
            self._check_report(template_id, config, report)
        run_id = report["run_id"] if report is not None else None
        if run_id is None:  # the version still needs a run holding its parameters.json
            run_id = _parameters_run(self.client, template_id, config)
        with contextlib.suppress(MlflowException):  # it exists already
            self.client.create_registered_model(
                name, tags={"template_id": template_id},
                description=f"Blessed CP-SAT parameters for template {template_id!r}.")
        run = self.client.get_run(run_id)
        # Tags are for people (the UI lets anyone edit them); serving reads the run's params.
        tags = {"template_id": template_id, "ortools_version": _ortools_version(),
                "config_hash": config.hash,
                "validation_status": "unvalidated" if report is None else
                ("passed" if report["passed"] else "failed")}
        if report is not None:
            tags |= {"speedup_factor": f"{report['speedup_factor']:.4g}",
                     # what the speedup is in (a report from before metrics: time to target)
                     "validation_metric": report.get("metric", "time_to_target"),
                     "performance_baseline_s": f"{report['performance_baseline_s']:.4g}",
                     "validated_at": report["validated_at"],
                     "instance_set": report["instance_set"],
                     "validation_run_id": report["run_id"]}
            if "machine_fingerprint" in run.data.params:
                tags["machine_fingerprint"] = run.data.params["machine_fingerprint"]
        if tuning_run_id:
            tags["tuning_run_id"] = tuning_run_id
        description = report["summary"] if report is not None else "Not validated."
        mv = self.client.create_model_version(
            name, source=f"{run.info.artifact_uri}/parameters.json", run_id=run_id,
            tags=tags, description=description)
        if report is not None and report["passed"]:
            self.to_staging(template_id, mv.version)
        return str(mv.version)

    def to_staging(self, template_id: str, version: str | int) -> None:
        """Put a validated version in Staging, where reviewers look for candidates."""
        self._transition(template_id, str(version), "Staging")

    def _check_report(self, template_id: str, config: SolverConfig,
                      report: dict[str, Any]) -> None:
        """A report is believed only as far as its MLflow validation run's params (which
        nobody can edit) confirm it: same template, same parameter set, same verdict."""
        from fresh_solver import tracking

        keys = ("template_id", "passed", "candidate_hash", "run_id", "speedup_factor",
                "performance_baseline_s", "validated_at", "instance_set", "summary")
        problems = [f"--validation: missing {k!r}" for k in keys if k not in report]
        if problems:
            raise InputError(problems)
        if report["template_id"] != template_id:
            problems.append(f"--validation: the report is for template "
                            f"{report['template_id']!r}, not {template_id!r}")
        if report["candidate_hash"] != config.hash:
            problems.append(f"--validation: the report validated set "
                            f"{report['candidate_hash']}, not this one ({config.hash})")
        run = tracking.get_run(self.client, str(report["run_id"]))
        verdict = "passed" if report["passed"] else "failed"
        if run.data.params.get(ev.VERDICT) != verdict or \
                run.data.params.get(ev.TEMPLATE) != template_id or \
                run.data.params.get(ev.CANDIDATE_HASH) != config.hash:
            problems.append(f"--validation: run {report['run_id']} does not record a "
                            f"{verdict!r} validation of this parameter set")
        if problems:
            raise InputError(problems)

    def promote(self, template_id: str, version: str | int, approved_by: str,
                override_validation: bool = False, path: str = "cli") -> None:
        """Make ``version`` the one Production version (stage and alias), approved by a named
        reviewer. A version without validation evidence needs ``override_validation``, which
        is recorded as an attributed override run (the evidence serving checks)."""
        if not approved_by.strip():
            raise InputError("--approved-by: name the reviewer")
        mv = self.version(template_id, version)
        version = str(mv.version)
        self._texts.clear()  # judge the artifact as it is now
        found = self.evidence(template_id, mv)
        if found.basis == UNSOUND:  # no reviewer can vouch for a wrong optimality claim
            raise InputError(f"{model_name(template_id)} v{version} may not be promoted: "
                             f"{found.detail}")
        if not found.servable and not override_validation:
            raise InputError(f"{model_name(template_id)} v{version} is not validated "
                             f"({found.detail}); promote it with --override-validation to "
                             "take responsibility")
        before = self.serving(template_id).version
        name = model_name(template_id)
        if not found.servable:
            run_id = ev.record_override(self.client, template_id, version,
                                        ev.content_hash(self._text(mv)), approved_by, path)
            self.client.set_model_version_tag(name, version, "override_validation",
                                              approved_by)
            self.client.set_model_version_tag(name, version, "override_run_id", run_id)
        self.client.set_model_version_tag(name, version, "approved_by", approved_by)
        self._make_sole_production(template_id, version)
        self._append_history(template_id, {"event": "promote", "by": approved_by,
                                           "from_version": before, "to_version": version,
                                           "path": path})
        self._observe(template_id, moved=version)

    def rollback(self, template_id: str, approved_by: str) -> str:
        """Back to the version served before the current one (per the history). A UI
        promotion not yet reconciled is reconciled first, so it counts as the current one.
        The earlier version must still have its evidence (a rollback records no override on
        the reviewer's behalf: promote it explicitly with ``--override-validation``)."""
        self.reconcile(template_id, by=approved_by)
        current = self.serving(template_id).version
        for entry in reversed(self.history(template_id)):
            previous = entry.get("from_version")
            if entry.get("to_version") == current and previous and previous != current:
                found = self.evidence(template_id, previous)
                if not found.servable:
                    raise InputError(f"{model_name(template_id)}: the earlier version "
                                     f"v{previous} is not servable ({found.detail}); promote a "
                                     "version explicitly (--override-validation to take "
                                     "responsibility for an unvalidated one)")
                self.promote(template_id, previous, approved_by, path="rollback")
                return previous
        raise InputError(f"{model_name(template_id)}: no earlier Production version to roll "
                         "back to")

    def _make_sole_production(self, template_id: str, version: str) -> None:
        self._transition(template_id, version, "Production", archive=True)
        self._set_alias(template_id, version)

    def _set_alias(self, template_id: str, version: str, attempts: int = 3) -> None:
        """Point the alias at ``version``. MLflow sets an alias by a select, then an insert
        when there is none, so two first promotions at once can both insert: the second
        fails on the alias's key (HTTP 400). The alias exists then, so setting it again
        updates it; any other error propagates."""
        for attempt in range(attempts):
            try:
                self.client.set_registered_model_alias(model_name(template_id), ALIAS, version)
                return
            except client_errors() as exc:
                if attempt + 1 == attempts or not _alias_collision(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _append_history(self, template_id: str, entry: dict[str, Any]) -> None:
        entry = {"at_ms": _now_ms(), "id": uuid.uuid4().hex[:8], **entry}
        entry["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["at_ms"] / 1000))
        self.client.set_registered_model_tag(
            model_name(template_id), f"{HISTORY_PREFIX}{entry['at_ms']:013d}.{entry['id']}",
            json.dumps(entry))

    def observe(self, template_id: str) -> None:
        """Record what the registry looks like now, so that a later stage move can be
        ordered against the current alias (the production loader and the health DAG call
        this on every resolution / round; it needs write access to the model)."""
        self._observe(template_id, moved=None)

    def _observe(self, template_id: str, moved: str | None) -> None:
        """``alias_seen_ms`` is when the current alias was first seen, ``production_seen``
        when each Production version was (now for ``moved``, the version we just made
        Production): re-observing must not make an unchanged alias look newer than a stage
        move made since, nor let a description edit (which bumps a version's timestamp) make
        an old Production version look newly promoted."""
        now = _now_ms()
        alias = self.alias_version(template_id)
        previous = self._observed(template_id) or {}
        seen = previous.get("alias_seen_ms", previous.get("at_ms"))
        if moved is not None or previous.get("alias") != alias or seen is None:
            seen = now
        production = self.production_versions(template_id)
        first_seen = {v: t for v, t in previous.get("production_seen", {}).items()
                      if v != moved}
        state = {"alias": alias, "alias_seen_ms": seen, "production": production,
                 "production_seen": {v: first_seen.get(v, now) for v in production},
                 "at_ms": now}
        self._upsert_model_tag(model_name(template_id), names.OBSERVED, json.dumps(state))

    def _upsert_model_tag(self, name: str, key: str, value: str) -> None:
        """Set a registered model's tag that other processes may be setting at the same moment
        (two reviewers promoting, a loader observing): MLflow's SQL store writes a tag by
        read-then-insert, so of two first writers one fails on the unique key; written again,
        the row exists and is updated."""
        try:
            self.client.set_registered_model_tag(name, key, value)
        except client_errors() as exc:
            if "unique constraint" not in str(exc).lower():
                raise
            self.client.set_registered_model_tag(name, key, value)

    # ---- the serving decision ---------------------------------------------------------------
    def serving(self, template_id: str) -> Promotion:
        """The version to serve: the most recent promotion by either path, if servable;
        otherwise the last servable version promoted before it."""
        self._texts.clear()  # each decision reads the artifacts as they are now
        versions = {str(v.version): v for v in self.versions(template_id)}
        observed = self._observed(template_id)
        alias = self.alias_version(template_id)
        dated: list[tuple[int, int, str, str]] = []  # (time, tie-break, version, path)
        seen_in_production = (observed or {}).get("production_seen", {})
        for v in versions.values():
            if v.current_stage == "Production":
                # last_updated_timestamp also moves on a description edit: a version already
                # seen in Production got there no later than when it was first seen.
                moved = min(v.last_updated_timestamp,
                            seen_in_production.get(str(v.version), v.last_updated_timestamp))
                dated.append((moved, 0, str(v.version), "stage"))
        if alias is not None:
            if observed and observed.get("alias") == alias:
                # Already there when first seen: a stage move dated after that came later.
                alias_time = observed.get("alias_seen_ms", observed["at_ms"]) - 1
            else:
                alias_time = _now_ms()  # moved since we last looked: the newest event
            dated.append((alias_time, 1, alias, "alias"))
        if not dated:
            return Promotion(None, "none")
        dated.sort()
        refused = []
        verdicts: dict[str, ev.Evidence] = {}

        def servable(version: str) -> bool:
            if version not in verdicts:
                mv = versions.get(version)
                verdicts[version] = (self.evidence(template_id, mv) if mv is not None else
                                     ev.Evidence(False, "none", "the version is gone"))
            return verdicts[version].servable

        for _, _, version, path in reversed(dated):
            if servable(version):
                paths = {p for _, _, v, p in dated if v == version}
                return Promotion(version, "both" if len(paths) == 2 else path, tuple(refused))
            refused.append(f"v{version} ({path}): {verdicts[version].detail}")
        for entry in reversed(self.history(template_id)):  # the last good promotion
            version = str(entry.get("to_version"))
            if version in versions and servable(version):
                return Promotion(version, "history", tuple(refused))
        return Promotion(None, "none", tuple(refused))

    def reconcile(self, template_id: str, by: str = "reconcile") -> dict[str, Any]:
        """Exactly one Production version (the served one), with the alias; the rest archived.
        Idempotent: a consistent registry is left as it is and nothing is recorded."""
        if self._model(template_id) is None:
            raise InputError(f"no registered model {model_name(template_id)}")
        decision = self.serving(template_id)
        observed = self._observed(template_id)
        production = self.production_versions(template_id)
        alias = self.alias_version(template_id)
        consistent = (decision.version is None and not production) or (
            production == [decision.version] and alias == decision.version)
        found = {"production_stage": production, "alias": alias, "serving": decision.version,
                 "path": decision.path, "refused": list(decision.refused)}
        changed = not consistent and decision.version is not None
        if changed:
            self._make_sole_production(template_id, decision.version)
            self._append_history(template_id, {"event": "reconcile", "by": by,
                                               "from_version": (observed or {}).get("alias"),
                                               "to_version": decision.version,
                                               "path": f"ui-{decision.path}", "found": found})
        self._observe(template_id, moved=decision.version if changed else None)
        return found | {"changed": changed}


def _missing(exc: Exception) -> bool:
    """MLflow's "no such model / version / alias", as opposed to a registry that is down
    (which must propagate, so that the production loader falls back)."""
    return getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST",
                                                "INVALID_PARAMETER_VALUE")


def _alias_collision(exc: Exception) -> bool:
    """A concurrent insert of the same alias (SQLite or PostgreSQL wording), as MLflow's
    store reports it: BAD_REQUEST carrying the database's integrity error."""
    text = str(exc)
    return getattr(exc, "error_code", None) == "BAD_REQUEST" and any(
        sign in text for sign in ("UNIQUE constraint failed", "duplicate key value",
                                  "IntegrityError"))


def registry_failure(exc: Exception) -> str:
    """How a failed registry call reads to an operator: a refused login or permission (401,
    403: the account, its password, its grants) is not a registry that is down."""
    code = getattr(exc, "error_code", None)
    if code == "UNAUTHENTICATED":
        return ("registry refused the login (401): check MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD")
    if code == "PERMISSION_DENIED":
        return "registry refused access (403): this account may not read the model"
    return f"registry unreachable ({type(exc).__name__})"


def _denied(exc: Exception) -> bool:
    """MLflow's access control refusing a request (see :meth:`ParameterRegistry.alias_version`)."""
    return getattr(exc, "error_code", None) == "PERMISSION_DENIED"


def _ortools_version() -> str:
    import ortools

    return ortools.__version__


def _parameters_run(client, template_id: str, config: SolverConfig,
                    validation_status: str = "unvalidated") -> str:
    """A run in the validation experiment holding a set's parameters.json and the verdict
    params (``unvalidated`` for a set registered without validation; tests also fabricate
    validation runs with it)."""
    import tempfile
    from pathlib import Path

    from mlflow.entities import Param

    from fresh_solver import tracking

    exp = tracking.experiment_id(client, tracking.validation_experiment(template_id))
    run = client.create_run(exp, tags={"mlflow.runName": f"register-{config.hash}",
                                       "validation_status": validation_status,
                                       names.CONFIG_HASH: config.hash})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "parameters.json"
        path.write_text(json.dumps(config.to_dict(), indent=1))
        client.log_artifact(run.info.run_id, str(path))
    client.log_batch(run.info.run_id, params=[
        Param(k, v) for k, v in
        ev.verdict_params(template_id, validation_status, config.hash,
                          run.info.run_id).items()])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id
