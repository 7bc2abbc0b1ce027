"""What decides whether a registered version may be served: evidence nobody can edit afterwards.

The MLflow UI lets anyone edit version tags, run tags and descriptions (the pencil icons), so
none of them may decide serving. MLflow run *params* cannot be changed once logged, and a
version's ``run_id`` and ``source`` are fixed when it is created. A version is servable when

- its own run (the validation run it was registered from) logged the params
  ``verdict = passed``, ``template_id`` and ``candidate_hash``, and that hash is the hash of
  the version's own ``parameters.json`` (so neither a tag nor a rewritten artifact can pass
  off another set as validated); or
- a reviewer's override was recorded for exactly this version and content: an *override run*
  in the template's validation experiment whose params name the version, the content hash and
  the reviewer (``verdict = override``, ``model_version``, ``candidate_hash``,
  ``override_by``). The tag ``override_validation`` on the version only tells people.

Only runs of the template's validation experiment count, for a verdict and for an override: a
run with the right params logged in any other experiment (MLflow's *Default*, anyone's) is
refused. And with ``FRESH_SOLVER_EVIDENCE_KEY`` set (a secret from the environment, never the
repository; the same on the hosts that validate, override and serve), every verdict and
override carries ``evidence_signature``, an HMAC-SHA256 over the template, the verdict, the
candidate hash and the run id: a run that anyone who may write runs fabricates, in the right
experiment with the right params, is refused without the key. Without a key, that last guard is
off and ``health`` says so.

Versions registered before these rules (whose runs logged no ``verdict`` param) are refused
with a reason that says so: re-validate them or promote with an override.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fresh_solver.tracking import names

VERDICT = "verdict"
CANDIDATE_HASH = "candidate_hash"
TEMPLATE = "template_id"
MODEL_VERSION = "model_version"
OVERRIDE_BY = "override_by"
PASSED = "passed"
OVERRIDE = "override"
SIGNATURE = "evidence_signature"
KEY_ENV = "FRESH_SOLVER_EVIDENCE_KEY"


@dataclass(frozen=True)
class Evidence:
    """Whether a version may be served, on what record, and in words for a reviewer."""

    servable: bool
    basis: str  # "validation", "override" or "none"
    detail: str  # e.g. "validated by run 3f2a…", "override by carol (run 9c1d…)", why not
    run_id: str | None = None


def verdict_params(template_id: str, verdict: str, candidate_hash: str,
                   run_id: str) -> dict[str, str]:
    """The params a validation (or registration, or override) run ``run_id`` logs so that
    serving can trust it; signed when this host has the evidence key."""
    params = {VERDICT: verdict, TEMPLATE: template_id, CANDIDATE_HASH: candidate_hash}
    signature = sign(template_id, verdict, candidate_hash, run_id)
    return params | ({SIGNATURE: signature} if signature else {})


def signing_key() -> bytes | None:
    """The deployment's evidence key (``FRESH_SOLVER_EVIDENCE_KEY``), or None."""
    key = os.environ.get(KEY_ENV)
    return key.encode() if key else None


def sign(template_id: str, verdict: str, candidate_hash: str, run_id: str) -> str | None:
    """HMAC-SHA256 of the evidence, bound to its run; None without a key."""
    key = signing_key()
    if key is None:
        return None
    message = "\n".join(("fresh-solver-evidence-v1", template_id, verdict, candidate_hash,
                         run_id))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _unsigned(params: dict[str, str], run_id: str) -> bool:
    """With a key: whether the run's evidence lacks a valid signature."""
    expected = sign(params.get(TEMPLATE, ""), params.get(VERDICT, ""),
                    params.get(CANDIDATE_HASH, ""), run_id)
    return expected is not None and not hmac.compare_digest(params.get(SIGNATURE, ""), expected)


