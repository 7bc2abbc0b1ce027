"""The registry's MLflow calls over MLflow's REST API, without importing MLflow.

A reviewer's ``fresh-solver registry show`` spent most of its 8-30 s importing MLflow (4-6 s
of CPU before the first request). Against a tracking *server* the registry needs only a dozen
endpoints of MLflow's documented REST API (``/api/2.0/mlflow/...``), so :class:`RestClient`
speaks them with ``requests`` and answers with plain objects that carry the attributes the
registry reads from MLflow's entities (``version``, ``current_stage``, ``tags`` as a dict, a
run's ``info`` and ``data.params``, ...). Any other call (registering a version, recording an
override run) falls through to MLflow's own client, loaded then: those paths are rare and
keep MLflow's behaviour exactly.

Errors keep MLflow's vocabulary: a server's answer becomes a :class:`RestError` carrying its
``error_code`` (``RESOURCE_DOES_NOT_EXIST``, ``PERMISSION_DENIED``, ...; the HTTP status when
the body names none, as MLflow's client maps it), so the registry's decisions read both
clients' errors alike (:func:`client_errors`). Credentials and TLS come from MLflow's own
environment variables (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, ``MLFLOW_TRACKING_TOKEN``,
``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``), and so do the timeout
and retries (``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PAGE = 1000  # results per search page (MLflow's maximum for registered models)
# MLflow's client names an error by the HTTP status when the body names none.
STATUS_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "ENDPOINT_NOT_FOUND", 500: "INTERNAL_ERROR", 501: "NOT_IMPLEMENTED",
                503: "TEMPORARILY_UNAVAILABLE"}


class RestError(Exception):
    """The server refused or failed a request (``error_code`` as MLflow names it), or could
    not be reached (``error_code`` ``UNREACHABLE``)."""

    def __init__(self, message: str, error_code: str, status: int | None = None):
        super().__init__(message)
        self.error_code = error_code
        self.status = status


def registry_client():
    """The client of the registry's reviewer commands: against a tracking server, MLflow's
    REST API spoken directly (:class:`RestClient`: a command answers without
    paying MLflow's import first); against a database store, MLflow's client. MLflow's
    client also with ``FRESH_SOLVER_REGISTRY_CLIENT=mlflow``, or when ``MLFLOW_TRACKING_AUTH``
    names an MLflow auth plugin (which only MLflow's client can run)."""
    from fresh_solver import tracking

    uri = tracking.tracking_uri()
    if (not uri.startswith(("http://", "https://")) or os.environ.get("MLFLOW_TRACKING_AUTH")
            or os.environ.get("FRESH_SOLVER_REGISTRY_CLIENT", "rest") == "mlflow"):
        return tracking.client()
    return RestClient(uri)


def client_errors() -> tuple[type[Exception], ...]:
    """What a registry client's call raises for the server's answer: :class:`RestError`, and
    MLflow's ``MlflowException`` once MLflow is loaded (a call that went through MLflow's
    client loaded it first, so none of its errors is missed; looked up when an error
    propagates, so that commands that never load MLflow do not pay for it)."""
    module = sys.modules.get("mlflow.exceptions")
    return (RestError, module.MlflowException) if module else (RestError,)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    current_stage: str = "None"
    last_updated_timestamp: int = 0
    creation_timestamp: int = 0
    run_id: str = ""
    source: str = ""
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    artifact_uri: str = ""
    status: str = ""


@dataclass(frozen=True)
class RunData:
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str


def _pairs(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {item["key"]: item.get("value", "") for item in items or []}


def _model(body: dict[str, Any]) -> RegisteredModel:
    return RegisteredModel(body["name"], _pairs(body.get("tags")),
                           {a["alias"]: str(a["version"]) for a in body.get("aliases", [])})


def _version(body: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        body["name"], str(body["version"]), body.get("current_stage", "None"),
        int(body.get("last_updated_timestamp", 0)), int(body.get("creation_timestamp", 0)),
        body.get("run_id", ""), body.get("source", ""), body.get("description", ""),
        _pairs(body.get("tags")), tuple(body.get("aliases", [])))


def _run(body: dict[str, Any]) -> Run:
    info, data = body["info"], body.get("data", {})
    return Run(RunInfo(info["run_id"], str(info["experiment_id"]), info.get("artifact_uri", ""),
                       info.get("status", "")),
               RunData(_pairs(data.get("params")), _pairs(data.get("tags"))))


class RestClient:
    """The registry's subset of ``MlflowClient`` over REST (see the module docstring)."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri.rstrip("/")
        self._session = requests.Session()
        env = os.environ
        if env.get("MLFLOW_TRACKING_TOKEN"):
            self._session.headers["Authorization"] = f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"
        elif env.get("MLFLOW_TRACKING_USERNAME"):
            self._session.auth = (env["MLFLOW_TRACKING_USERNAME"],
                                  env.get("MLFLOW_TRACKING_PASSWORD", ""))
        if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            self._session.verify = False
        elif env.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
            self._session.verify = env["MLFLOW_TRACKING_SERVER_CERT_PATH"]
        # Transient answers are retried as MLflow's client retries them.
        retry = Retry(total=int(env.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")),
                      backoff_factor=0.5, status_forcelist=(429, 502, 503, 504),
                      allowed_methods=None, raise_on_status=False)
        self._session.mount("http://", HTTPAdapter(max_retries=retry))
        self._session.mount("https://", HTTPAdapter(max_retries=retry))
        self._timeout = float(env.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "30"))
        self._mlflow_client = None

    def __getattr__(self, name: str):
        """Calls the registry makes rarely (register, record an override) go to MLflow's own
        client, loaded on first use."""
        if name.startswith("_"):  # never our own state (a half-built or copied client)
            raise AttributeError(name)
        if self.__dict__.get("_mlflow_client") is None:
            from fresh_solver import tracking

            self._mlflow_client = tracking.client()
        return getattr(self._mlflow_client, name)

    # ---- transport --------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        url = f"{self.tracking_uri}{path}"
        try:
            response = self._session.request(method, url, timeout=self._timeout, **kwargs)
        except requests.RequestException as exc:
            raise RestError(f"{method} {url} failed: {exc}", "UNREACHABLE") from None
        if response.ok:
            return response
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = body.get("error_code") or STATUS_CODES.get(response.status_code,
                                                         f"HTTP_{response.status_code}")
        message = body.get("message") or response.text.strip()[:500] or response.reason
        raise RestError(f"{message} ({method} {path}: HTTP {response.status_code})", code,
                        response.status_code)

    def _get(self, endpoint: str, **params) -> dict[str, Any]:
        return self._call("GET", f"{API}/{endpoint}", params=params).json()

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"{API}/{endpoint}", json=body).json()

    def _pages(self, endpoint: str, key: str, **params) -> list[dict[str, Any]]:
        found, token = [], None
        while True:
            page = self._get(endpoint, **params, **({"page_token": token} if token else {}))
            found += page.get(key, [])
            token = page.get("next_page_token")
            if not token:
                return found

    # ---- the registry -----------------------------------------------------------------------
    def search_registered_models(self, filter_string: str = "",
                                 max_results: int = PAGE) -> list[RegisteredModel]:
        found = self._pages("registered-models/search", "registered_models",
                            filter=filter_string, max_results=min(max_results, PAGE))
        return [_model(m) for m in found[:max_results]]

    def search_model_versions(self, filter_string: str = "") -> list[ModelVersion]:
        found = self._pages("model-versions/search", "model_versions", filter=filter_string,
                            max_results=PAGE)
        return [_version(v) for v in found]

    def get_model_version(self, name: str, version: str) -> ModelVersion:
        return _version(self._get("model-versions/get", name=name,
                                  version=str(version))["model_version"])

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return _version(self._get("registered-models/alias", name=name,
                                  alias=alias)["model_version"])

    def transition_model_version_stage(self, name: str, version: str, stage: str,
                                       archive_existing_versions: bool = False) -> None:
        self._post("model-versions/transition-stage",
                   {"name": name, "version": str(version), "stage": stage,
                    "archive_existing_versions": archive_existing_versions})

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._post("model-versions/set-tag",
                   {"name": name, "version": str(version), "key": key, "value": value})

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._post("registered-models/set-tag", {"name": name, "key": key, "value": value})

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._post("registered-models/alias",
                   {"name": name, "alias": alias, "version": str(version)})

    # ---- runs and experiments (the evidence) ------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        return _run(self._get("runs/get", run_id=run_id)["run"])

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            body = self._get("experiments/get-by-name", experiment_name=name)["experiment"]
        except RestError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return Experiment(str(body["experiment_id"]), body["name"])

    def search_runs(self, experiment_ids: list[str], filter_string: str = "",
                    max_results: int = 1000) -> list[Run]:
        body = self._post("runs/search", {"experiment_ids": list(experiment_ids),
                                          "filter": filter_string,
                                          "max_results": max_results})
        return [_run(r) for r in body.get("runs", [])]

    def read_artifact_text(self, uri: str) -> str:
        """The text of the artifact file at ``uri`` (a folder: its ``parameters.json``).
        ``mlflow-artifacts:`` URIs (a server that serves artifacts, as ``make up``'s does)
        are fetched from this server, ``file:`` URIs read where they are; any other scheme
        through MLflow. FileNotFoundError when the server or the disk has no such file."""
        if not uri.endswith("parameters.json"):
            uri = f"{uri.rstrip('/')}/parameters.json"
        parsed = urlparse(uri)
        if parsed.scheme == "mlflow-artifacts":
            path = quote(parsed.path.lstrip("/"))
            try:
                return self._call("GET", f"{ARTIFACTS}/{path}").text
            except RestError as exc:
                if exc.status in (400, 404):
                    raise FileNotFoundError(f"{uri}: not on the server") from None
                raise
        if parsed.scheme == "file":
            return Path(unquote(parsed.path)).read_text()
        from fresh_solver.registry.evidence import download_with_mlflow

        return download_with_mlflow(self.tracking_uri, uri)
