"""The shared MLflow server's access control: MLflow's basic-auth app plus one rule.

    mlflow server --app-name fresh-solver-auth ...   # mlflow_config/start_server.sh, MLFLOW_AUTH=1

Basic-auth gives users and per-resource permissions (READ, EDIT, MANAGE), but it cannot say
"the service account may move a version to Staging but not to Production": a stage transition
and an alias change both need plain update permission on the registered model, and whoever
creates a registered model gets MANAGE on it. The DAGs' service account creates the models, so
basic-auth alone would let it promote. Hence the one rule added here, checked after basic-auth
has authenticated and authorised the request:

**Only a reviewer makes a version Production**: a stage transition to ``Production`` (any
case), setting the alias ``production`` and deleting it, by the REST API (``/api/2.0/...``) or
the UI (``/ajax-api/2.0/...``). A reviewer is an MLflow admin or a user named in the server's
``FRESH_SOLVER_REVIEWERS`` (comma-separated usernames, read per request from the server's
environment). MLflow's GraphQL endpoint offers no other route: its only mutations are searches.

The same holds for the record that stands in for validation: logging the run param
``verdict = override`` (a reviewer's override, :mod:`fresh_solver.registry.evidence`), by
``log-parameter`` or ``log-batch``, is a reviewer's act too; otherwise the service account, which
may write runs, could forge one.

One exception lets the health DAG's reconcile (service account) keep the registry consistent:
a non-reviewer may *mirror* a decision already made, i.e. give a version the second mark of
Production when it already holds the first (stage Production for a version holding the alias,
the alias for a version in stage Production). That never makes a new version Production.

Three more rules make the accounts mean what they say (``mlflow_config/README.md`` has the table
of role × verb, each row a test in ``tests/test_access_control.py``):

- **The loader account only reads** (``fresh-solver-loader``): every request that is not a
  read (GET/HEAD, or one of the POST searches) is refused, whatever basic-auth's per-resource
  permissions say (a creator gets MANAGE on what it creates, so it could otherwise create
  experiments and models and then write to them).
- **Only an admin deletes or renames** experiments, runs, registered models, model versions
  and logged models: the evidence behind what is served lives in runs and versions, and the
  DAGs never delete. A service account or a reviewer that could delete a validation run could
  strand a served set without its evidence.
- **The service account stays in the project's namespace** (``fresh-solver-service``): it
  creates experiments named ``fresh-solver/...``, registered models named ``fresh-solver-...``
  and runs only in ``fresh-solver/...`` experiments, which is all the DAGs do.

Refusals are MLflow errors (HTTP 403, ``PERMISSION_DENIED``), so clients raise an
``MlflowException`` that names the rule.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, Response, request

log = logging.getLogger("fresh_solver.server_auth")

REVIEWERS_ENV = "FRESH_SOLVER_REVIEWERS"
# fresh_solver.registry.accounts.LOADER_USER and SERVICE_USER (that module is not imported
# per request); the project's names (fresh_solver.tracking, fresh_solver.registry).
LOADER_USER = "fresh-solver-loader"
SERVICE_USER = "fresh-solver-service"
EXPERIMENT_PREFIX, MODEL_PREFIX = "fresh-solver/", "fresh-solver-"
# The POST endpoints (MLflow's view-function names) that only read.
READ_POSTS = frozenset({
    "_search_runs", "_search_experiments", "_search_logged_models", "_search_traces_v3",
    "_search_evaluation_datasets_handler", "_search_issues", "_search_prompt_optimization_jobs",
    "serve_search_datasets", "_get_latest_versions", "_batch_get_trace_infos", "_graphql",
    "_query_trace_metrics", "_calculate_trace_filter_correlation", "serve_post_ui_telemetry"})
# What only an admin may do: deleting or renaming what serving's evidence lives in.
ADMIN_ONLY = frozenset({
    "_delete_experiment", "_delete_run", "_delete_registered_model", "_delete_model_version",
    "_delete_logged_model", "_rename_registered_model"})
# fresh_solver.registry.registry.ALIAS; not imported from there because that module imports
# OR-Tools (seconds per server worker). tests/test_access_control.py checks they agree.
ALIAS = "production"
PRODUCTION = "Production"


def create_app(app: Flask | None = None):
    """MLflow's basic-auth app over ``app`` (MLflow's Flask app by default) with the reviewer
    rule as a before-request hook registered after basic-auth's own, so it only sees requests
    basic-auth let through. Returns what basic-auth returns (the FastAPI wrapper under
    uvicorn); the hook lives on the Flask app, which serves the registry routes either way."""
    from mlflow.server import app as mlflow_app
    from mlflow.server.auth import create_app as basic_auth_app
    from mlflow.server.handlers import catch_mlflow_exception

    flask_app = app or mlflow_app
    served = basic_auth_app(flask_app)
    # MLflow's own wrapper turns a raised MlflowException into its JSON error response.
    flask_app.before_request(catch_mlflow_exception(require_reviewer))
    return served


def _is_read() -> bool:
    return request.method in ("GET", "HEAD", "OPTIONS") or request.endpoint in READ_POSTS


def reviewers() -> set[str]:
    """The usernames in ``FRESH_SOLVER_REVIEWERS`` (besides them, admins review)."""
    return {name.strip() for name in os.environ.get(REVIEWERS_ENV, "").split(",")
            if name.strip()}


def _promotion() -> tuple[str, str, str | None] | None:
    """``(what, model, version)`` when the request gives or takes away Production, else None.

    Matched on the view function Flask routed to, so every path of it counts (API, UI, static
    prefix), and read with the very parser its handler uses, so the rule and the handler
    cannot disagree on what the request asks (MLflow's private helpers, pinned with MLflow)."""
    from mlflow.entities.model_registry.model_version_stages import get_canonical_stage
    from mlflow.exceptions import MlflowException
    from mlflow.protos.model_registry_pb2 import (
        DeleteRegisteredModelAlias,
        SetRegisteredModelAlias,
        TransitionModelVersionStage,
    )
    from mlflow.server.handlers import _get_request_message, get_handler

    def routed_to(message_class) -> bool:
        return request.endpoint == get_handler(message_class).__name__

    if routed_to(TransitionModelVersionStage):
        msg = _get_request_message(TransitionModelVersionStage())
        try:
            stage = get_canonical_stage(msg.stage)
        except MlflowException:
            return None  # the handler refuses an unknown stage itself
        return ("move to stage Production", msg.name, msg.version) \
            if stage == PRODUCTION else None
    if routed_to(SetRegisteredModelAlias):
        msg = _get_request_message(SetRegisteredModelAlias())
        return (f"set the alias {ALIAS!r} on", msg.name, msg.version) \
            if msg.alias.lower() == ALIAS else None
    if routed_to(DeleteRegisteredModelAlias):
        msg = _get_request_message(DeleteRegisteredModelAlias())
        return (f"delete the alias {ALIAS!r} of", msg.name, None) \
            if msg.alias.lower() == ALIAS else None
    return _override_record(routed_to)


def _override_record(routed_to) -> tuple[str, str, None] | None:
    """A ``log-parameter`` / ``log-batch`` request recording a validation override."""
    from mlflow.protos.service_pb2 import LogBatch, LogParam
    from mlflow.server.handlers import _get_request_message

    from fresh_solver.registry.evidence import OVERRIDE, VERDICT

    if routed_to(LogParam):
        msg = _get_request_message(LogParam())
        params = [(msg.key, msg.value)]
    elif routed_to(LogBatch):
        msg = _get_request_message(LogBatch())
        params = [(p.key, p.value) for p in msg.params]
    else:
        return None
    if (VERDICT, OVERRIDE) in params:
        return ("record a validation override in", f"run {msg.run_id}", None)
    return None


def _mirrors(model: str, version: str | None) -> bool:
    """Whether the version already holds one of Production's two marks (stage or alias), so
    that giving it the other one repeats a reviewer's decision instead of making one."""
    from mlflow.server.handlers import _get_model_registry_store

    if version is None:
        return False
    mv = _get_model_registry_store().get_model_version(model, version)
    return mv.current_stage == PRODUCTION or any(a.lower() == ALIAS for a in mv.aliases)


def _outside_the_project() -> str | None:
    """What a create request would make outside the project's names, or None."""
    from mlflow.protos.model_registry_pb2 import CreateRegisteredModel
    from mlflow.protos.service_pb2 import CreateExperiment, CreateRun
    from mlflow.server.handlers import _get_request_message, _get_tracking_store, get_handler

    if request.endpoint == get_handler(CreateExperiment).__name__:
        name = _get_request_message(CreateExperiment()).name
        return None if name.startswith(EXPERIMENT_PREFIX) else f"create experiment {name!r}"
    if request.endpoint == get_handler(CreateRegisteredModel).__name__:
        name = _get_request_message(CreateRegisteredModel()).name
        return None if name.startswith(MODEL_PREFIX) else f"create model {name!r}"
    if request.endpoint == get_handler(CreateRun).__name__:
        experiment_id = _get_request_message(CreateRun()).experiment_id
        name = _get_tracking_store().get_experiment(experiment_id).name
        return None if name.startswith(EXPERIMENT_PREFIX) else \
            f"create a run in experiment {name!r}"
    return None


def _is_reviewer(username: str) -> bool:
    return username in reviewers() or _is_admin(username)


def _is_admin(username: str) -> bool:
    from mlflow.server.auth import store

    return store.get_user(username).is_admin


def require_reviewer() -> Response | None:
    """The before-request hook: None lets the request through; a refusal raises an
    MlflowException (PERMISSION_DENIED, HTTP 403) naming the rule. A request it cannot read
    raises MLflow's usual error (the handler would have refused the same request). Reads
    pass at once: every rule here is about writes."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED
    from mlflow.server.auth import authenticate_request, is_unprotected_route

    if _is_read() or is_unprotected_route(request.path):  # basic-auth lets the latter pass
        return None
    authorization = authenticate_request()
    if isinstance(authorization, Response):  # basic-auth let it through: not expected
        return authorization
    username = authorization.username
    if username == LOADER_USER:
        log.warning("refused: %s may only read (%s %s)", username, request.method,
                    request.path)
        raise MlflowException(f"fresh-solver: {LOADER_USER!r} is the production loader's "
                              f"account and may only read; {request.method} {request.path} "
                              "writes", error_code=PERMISSION_DENIED)
    if username == SERVICE_USER and (outside := _outside_the_project()):
        log.warning("refused: %s may not %s", username, outside)
        raise MlflowException(f"fresh-solver: {SERVICE_USER!r} works in the project's "
                              f"namespace only (experiments {EXPERIMENT_PREFIX}..., models "
                              f"{MODEL_PREFIX}...); it may not {outside}",
                              error_code=PERMISSION_DENIED)
    if request.endpoint in ADMIN_ONLY and not _is_admin(username):
        log.warning("refused: %s may not %s (not an admin)", username, request.path)
        raise MlflowException(f"fresh-solver: only an MLflow admin may delete or rename "
                              f"experiments, runs, models and versions (the evidence of what "
                              f"is served); {username!r} is not one ({request.path})",
                              error_code=PERMISSION_DENIED)
    promotion = _promotion()
    if promotion is None:
        return None
    what, model, version = promotion
    if _is_reviewer(username) or _mirrors(model, version):
        return None
    target = f"{model} v{version}" if version is not None else model
    log.warning("refused: %s may not %s %s (not a reviewer)", username, what, target)
    raise MlflowException(
        f"fresh-solver: only a reviewer (an MLflow admin or a user named in the server's "
        f"{REVIEWERS_ENV}) may {what} {target}; {username!r} is not one. A non-reviewer may "
        f"only mirror a promotion already made (stage Production for the version holding the "
        f"alias {ALIAS!r}, or that alias for a version in Production).",
        error_code=PERMISSION_DENIED)
