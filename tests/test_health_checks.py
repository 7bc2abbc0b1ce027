"""Health checks (fresh_solver.operations.checks) with induced failures, and the rule that
combines them.

The registry is the module's embedded MLflow store (tests/conftest.py); every test that
registers a model deletes it after, so each test sees only its own templates. The operations
store is an SQLite file per test (FRESH_SOLVER_DB_URL). "Down" is a port on 127.0.0.1 where
nothing listens, or an SQLite path under a regular file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fresh_solver import tracking
from fresh_solver.devstack import free_port
from fresh_solver.errors import InputError
from fresh_solver.operations.checks import (
    CheckResult,
    HealthChecker,
    _Verdict,
    overall_status,
)
from fresh_solver.operations.monitor import HealthStatus, PerformanceMonitor, SolveRecord
from fresh_solver.params.config import SolverConfig
from fresh_solver.registry.evidence import content_hash, verdict_params
from fresh_solver.registry.registry import ALIAS, ParameterRegistry, _parameters_run, model_name

HEALTHY, WARNING, CRITICAL, UNKNOWN = (HealthStatus.HEALTHY, HealthStatus.WARNING,
                                       HealthStatus.CRITICAL, HealthStatus.UNKNOWN)
STORE_READERS = ["monitoring_freshness", "performance_regression", "memory_usage", "error_rate"]


# ---- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'operations.db'}"
    monkeypatch.setenv("FRESH_SOLVER_DB_URL", url)
    return url


def record(*records: SolveRecord) -> None:
    monitor = PerformanceMonitor()
    for r in records:
        monitor.record(r)
    assert monitor.flush(timeout=30)


def solves(template_id: str = "part", n: int = 10, errors: int = 0,
           solve_time_s: float = 0.1) -> list[SolveRecord]:
    return [SolveRecord(template_id, "UNKNOWN" if i < errors else "OPTIMAL", solve_time_s,
                        peak_rss_mb=200.0, version="1") for i in range(n)]


def run(names: list[str], timeout_s: float = 120.0) -> dict[str, CheckResult]:
    """The named checks, with a timeout no busy machine reaches (timeouts are tested apart)."""
    checker = HealthChecker(timeout_s=timeout_s)
    results = checker.run_all_checks(names)
    assert [r.name for r in results] == names
    return {r.name: r for r in results}


def statuses(results: dict[str, CheckResult]) -> dict[str, str]:
    return {name: r.status.value for name, r in results.items()}


@pytest.fixture(scope="module")
def registry(tracking_home: Path) -> ParameterRegistry:
    return ParameterRegistry()


@pytest.fixture
def tid(registry: ParameterRegistry) -> Iterator[str]:
    """A template id of this test; its registered model is deleted after."""
    template_id = f"h{uuid.uuid4().hex[:8]}"
    yield template_id
    if registry._model(template_id) is not None:  # noqa: SLF001
        registry.client.delete_registered_model(model_name(template_id))


def config(i: int) -> SolverConfig:
    return SolverConfig.from_dict({"cp_sat": {"num_workers": 1, "max_presolve_iterations": i}})


def tagged_version(registry: ParameterRegistry, template_id: str, **tags: str) -> str:
    """A registered version (of a valid set) with ``tags`` set, promoted to Production; with
    ``validation_status=passed`` its run records a passed verdict (what serving trusts)."""
    cfg = config(3)
    if tags.get("validation_status") == "passed":
        run_id = _parameters_run(registry.client, template_id, cfg, "passed")
        run = tracking.get_run(registry.client, run_id)
        if registry.versions(template_id) == []:
            registry.client.create_registered_model(model_name(template_id))
        mv = registry.client.create_model_version(
            model_name(template_id), source=f"{run.info.artifact_uri}/parameters.json",
            run_id=run_id)
        version = str(mv.version)
    else:
        version = registry.register(template_id, cfg)
    for key, value in tags.items():
        registry.client.set_model_version_tag(model_name(template_id), version, key, value)
    registry.promote(template_id, version, "tester")
    return version


def validated_here() -> dict[str, str]:
    """The tags of a version validated on this machine and this OR-Tools."""
    import ortools

    from fresh_solver.fingerprint import fingerprint_id

    return {"validation_status": "passed", "ortools_version": ortools.__version__,
            "machine_fingerprint": fingerprint_id(), "speedup_factor": "1.4",
            "performance_baseline_s": "0.1"}


def promote_by_hand(registry: ParameterRegistry, template_id: str, version: str) -> None:
    """Stage and alias moved with the MlflowClient itself, as a reviewer's UI would."""
    name = model_name(template_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        registry.client.transition_model_version_stage(name, version, "Production",
                                                       archive_existing_versions=True)
    registry.client.set_registered_model_alias(name, ALIAS, version)


def invalid_version(registry: ParameterRegistry, template_id: str) -> str:
    """A version tagged as validated whose parameters.json names an unknown CP-SAT
    parameter."""
    client = registry.client
    client.create_registered_model(model_name(template_id), tags={"template_id": template_id})
    run_ = client.create_run(tracking.experiment_id(client,
                                                    tracking.validation_experiment(template_id)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "parameters.json"
        path.write_text(json.dumps({"cp_sat": {"num_workers": 1, "no_such_parameter": 3}}))
        client.log_artifact(run_.info.run_id, str(path))
        for key, value in verdict_params(template_id, "passed", content_hash(path.read_text()),
                                         run_.info.run_id).items():
            client.log_param(run_.info.run_id, key, value)
    client.set_terminated(run_.info.run_id, "FINISHED")
    mv = client.create_model_version(
        model_name(template_id), source=f"{run_.info.artifact_uri}/parameters.json",
        run_id=run_.info.run_id, tags={"template_id": template_id, **validated_here()})
    return str(mv.version)


# ---- everything fine ------------------------------------------------------------------------


def test_everything_fine_on_an_empty_registry(store_url: str) -> None:
    checker = HealthChecker(timeout_s=120)  # the first registry check creates its store
    report = checker.generate_health_report()
    assert json.loads(json.dumps(report)) == report  # JSON-able as it is
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == list(checker.checks)
    for check in checks.values():
        assert check["status"] in ("healthy", "warning", "critical", "unknown")
        assert set(check) == {"name", "status", "message", "details", "duration_s", "required"}
    import ortools

    assert checks["ortools"]["status"] == "healthy"
    assert checks["ortools"]["details"]["version"] == ortools.__version__
    assert checks["cp_sat_canary"]["status"] == "healthy"
    assert checks["cp_sat_canary"]["details"]["objective"] == 55
    assert checks["registry"]["status"] == "healthy"
    assert "no template registered" in checks["registry"]["message"]
    assert checks["monitor_store"]["status"] == "healthy"
    assert checks["monitor_store"]["details"]["revision"] == \
        checks["monitor_store"]["details"]["head"]
    assert checks["baseline_compliance"]["status"] == "healthy"
    assert "no template serves a registered set" in checks["baseline_compliance"]["message"]
    # no solve yet: nothing failed, nothing to judge; neither lowers the overall status
    assert checks["error_rate"]["status"] in ("healthy", "unknown")
    assert "no production solve" in checks["error_rate"]["message"]
    assert checks["monitoring_freshness"]["status"] == "unknown"
    assert report["production"]["status"] == "unknown"
    assert report["status"] in ("healthy", "warning")  # utilisation may warn on a busy host
    assert report["status"] != "critical"


def test_healthy_solves_and_a_validated_production_set(registry: ParameterRegistry, tid: str,
                                                       store_url: str) -> None:
    version = tagged_version(registry, tid, **validated_here())
    record(*solves(tid, 10, solve_time_s=0.1))
    results = run(["ortools", "registry", "monitor_store", "error_rate", "monitoring_freshness",
                   "performance_regression", "memory_usage", "baseline_compliance"])
    assert set(statuses(results).values()) == {"healthy"}, \
        {n: r.message for n, r in results.items()}
    assert results["registry"].details["templates"][tid]["serving"] == version
    assert results["registry"].details["evidence_signed"] is False  # and the answer says so:
    assert "evidence unsigned (FRESH_SOLVER_EVIDENCE_KEY not set)" in \
        results["registry"].message
    assert results["performance_regression"].details["templates"][tid]["slowdown"] == \
        pytest.approx(1.0)  # the registry's baseline reached the regression check
    assert overall_status(list(results.values())) is HEALTHY


def test_a_slow_template_against_its_validated_baseline(registry: ParameterRegistry, tid: str,
                                                        store_url: str) -> None:
    tagged_version(registry, tid, **validated_here())  # baseline 0.1 s
    record(*solves(tid, 10, solve_time_s=0.3))
    results = run(["ortools", "registry", "error_rate", "performance_regression"])
    assert results["performance_regression"].status is CRITICAL
    assert tid in results["performance_regression"].message
    assert overall_status(list(results.values())) is WARNING  # a regression is optional


# ---- the registry ---------------------------------------------------------------------------


def test_registry_down(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    record(*solves())
    results = run(["ortools", "registry", "baseline_compliance", "error_rate"])
    assert results["registry"].status is CRITICAL
    assert results["registry"].message.startswith("registry unreachable")
    assert results["baseline_compliance"].status is UNKNOWN
    assert results["ortools"].status is HEALTHY and results["error_rate"].status is HEALTHY
    assert overall_status(list(results.values())) is WARNING  # the registry is optional


def test_an_invalid_production_set(registry: ParameterRegistry, tid: str,
                                   store_url: str) -> None:
    version = invalid_version(registry, tid)
    promote_by_hand(registry, tid, version)
    record(*solves())
    results = run(["ortools", "registry", "error_rate"])
    registry_result = results["registry"]
    assert registry_result.status is CRITICAL
    assert f"{tid}: v{version} does not load" in registry_result.message
    assert "no_such_parameter" in registry_result.message
    assert registry_result.details["templates"][tid]["serving"] == version
    assert overall_status(list(results.values())) is WARNING


def test_an_unvalidated_production_set_served_by_override(
        registry: ParameterRegistry, tid: str, store_url: str) -> None:
    version = registry.register(tid, config(5))  # validation_status unvalidated
    registry.promote(tid, version, "reviewer", override_validation=True)
    record(*solves())
    results = run(["ortools", "registry", "baseline_compliance", "error_rate"])
    assert results["registry"].status is WARNING
    assert f"v{version} is served by an override" in results["registry"].message
    assert results["registry"].details["templates"][tid]["override"] is True
    assert results["baseline_compliance"].status is WARNING
    assert tid in results["baseline_compliance"].details["without_validation"]
    assert overall_status(list(results.values())) is WARNING


@pytest.mark.parametrize(("tag", "value", "words"), [
    ("machine_fingerprint", "0123456789ab", "was validated on machine 0123456789ab"),
    ("ortools_version", "9.0.9999", "was validated on OR-Tools 9.0.9999"),
])
def test_validated_elsewhere_asks_for_revalidation(registry: ParameterRegistry, tid: str,
                                                   store_url: str, tag: str, value: str,
                                                   words: str) -> None:
    version = tagged_version(registry, tid, **(validated_here() | {tag: value}))
    record(*solves())
    results = run(["ortools", "registry", "error_rate"])
    assert results["registry"].status is WARNING
    assert f"v{version} {words}" in results["registry"].message
    assert results["registry"].message.split("; evidence unsigned")[0].endswith("re-validate")
    assert overall_status(list(results.values())) is WARNING


def test_a_passed_revalidation_here_settles_the_mismatch(registry: ParameterRegistry,
                                                        tid: str, store_url: str) -> None:
    """The benchmark DAG re-validated the version on this OR-Tools and machine: no warning."""
    import ortools

    from fresh_solver.fingerprint import fingerprint_id

    tagged_version(registry, tid, **(validated_here() | {
        "ortools_version": "9.0.9999", "revalidation_status": "passed",
        "revalidated_ortools_version": ortools.__version__,
        "revalidated_machine_fingerprint": fingerprint_id()}))
    record(*solves())
    results = run(["registry"])
    assert results["registry"].status is HEALTHY, results["registry"].message


# ---- the store ------------------------------------------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
def store_down(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "postgresql":
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/fresh_solver"
    else:
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where the store's folder should be")
        url = f"sqlite:///{blocker / 'operations.db'}"
    monkeypatch.setenv("FRESH_SOLVER_DB_URL", url)
    return url


def test_store_down(store_down: str) -> None:
    names = ["ortools", "monitor_store", *STORE_READERS]
    checker = HealthChecker(timeout_s=120)
    results = {r.name: r for r in checker.run_all_checks(names)}
    assert results["monitor_store"].status is CRITICAL
    assert "unreachable" in results["monitor_store"].message
    assert "password" not in json.dumps(results["monitor_store"].details)
    for name in STORE_READERS:
        assert results[name].status is UNKNOWN, results[name].message
        assert "store unreachable" in results[name].message
    # solves go on without the store: degraded, not down
    assert overall_status(list(results.values())) is WARNING
    report = checker.generate_health_report(list(results.values()))
    assert report["status"] == "warning"
    assert report["production"]["status"] == "unknown"
    assert "store unreachable" in report["production"]["error"]
    json.dumps(report)


def test_error_rate_high_is_critical(store_url: str) -> None:
    record(*solves(n=10, errors=5))
    results = run(["ortools", "error_rate", "registry"])
    assert results["error_rate"].status is CRITICAL
    assert results["error_rate"].details == {"error_rate": 0.5, "solves": 10}
    assert overall_status(list(results.values())) is CRITICAL


def test_error_rate_a_little_high_is_a_warning(store_url: str) -> None:
    record(*solves(n=10, errors=1))
    results = run(["ortools", "error_rate"])
    assert results["error_rate"].status is WARNING
    assert overall_status(list(results.values())) is WARNING


# ---- timeouts -------------------------------------------------------------------------------


@pytest.fixture
def blocked() -> Iterator[tuple[Callable[[], _Verdict], threading.Event, list[str]]]:
    """A check that blocks until released (released after the test); ``entered`` lists the
    calls that started."""
    release, entered = threading.Event(), []

    def hung() -> _Verdict:
        entered.append(threading.current_thread().name)
        release.wait(60)
        return _Verdict(HEALTHY, "answered after all")

    yield hung, release, entered
    release.set()


def test_a_hung_check_is_unknown_and_does_not_hold_the_report(
        store_url: str, monkeypatch: pytest.MonkeyPatch,
        blocked: tuple[Callable[[], _Verdict], threading.Event, list[str]]) -> None:
    hung, release, entered = blocked
    checker = HealthChecker(timeout_s=0.5)
    monkeypatch.setitem(checker.checks, "memory_usage", (hung, False))
    results = {r.name: r for r in checker.run_all_checks(["ortools", "memory_usage",
                                                          "monitor_store"])}
    assert entered and not release.is_set()  # it returned while the check was still blocked
    assert results["memory_usage"].status is UNKNOWN
    assert results["memory_usage"].message == "timed out after 0.5 s"
    assert results["ortools"].status is HEALTHY
    assert results["monitor_store"].status is HEALTHY
    assert overall_status(list(results.values())) is HEALTHY  # an optional check


def test_a_hung_required_check_makes_the_report_unknown(
        store_url: str, monkeypatch: pytest.MonkeyPatch,
        blocked: tuple[Callable[[], _Verdict], threading.Event, list[str]]) -> None:
    hung, release, _ = blocked
    checker = HealthChecker(timeout_s=0.3)
    monkeypatch.setitem(checker.checks, "cp_sat_canary", (hung, True))
    monkeypatch.setitem(checker.checks, "registry", (hung, False))
    results = checker.run_all_checks(["registry", "cp_sat_canary", "ortools"])
    assert not release.is_set()
    assert [r.status for r in results] == [UNKNOWN, UNKNOWN, HEALTHY]
    assert overall_status(results) is UNKNOWN


def test_checks_that_hang_together_share_one_deadline(store_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Five checks that answer after 1.5 s, with a timeout of 0.5 s: all time out. (Waiting
    for each in turn with the full timeout would have found the later ones answered.)"""
    def slow() -> _Verdict:
        time.sleep(1.5)
        return _Verdict(HEALTHY, "answered late")

    names = ["ortools", "memory_usage", "system_resources", "error_rate", "baseline_compliance"]
    checker = HealthChecker(timeout_s=0.5)
    for name in names:
        monkeypatch.setitem(checker.checks, name, (slow, False))
    results = checker.run_all_checks(names)
    assert [r.message for r in results] == ["timed out after 0.5 s"] * 5


def test_a_hung_check_does_not_keep_the_process_from_exiting(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import threading
        from fresh_solver.operations.checks import HealthChecker

        checker = HealthChecker(timeout_s=0.2)
        checker.checks["ortools"] = (threading.Event().wait, True)  # never returns
        [result] = checker.run_all_checks(["ortools"])
        print(result.status.value, result.message)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unknown timed out after 0.2 s"


def test_unknown_check_names_are_refused() -> None:
    with pytest.raises(InputError, match="unknown health check"):
        HealthChecker().run_all_checks(["ortools", "coffee_machine"])


# ---- the rule -------------------------------------------------------------------------------


def result(name: str, status: str, required: bool) -> CheckResult:
    return CheckResult(name, HealthStatus(status), f"{name} {status}", required=required)


REQUIRED = {"ortools": True, "cp_sat_canary": True, "system_resources": True,
            "error_rate": True, "registry": False, "monitor_store": False,
            "performance_regression": False, "monitoring_freshness": False}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, "healthy"),
    ({"registry": "unknown", "performance_regression": "unknown"}, "healthy"),
    ({"monitoring_freshness": "warning"}, "warning"),
    ({"system_resources": "warning"}, "warning"),
    ({"registry": "critical"}, "warning"),               # optional critical: degraded
    ({"monitor_store": "critical", "error_rate": "unknown"}, "warning"),  # store down
    ({"error_rate": "unknown"}, "healthy"),             # no solve to judge is no fault
    ({"ortools": "unknown"}, "unknown"),
    ({"cp_sat_canary": "unknown", "registry": "critical"}, "unknown"),
    ({"error_rate": "critical"}, "critical"),
    ({"cp_sat_canary": "critical", "ortools": "unknown"}, "critical"),
    ({"system_resources": "critical", "registry": "warning"}, "critical"),
])
def test_overall_status_rule(changes: dict[str, str], expected: str) -> None:
    results = [result(name, changes.get(name, "healthy"), required)
               for name, required in REQUIRED.items()]
    assert overall_status(results) is HealthStatus(expected)
    assert HealthChecker().get_overall_health_status(results) == expected
    assert sorted(r.name for r in results if r.is_critical) == \
        sorted(n for n, s in changes.items() if s == "critical")


def test_overall_status_of_nothing_is_healthy() -> None:
    assert overall_status([]) is HEALTHY


def test_check_result_words() -> None:
    r = CheckResult("registry", CRITICAL, "down", {"url": "x"}, 0.123456, False)
    assert r.is_critical and not r.is_healthy
    assert r.to_dict() == {"name": "registry", "status": "critical", "message": "down",
                           "details": {"url": "x"}, "duration_s": 0.1235, "required": False}
    assert CheckResult("ortools", HEALTHY, "ok").is_healthy