def evidence(client, template_id: str, mv, read_hash: Callable[[], str]) -> Evidence:
    """The evidence for serving version ``mv`` of ``template_id`` (see the module docstring).
    ``read_hash()`` gives the hash of the version's ``parameters.json``; it is called only
    when a verdict or an override needs checking against it (a download)."""
    from fresh_solver.registry.rest import client_errors

    if not mv.run_id:
        return Evidence(False, "none", "no run recorded for this version")
    try:
        run = client.get_run(mv.run_id)
    except client_errors() as exc:
        if getattr(exc, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
            raise
        return Evidence(False, "none", f"its run {mv.run_id} is gone")
    from fresh_solver import tracking

    name = tracking.validation_experiment(template_id)
    experiment = client.get_experiment_by_name(name)
    if experiment is None or run.info.experiment_id != experiment.experiment_id:
        own = Evidence(False, "none", f"its run {mv.run_id} is not in the experiment {name}: "
                       "a verdict logged anywhere else does not count")
    else:
        own = _own_verdict(template_id, mv.run_id, run.data.params, read_hash)
    if own.servable or experiment is None:
        return own
    override = find_override(client, template_id, str(mv.version), read_hash,
                             experiment.experiment_id)
    return override or own


def _own_verdict(template_id: str, run_id: str, params: dict[str, str],
                 read_hash: Callable[[], str]) -> Evidence:
    verdict = params.get(VERDICT)
    if verdict is None:
        return Evidence(False, "none", "its run records no verdict (validated before verdicts "
                        "were logged as params, or never): re-validate or override")
    if params.get(TEMPLATE) != template_id:
        return Evidence(False, "none", f"its run validated template {params.get(TEMPLATE)!r}")
    if verdict != PASSED:
        return Evidence(False, "none", f"validation verdict {verdict!r}")
    if _unsigned(params, run_id):
        return Evidence(False, "none", f"its verdict is not signed with this deployment's "
                        f"evidence key ({KEY_ENV}): fabricated, or validated where the key "
                        "was not set; re-validate")
    held = read_hash()
    if params.get(CANDIDATE_HASH) != held:
        return Evidence(False, "none", f"its run validated set {params.get(CANDIDATE_HASH)}, "
                        f"but the version holds {held}")
    return Evidence(True, "validation", f"validated by run {run_id}", run_id)


def find_override(client, template_id: str, version: str, read_hash: Callable[[], str],
                  experiment_id: str | None = None) -> Evidence | None:
    """A recorded override for exactly this version and content, or None. Overrides live in
    the template's validation experiment (``experiment_id`` when the caller knows it)."""
    from fresh_solver import tracking

    if experiment_id is None:
        experiment = client.get_experiment_by_name(tracking.validation_experiment(template_id))
        if experiment is None:
            return None
        experiment_id = experiment.experiment_id
    runs = client.search_runs(
        [experiment_id], names.runs_where(params={VERDICT: OVERRIDE, MODEL_VERSION: version}),
        max_results=20)
    for run in runs:
        params = run.data.params
        if _unsigned(params, run.info.run_id):
            continue  # with a key, an unsigned override is no override
        if params.get(TEMPLATE) == template_id and params.get(CANDIDATE_HASH) == read_hash():
            return Evidence(True, OVERRIDE, f"override by {params.get(OVERRIDE_BY, '?')} "
                            f"(run {run.info.run_id})", run.info.run_id)
    return None


def record_override(client, template_id: str, version: str, content_hash: str,
                    by: str, path: str) -> str:
    """Record a reviewer's override of validation for one version as an immutable run;
    returns its run id."""
    from mlflow.entities import Param

    from fresh_solver import tracking

    experiment = tracking.experiment_id(client, tracking.validation_experiment(template_id))
    run = client.create_run(experiment, tags={
        "mlflow.runName": f"override-v{version}", "template_id": template_id})
    params = {**verdict_params(template_id, OVERRIDE, content_hash, run.info.run_id),
              MODEL_VERSION: version, OVERRIDE_BY: by, "path": path}
    try:  # with access control only a reviewer may log these params
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    except BaseException:
        # A refused override leaves a FAILED run with no verdict (it counts for nothing),
        # not a RUNNING one that looks like an override under way.
        with contextlib.suppress(Exception):
            client.set_terminated(run.info.run_id, "FAILED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def content_hash(text: str) -> str:
    """The hash of a ``parameters.json`` as written (``SolverConfig.hash`` of the set it
    holds), computed without checking the set against the installed OR-Tools: whether a set
    was validated does not depend on the OR-Tools reading it now."""
    canonical = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# A version made by MLflow's "Promote model" button (copy_model_version) keeps its original's
# run and points at it: source models:/NAME/VERSION (or models:/NAME@ALIAS).
_MODEL_LINK = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?")
MAX_LINKS = 5


def file_source(client, source: str) -> str:
    """Where a version's ``parameters.json`` really is: a copy's ``models:/`` source followed
    to the version it was copied from (and on, for a copy of a copy). FileNotFoundError for a
    chain longer than :data:`MAX_LINKS` (a loop)."""
    for _ in range(MAX_LINKS + 1):
        link = _MODEL_LINK.fullmatch(source)
        if link is None:
            return source
        if link["version"]:
            source = client.get_model_version(link["name"], link["version"]).source
        else:
            source = client.get_model_version_by_alias(link["name"], link["alias"]).source
    raise FileNotFoundError(f"{source}: more than {MAX_LINKS} model copies in a row")


def download_text(client, source: str) -> str:
    """The text of a version's ``parameters.json`` (from its fixed ``source``, followed to the
    original when the version is a copy). FileNotFoundError when it is not there."""
    from fresh_solver.registry.rest import RestClient

    uri = file_source(client, source)
    if isinstance(client, RestClient):
        return client.read_artifact_text(uri)
    return download_with_mlflow(client._tracking_client.tracking_uri, uri)


def download_with_mlflow(tracking_uri: str, uri: str) -> str:
    """The text of the ``parameters.json`` at ``uri`` (a file, or a folder holding one, as a
    copy of a model would), through MLflow's artifact repositories (every scheme MLflow
    knows)."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri))
        if path.is_dir():  # a folder holding the set, as a copy of one would
            path = path / "parameters.json"
        return path.read_text()
