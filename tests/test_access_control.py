"""Access control on the shared registry (issue 11): a real `mlflow server --app-name
fresh-solver-auth` (mlflow_config/start_server.sh, MLFLOW_AUTH=1) on a PostgreSQL store of its
own, with proxied artifacts, set up by `python -m fresh_solver.registry.accounts`.

Roles: the DAGs' service account works up to Staging and may only mirror a promotion; a
reviewer (named in FRESH_SOLVER_REVIEWERS) promotes; the production loader reads with a
read-only account; anonymous requests are refused. Each test acts through the same
environment variables a deployment sets (MLFLOW_TRACKING_URI/USERNAME/PASSWORD).
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fresh_solver import production
from fresh_solver.params.config import SolverConfig
from fresh_solver.registry import accounts, server_auth
from fresh_solver.registry.registry import ALIAS, ParameterRegistry, _parameters_run, model_name
from tests import postgres
from tests.servers import mlflow_auth_server

pytestmark = pytest.mark.slow

ADMIN = ("admin", f"admin-{uuid.uuid4().hex}")
SERVICE = (accounts.SERVICE_USER, f"service-{uuid.uuid4().hex}")
LOADER = (accounts.LOADER_USER, f"loader-{uuid.uuid4().hex}")
REVIEWER = ("alice", f"alice-{uuid.uuid4().hex}")
_ids = itertools.count()


# ---- the server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """The name of a PostgreSQL database for the server's store and users, which
    start_server.sh creates (as it must for a user); dropped after."""
    with postgres.admin_engine() as admin, postgres.database(
            admin, f"fs_access_{os.getpid()}_{uuid.uuid4().hex[:6]}", create=False) as tail:
        # psycopg2 for MLflow's store: its archiving query fails under psycopg 3 (pyproject)
        yield f"postgresql+psycopg2://{tail}"


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "accounts.toml"
    path.write_text(f'[service]\npassword = "{SERVICE[1]}"\n[loader]\npassword = "{LOADER[1]}"\n'
                    f'[reviewers]\n{REVIEWER[0]} = "{REVIEWER[1]}"\n')
    return path


@pytest.fixture(scope="module")
def server(database: str, credentials: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server, with the accounts set up by the admin."""
    if importlib.util.find_spec("flask_wtf") is None:
        pytest.skip("MLflow's basic-auth app needs Flask-WTF (the mlflow[auth] extra), which "
                    "is not installed")
    home = tmp_path_factory.mktemp("mlflow-auth")
    env = {"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1], "FRESH_SOLVER_REVIEWERS": REVIEWER[0]}
    # The accounts command imports mlflow.server (seconds): do that while the server starts.
    importing = threading.Thread(target=importlib.import_module, args=("mlflow.server",))
    importing.start()
    with mlflow_auth_server(home, database, env) as url:
        importing.join()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
            mp.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
            assert accounts.main(["--credentials", str(credentials), "--tracking-uri",
                                  url]) == 0
        yield url


@pytest.fixture
def act_as(server: str, monkeypatch: pytest.MonkeyPatch):
    """``act_as(user)``: from now on this process is ``user`` (None: anonymous), as a deployed
    client would be through its environment; the loader's memory is emptied."""

    def switch(user: tuple[str, str] | None) -> ParameterRegistry:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
        for name, value in zip(("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),
                               user or (None, None)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        production.wait_for_refreshes(timeout=60)
        production.clear_cache()
        return ParameterRegistry()

    yield switch
    production.wait_for_refreshes(timeout=60)
    production.clear_cache()


def call(url: str, method: str, endpoint: str, body: dict | None = None,
         user: tuple[str, str] | None = None) -> tuple[int, dict]:
    """One REST call as the UI or a script sends it: (status, JSON body or {})."""
    headers = {"Content-Type": "application/json"}
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{user[0]}:{user[1]}".encode()).decode()
    request = urllib.request.Request(f"{url}{endpoint}", method=method, headers=headers,
                                     data=json.dumps(body).encode() if body else None)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"{}")
    except json.JSONDecodeError:
        return status, {"text": raw.decode(errors="replace")}


# ---- helpers --------------------------------------------------------------------------------


@pytest.fixture
def tid() -> str:
    return f"acl{next(_ids)}"


def validated_version(registry: ParameterRegistry, template_id: str, i: int) -> str:
    """Register a version that passed validation (a fabricated validation run with the
    verdict params; validation has its own tests): it goes to Staging."""
    cfg = SolverConfig.from_dict({"cp_sat": {"num_workers": 1, "max_presolve_iterations": i}})
    report = {"template_id": template_id, "passed": True, "candidate_hash": cfg.hash,
              "run_id": _parameters_run(registry.client, template_id, cfg, "passed"),
              "speedup_factor": 1.5, "performance_baseline_s": 0.01,
              "validated_at": "2026-11-28T00:00:00Z", "instance_set": "test",
              "summary": "fabricated for the access-control test"}
    return registry.register(template_id, cfg, report)


def to_production(server: str, user: tuple[str, str], template_id: str, version: str,
                  mark: str) -> int:
    """The UI's request giving ``version`` one mark of Production (its stage, without
    archiving, or the alias), as ``user``: the HTTP status."""
    body = {"name": model_name(template_id), "version": version}
    if mark == "stage":
        endpoint = "model-versions/transition-stage"
        body |= {"stage": "Production", "archive_existing_versions": False}
    else:
        endpoint, body["alias"] = "registered-models/alias", ALIAS
    return call(server, "POST", f"/ajax-api/2.0/mlflow/{endpoint}", body, user)[0]


def promote_in_the_ui(server: str, template_id: str, version: str) -> None:
    """What a reviewer does in the UI: stage Production (archive box unticked), then the
    alias."""
    for mark in ("stage", "alias"):
        assert to_production(server, REVIEWER, template_id, version, mark) == 200


def stages(registry: ParameterRegistry, template_id: str) -> dict[str, str]:
    return {str(v.version): v.current_stage for v in registry.versions(template_id)}


def assert_refused(excinfo: pytest.ExceptionInfo) -> None:
    """Refused by the reviewer rule: MLflow's PERMISSION_DENIED (403), naming the rule."""
    exc = excinfo.value
    assert exc.error_code == "PERMISSION_DENIED" and exc.get_http_status_code() == 403
    assert server_auth.REVIEWERS_ENV in exc.message


# ---- the tests ------------------------------------------------------------------------------


def test_anonymous_and_wrong_passwords_are_refused(server: str) -> None:
    assert call(server, "GET", "/api/2.0/mlflow/experiments/search?max_results=1")[0] == 401
    assert call(server, "GET", "/api/2.0/mlflow/experiments/search?max_results=1",
                user=(SERVICE[0], "wrong"))[0] == 401
    assert call(server, "GET", "/health")[0] == 200  # for load balancers and devstack


def test_the_service_account_works_up_to_staging_only(act_as, tid: str) -> None:
    from mlflow.exceptions import MlflowException

    registry = act_as(SERVICE)
    version = validated_version(registry, tid, 1)  # experiment, run, params, artifact, model
    assert stages(registry, tid) == {version: "Staging"}
    with pytest.raises(MlflowException) as refused:
        registry.promote(tid, version, approved_by="the-dag")
    assert_refused(refused)
    with pytest.raises(MlflowException) as refused:
        registry.client.set_registered_model_alias(model_name(tid), ALIAS, version)
    assert_refused(refused)
    assert stages(registry, tid) == {version: "Staging"}
    assert registry.alias_version(tid) is None
    registry.client.set_registered_model_alias(model_name(tid), "candidate", version)  # others


def test_the_rule_holds_on_the_ui_paths_in_any_case(server: str, act_as, tid: str) -> None:
    version = validated_version(act_as(SERVICE), tid, 1)
    body = {"name": model_name(tid), "version": version, "stage": "production",
            "archive_existing_versions": False}
    status, error = call(server, "POST", "/ajax-api/2.0/mlflow/model-versions/transition-stage",
                         body, SERVICE)
    assert (status, error["error_code"]) == (403, "PERMISSION_DENIED")
    assert server_auth.REVIEWERS_ENV in error["message"]
    status, error = call(server, "POST", "/ajax-api/2.0/mlflow/registered-models/alias",
                         {"name": model_name(tid), "alias": "Production", "version": version},
                         SERVICE)
    assert (status, error["error_code"]) == (403, "PERMISSION_DENIED")
    # a reviewer's promotion by the UI, which the service account may not undo
    assert call(server, "POST", "/ajax-api/2.0/mlflow/registered-models/alias",
                {"name": model_name(tid), "alias": ALIAS, "version": version},
                REVIEWER)[0] == 200
    status, error = call(server, "DELETE", "/api/2.0/mlflow/registered-models/alias",
                         {"name": model_name(tid), "alias": ALIAS}, SERVICE)
    assert (status, error["error_code"]) == (403, "PERMISSION_DENIED")
    assert call(server, "DELETE", "/api/2.0/mlflow/registered-models/alias",
                {"name": model_name(tid), "alias": ALIAS}, ADMIN)[0] == 200  # admins review


def test_a_reviewer_promotes(act_as, tid: str) -> None:
    version = validated_version(act_as(SERVICE), tid, 1)
    registry = act_as(REVIEWER)
    registry.promote(tid, version, approved_by=REVIEWER[0])
    assert stages(registry, tid) == {version: "Production"}
    assert registry.alias_version(tid) == version
    assert registry.serving(tid).version == version


def test_only_a_reviewer_records_a_validation_override(act_as, tid: str) -> None:
    """The override run is what lets an unvalidated set be served; the service account may
    write runs, so recording one is a reviewer's act on the server too."""
    from mlflow.exceptions import MlflowException

    from fresh_solver.registry import evidence

    service = act_as(SERVICE)
    validated_version(service, tid, 1)  # the model exists, as after any retune
    unvalidated = service.register(tid, SolverConfig.from_dict({"cp_sat": {"num_workers": 1}}))
    with pytest.raises(MlflowException) as refused:
        evidence.record_override(service.client, tid, unvalidated, "0" * 16, "mallory", "api")
    assert refused.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(MlflowException):
        service.promote(tid, unvalidated, "mallory", override_validation=True)
    assert service.serving(tid).version is None
    # the refused attempts left no RUNNING run that looks like an override under way
    experiment = service.client.get_experiment_by_name(f"fresh-solver/validation/{tid}")
    attempts = service.client.search_runs([experiment.experiment_id],
                                          f"tags.mlflow.runName = 'override-v{unvalidated}'")
    assert [r.info.status for r in attempts] == ["FAILED", "FAILED"]
    reviewer = act_as(REVIEWER)
    reviewer.promote(tid, unvalidated, REVIEWER[0], override_validation=True)
    assert reviewer.serving(tid).version == unvalidated


def test_the_health_round_reports_a_reconcile_only_a_reviewer_may_do(server: str, act_as,
                                                                     tid: str) -> None:
    """A reviewer moved both marks to a set that is not servable (after archiving the good
    one): serving falls back to the good version from the history, which the service account
    may not make Production again. The health round says so for that template, still
    observes it, and goes on."""
    from fresh_solver.operations.cycle import _reconcile_one

    service = act_as(SERVICE)
    good = validated_version(service, tid, 1)
    act_as(REVIEWER).promote(tid, good, approved_by=REVIEWER[0])
    bad = service.register(tid, SolverConfig.from_dict({"cp_sat": {"num_workers": 1}}))
    promote_in_the_ui(server, tid, bad)
    assert call(server, "POST", "/ajax-api/2.0/mlflow/model-versions/transition-stage",
                {"name": model_name(tid), "version": good, "stage": "Archived",
                 "archive_existing_versions": False}, REVIEWER)[0] == 200
    service = act_as(SERVICE)  # (credentials come from the environment at each request)
    assert service.serving(tid).version == good  # from the history
    before = service._observed(tid)["at_ms"]
    found = _reconcile_one(service, tid, by="health-dag")
    assert "PERMISSION_DENIED" in found["needs_reviewer"]
    assert service._observed(tid)["at_ms"] > before  # observed all the same


def test_the_service_account_may_only_mirror_a_promotion(server: str, act_as,
                                                         tid: str) -> None:
    """What the health DAG's reconcile needs: the second mark of Production (stage or alias)
    for a version a reviewer gave the first; never a version of its own choosing."""
    service = act_as(SERVICE)
    v1, v2, v3 = (validated_version(service, tid, i) for i in (1, 2, 3))
    promote_in_the_ui(server, tid, v1)
    assert to_production(server, REVIEWER, tid, v2, "alias") == 200  # the alias editor
    assert to_production(server, SERVICE, tid, v3, "stage") == 403
    assert to_production(server, SERVICE, tid, v2, "stage") == 200
    assert to_production(server, REVIEWER, tid, v3, "stage") == 200  # the stage dropdown
    assert to_production(server, SERVICE, tid, v3, "alias") == 200
    assert stages(service, tid) == {v1: "Production", v2: "Production", v3: "Production"}
    assert service.reconcile(tid)["changed"] is True
    assert stages(service, tid) == {v1: "Archived", v2: "Archived", v3: "Production"}
    assert service.alias_version(tid) == v3


def test_the_loader_serves_production_and_cannot_write(server: str, act_as, tid: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    version = validated_version(act_as(SERVICE), tid, 1)
    promote_in_the_ui(server, tid, version)
    monkeypatch.setenv("FRESH_SOLVER_MONITOR", "0")
    loader = act_as(LOADER)
    resolved = production.refresh(tid)
    assert resolved.source == f"registry:{model_name(tid)}/{version}"
    assert production.get_solver_parameters(tid)["max_presolve_iterations"] == 1
    with pytest.raises(MlflowException) as refused:
        loader.client.set_model_version_tag(model_name(tid), version, "approved_by", "me")
    assert refused.value.get_http_status_code() == 403
    run = loader.client.get_model_version(model_name(tid), version).run_id
    with pytest.raises(MlflowException) as refused:
        loader.client.set_tag(run, "note", "x")
    assert refused.value.get_http_status_code() == 403


# role x verb: the HTTP status each account gets (mlflow_config/README.md prints this table).
ROLES = {"service": SERVICE, "loader": LOADER, "reviewer": REVIEWER, "admin": ADMIN}
VERBS = {  # verb: (method, endpoint, body from the scratch resources, {role: status})
    "read a model's versions": ("GET", "/api/2.0/mlflow/registered-models/get?name={model}",
                                None, dict.fromkeys(ROLES, 200)),
    "search runs": ("POST", "/api/2.0/mlflow/runs/search",
                    lambda r: {"experiment_ids": [r["experiment"]]}, dict.fromkeys(ROLES, 200)),
    "create an experiment": ("POST", "/api/2.0/mlflow/experiments/create",
                             lambda r: {"name": f"{r['experiment_name']}-new"},
                             {"service": 200, "loader": 403, "reviewer": 200, "admin": 200}),
    "create a registered model": ("POST", "/api/2.0/mlflow/registered-models/create",
                                  lambda r: {"name": f"{r['model']}-new"},
                                  {"service": 200, "loader": 403, "reviewer": 200,
                                   "admin": 200}),
    "create an experiment outside the project": (
        "POST", "/api/2.0/mlflow/experiments/create", lambda r: {"name": f"{r['other']}-new"},
        {"service": 403, "loader": 403, "reviewer": 200, "admin": 200}),
    "create a model outside the project": (
        "POST", "/api/2.0/mlflow/registered-models/create",
        lambda r: {"name": f"{r['other']}-model"},
        {"service": 403, "loader": 403, "reviewer": 200, "admin": 200}),
    "create a run outside the project": (
        "POST", "/api/2.0/mlflow/runs/create",
        lambda r: {"experiment_id": r["other_experiment"]},
        {"service": 403, "loader": 403, "reviewer": 200, "admin": 200}),
    "log to a run": ("POST", "/api/2.0/mlflow/runs/log-parameter",
                     lambda r: {"run_id": r["run"], "key": "note", "value": "x"},
                     {"service": 200, "loader": 403, "reviewer": 200, "admin": 200}),
    "tag a version": ("POST", "/api/2.0/mlflow/model-versions/set-tag",
                      lambda r: {"name": r["model"], "version": "1", "key": "note",
                                 "value": "x"},
                      {"service": 200, "loader": 403, "reviewer": 200, "admin": 200}),
    "move a version to Staging": ("POST", "/api/2.0/mlflow/model-versions/transition-stage",
                                  lambda r: {"name": r["model"], "version": "1",
                                             "stage": "Staging",
                                             "archive_existing_versions": False},
                                  {"service": 200, "loader": 403, "reviewer": 200,
                                   "admin": 200}),
    "delete a run": ("POST", "/api/2.0/mlflow/runs/delete", lambda r: {"run_id": r["run"]},
                     {"service": 403, "loader": 403, "reviewer": 403, "admin": 200}),
    "delete a version": ("DELETE", "/api/2.0/mlflow/model-versions/delete",
                         lambda r: {"name": r["model"], "version": "1"},
                         {"service": 403, "loader": 403, "reviewer": 403, "admin": 200}),
    "delete a registered model": ("DELETE", "/api/2.0/mlflow/registered-models/delete",
                                  lambda r: {"name": r["model"]},
                                  {"service": 403, "loader": 403, "reviewer": 403,
                                   "admin": 200}),
    "rename a registered model": ("POST", "/api/2.0/mlflow/registered-models/rename",
                                  lambda r: {"name": r["model"], "new_name": f"{r['model']}-b"},
                                  {"service": 403, "loader": 403, "reviewer": 403,
                                   "admin": 200}),
}


@pytest.mark.parametrize("verb", list(VERBS))
@pytest.mark.parametrize("role", list(ROLES))
def test_each_account_may_do_what_its_role_says(server: str, act_as, tid: str, role: str,
                                                verb: str) -> None:
    """Scratch resources the service account made (as a retune does: an experiment, a run,
    a model with one version) and an experiment of someone else's (the admin's), then one
    request as ``role``."""
    service = act_as(SERVICE)
    model, experiment_name = f"fresh-solver-x{tid}-{role}", f"fresh-solver/x{tid}-{role}"
    experiment = service.client.create_experiment(experiment_name)
    run = service.client.create_run(experiment).info.run_id
    service.client.create_registered_model(model)
    source = service.client.get_run(run).info.artifact_uri + "/parameters.json"
    service.client.create_model_version(model, source, run_id=run)
    other = f"elsewhere-{tid}-{role}"
    created, answer = call(server, "POST", "/api/2.0/mlflow/experiments/create",
                           {"name": other}, ADMIN)
    assert created == 200, answer
    resources = {"model": model, "experiment": experiment, "run": run, "other": other,
                 "experiment_name": experiment_name, "other_experiment": answer["experiment_id"]}
    method, endpoint, body, expected = VERBS[verb]
    status, answer = call(server, method, endpoint.format(model=model),
                          body(resources) if body else None, ROLES[role])
    assert status == expected[role], (role, verb, answer)
    if role == "loader" and verb.startswith(("create an", "create a model", "create a reg")):
        assert "may only read" in answer["message"]  # basic-auth alone lets anyone create
    if role == "service" and verb.startswith(("delete", "rename")):  # MANAGE as the creator
        assert "only an MLflow admin may delete or rename" in answer["message"]
    if role == "service" and verb.endswith("outside the project"):
        assert "works in the project's namespace only" in answer["message"]


def test_a_refused_login_is_reported_as_one_not_as_an_unreachable_registry(
        server: str, act_as, tid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fresh_solver.operations.checks import HealthChecker

    version = validated_version(act_as(SERVICE), tid, 1)
    promote_in_the_ui(server, tid, version)
    monkeypatch.setenv("FRESH_SOLVER_MONITOR", "0")
    act_as((LOADER[0], "not-the-password"))
    resolved = production.refresh(tid)
    assert resolved.source.startswith("fallback:registry refused the login (401): check "
                                      "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    message = HealthChecker().check_registry().message
    assert message.startswith("registry refused the login (401)"), message


def test_setting_up_accounts_again_changes_passwords_only(server: str, credentials: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    capsys.readouterr()
    assert accounts.main(["--credentials", str(credentials), "--tracking-uri", server]) == 0
    out = capsys.readouterr().out
    assert "created" not in out and "granted" not in out and "given role" not in out
    assert f"user {SERVICE[0]}: existed" in out
    assert f"FRESH_SOLVER_REVIEWERS={REVIEWER[0]}" in out
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", SERVICE[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SERVICE[1])
    assert accounts.main(["--credentials", str(credentials), "--tracking-uri", server]) == 2
    assert "admin" in capsys.readouterr().err


# ---- without a server -----------------------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("{not json", "not valid JSON"),
    ('{"service": {"password": "x"}}', "missing loader.password"),
    ('{"service": {"password": "x"}, "loader": {"password": "y"}, "reviewers": {"bob": 3}}',
     "reviewers.bob needs a password"),
    ('{"service": {}, "loader": {"password": "y"}, "extra": 1}', "unknown section"),
])
def test_accounts_refuse_bad_credentials_files(tmp_path: Path, content: str | None,
                                               message: str,
                                               capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "accounts.json"
    if content is not None:
        path.write_text(content)
    assert accounts.main(["--credentials", str(path), "--tracking-uri", "http://x"]) == 2
    assert message in capsys.readouterr().err


def test_accounts_refuse_a_file_inside_the_repository(capsys: pytest.CaptureFixture) -> None:
    inside = accounts.REPO / "pyproject.toml"
    assert accounts.main(["--credentials", str(inside), "--tracking-uri", "http://x"]) == 2
    assert "inside the repository" in capsys.readouterr().err


def test_the_rule_and_the_registry_agree_on_the_alias() -> None:
    assert server_auth.ALIAS == ALIAS


def test_graphql_offers_no_other_way_to_promote() -> None:
    """The rule guards the REST routes; MLflow's GraphQL mutations must stay searches."""
    from mlflow.server.graphql.graphql_schema_extensions import schema

    mutations = schema.graphql_schema.mutation_type.fields
    assert all("search" in name.lower() or name == "testMutation" for name in mutations), \
        sorted(mutations)


def test_reviewer_commands_over_rest_carry_the_accounts_and_their_refusals(
        server: str, act_as, tid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reviewer commands speak REST themselves (no MLflow client): the same credentials
    from the environment, the same rule, and a refusal in one line with exit 1."""
    version = validated_version(act_as(SERVICE), tid, 1)

    def cli(user: tuple[str, str], *argv: str) -> subprocess.CompletedProcess:
        env = os.environ | {"MLFLOW_TRACKING_URI": server, "MLFLOW_TRACKING_USERNAME": user[0],
                            "MLFLOW_TRACKING_PASSWORD": user[1]}
        return subprocess.run([str(Path(sys.executable).parent / "fresh-solver"), *argv],
                              env=env, capture_output=True, text=True, timeout=120)

    refused = cli(SERVICE, "registry", "promote", tid, version, "--approved-by", "mallory")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "PERMISSION_DENIED" in refused.stderr and server_auth.REVIEWERS_ENV in refused.stderr
    wrong = cli((REVIEWER[0], "not-the-password"), "registry", "show", tid, "--json")
    assert wrong.returncode == 1 and "UNAUTHENTICATED" in wrong.stderr
    done = cli(REVIEWER, "registry", "promote", tid, version, "--approved-by", REVIEWER[0])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"serving": version}
    assert act_as(LOADER).serving(tid).version == version
