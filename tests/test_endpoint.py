"""The HTTP endpoint (`fresh-solver serve`) and `fresh-solver health`, started here on
127.0.0.1 and a free port. The checks are fakes whose status the test sets (a HealthChecker with
its ``checks`` replaced), so each status word and each answer code is reached on purpose; a
fake that hangs shows that no request waits for a check. Two tests run the real CLI as a
subprocess (`health --json` with real checks, `serve` stopped by its process group)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from fresh_solver import cli
from fresh_solver.operations import checks as checks_module
from fresh_solver.operations.checks import CRITICAL, HEALTHY, UNKNOWN, WARNING, HealthChecker
from fresh_solver.operations.monitor import PerformanceMonitor, SolveRecord
from fresh_solver.operations.server import serve

HEALTH_JSON = "application/health+json"


class Verdict(NamedTuple):
    """What a check returns (status, message, details), as the real checks do."""

    status: Any
    message: str
    details: dict = {}


class Fakes:
    """Fake checks whose statuses the test sets while the server runs."""

    def __init__(self, **statuses):
        self.statuses = dict(statuses)

    def check(self, name: str) -> Callable[[], Verdict]:
        return lambda: Verdict(self.statuses[name], f"{name} is {self.statuses[name].value}")


def _checker(tmp_path: Path, checks: dict[str, tuple[Callable[[], Any], bool]],
             timeout_s: float = 5.0) -> HealthChecker:
    checker = HealthChecker(PerformanceMonitor(db_url=f"sqlite:///{tmp_path / 'ops.db'}"),
                            timeout_s=timeout_s)
    checker.checks = checks
    return checker


def _standard(tmp_path: Path, fakes: Fakes, timeout_s: float = 5.0) -> HealthChecker:
    """A required canary and an optional registry, as the real set has them."""
    return _checker(tmp_path, {"cp_sat_canary": (fakes.check("cp_sat_canary"), True),
                               "registry": (fakes.check("registry"), False)}, timeout_s)


@contextmanager
def running(checker: HealthChecker, interval_s: float = 0.1, **kwargs) -> Iterator[Any]:
    server = serve(port=0, interval_s=interval_s, checker=checker, **kwargs)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        server.service.stop()


class Answer(NamedTuple):
    code: int
    content_type: str
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def get(server_or_port, path: str) -> Answer:
    port = server_or_port if isinstance(server_or_port, int) else \
        server_or_port.server_address[1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return Answer(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.headers["Content-Type"], error.read())


def wait_for(server, path: str, predicate: Callable[[Answer], bool],
             deadline_s: float = 60.0) -> Answer:
    """Poll until an answer satisfies ``predicate`` (the background rounds take their time
    on a loaded machine); fail with the last answer."""
    end = time.monotonic() + deadline_s
    while True:
        answer = get(server, path)
        if predicate(answer):
            return answer
        if time.monotonic() > end:
            pytest.fail(f"{path} never satisfied the condition; last answer {answer}")
        time.sleep(0.05)


def _status(word: str) -> Callable[[Answer], bool]:
    return lambda answer: answer.json()["status"] == word


# --- the endpoint --------------------------------------------------------------------------

def test_binds_loopback_by_default_and_livez_answers(tmp_path):
    with running(_standard(tmp_path, Fakes(cp_sat_canary=HEALTHY, registry=HEALTHY))) as server:
        assert server.server_address[0] == "127.0.0.1"
        answer = get(server, "/livez")
        assert (answer.code, answer.body) == (200, b"ok\n")
        assert answer.content_type.startswith("text/plain")
        missing = get(server, "/nosuch")
        assert missing.code == 404 and b"/health" in missing.body
        assert get(server, "/livez?verbose=1").code == 200


def test_health_and_readyz_codes_follow_the_status(tmp_path):
    fakes = Fakes(cp_sat_canary=HEALTHY, registry=HEALTHY)
    with running(_standard(tmp_path, fakes)) as server:
        healthy = wait_for(server, "/health", _status("healthy"))
        assert (healthy.code, healthy.content_type) == (200, HEALTH_JSON)
        report = healthy.json()
        assert {c["name"]: c["status"] for c in report["checks"]} == {
            "cp_sat_canary": "healthy", "registry": "healthy"}
        assert report["age_s"] >= 0
        ready = get(server, "/readyz")
        assert (ready.code, ready.body) == (200, b"ready\n")

        fakes.statuses["registry"] = WARNING  # an optional check degrades: still 200
        assert wait_for(server, "/health", _status("warning")).code == 200
        assert get(server, "/readyz").code == 200

        fakes.statuses["registry"] = CRITICAL  # optional critical: warning, but not ready
        warning = wait_for(server, "/health", lambda a: any(
            c["status"] == "critical" for c in a.json()["checks"]))
        assert (warning.code, warning.json()["status"]) == (200, "warning")
        not_ready = get(server, "/readyz")
        assert not_ready.code == 503 and not_ready.body.startswith(b"registry: ")

        fakes.statuses.update(registry=HEALTHY, cp_sat_canary=CRITICAL)
        critical = wait_for(server, "/health", _status("critical"))
        assert (critical.code, critical.content_type) == (503, HEALTH_JSON)
        not_ready = get(server, "/readyz")
        assert not_ready.code == 503 and not_ready.body.startswith(b"canary: ")

        fakes.statuses["cp_sat_canary"] = UNKNOWN
        assert wait_for(server, "/health", _status("unknown")).code == 503
        assert get(server, "/readyz").code == 503

        fakes.statuses["cp_sat_canary"] = HEALTHY
        assert wait_for(server, "/health", _status("healthy")).code == 200
        assert get(server, "/readyz").code == 200


def test_before_the_first_report_health_says_checks_running(tmp_path):
    gate = threading.Event()

    def first_round_in_progress() -> Verdict:
        gate.wait(30)
        return Verdict(HEALTHY, "done")

    checker = _checker(tmp_path, {"cp_sat_canary": (first_round_in_progress, True)},
                       timeout_s=30)
    try:
        with running(checker) as server:
            health = get(server, "/health")
            assert (health.code, health.content_type) == (503, HEALTH_JSON)
            assert health.json()["status"] == "unknown"
            assert "checks running" in health.json()["message"]
            assert get(server, "/readyz").code == 503
            assert get(server, "/livez").code == 200
            gate.set()
            assert wait_for(server, "/health", _status("healthy")).code == 200
    finally:
        gate.set()


def test_a_hung_check_does_not_hang_the_endpoint(tmp_path):
    gate = threading.Event()

    def hangs() -> Verdict:  # as a check stuck on a dead dependency for 30 s
        gate.wait(30)
        return Verdict(HEALTHY, "late")

    fakes = Fakes(registry=HEALTHY)
    checker = _checker(tmp_path, {"cp_sat_canary": (hangs, True),
                                  "registry": (fakes.check("registry"), False)}, timeout_s=1.0)
    try:
        with running(checker) as server:
            first = get(server, "/health")  # answered while the first round hangs
            assert first.code == 503
            timed_out = wait_for(server, "/health", lambda a: bool(a.json()["checks"]))
            assert (timed_out.code, timed_out.json()["status"]) == (503, "unknown")
            canary = {c["name"]: c for c in timed_out.json()["checks"]}["cp_sat_canary"]
            assert canary["status"] == "unknown" and "timed out" in canary["message"]
            for _ in range(3):  # later rounds hang too; every request is still answered
                assert get(server, "/health").code == 503
                assert get(server, "/livez").code == 200
                assert get(server, "/readyz").code == 503
                assert get(server, "/metrics").code == 200
    finally:
        gate.set()


def test_rounds_slowed_by_hung_checks_are_not_reported_stale(tmp_path):
    """The registry check runs first, with its own timeout, then the others with one: a
    round with both hanging takes two timeouts, and its report must not turn "stale"
    while the next round is on time."""
    gate = threading.Event()

    def hangs() -> Verdict:
        gate.wait(30)
        return Verdict(HEALTHY, "late")

    checker = _checker(tmp_path, {"registry": (hangs, False), "monitor_store": (hangs, False),
                                  "cp_sat_canary": (lambda: Verdict(HEALTHY, "ok"), True)},
                       timeout_s=1.0)
    try:
        with running(checker, interval_s=0.25) as server:  # a round: 0.25 s + 2 x 1 s
            wait_for(server, "/health", lambda a: bool(a.json()["checks"]))
            answers = set()
            end = time.monotonic() + 4.5  # two rounds
            while time.monotonic() < end:
                answer = get(server, "/health")
                answers.add((answer.code, answer.json()["status"]))
                time.sleep(0.02)
            assert answers == {(200, "healthy")}  # optional checks timed out: still healthy
    finally:
        gate.set()


def test_a_stale_report_is_unknown(tmp_path):
    checker = _standard(tmp_path, Fakes(cp_sat_canary=HEALTHY, registry=HEALTHY),
                        timeout_s=0.2)
    with running(checker) as server:
        wait_for(server, "/health", _status("healthy"))
        server.service.stop()  # the check rounds stop; the last report ages
        stale = wait_for(server, "/health", _status("unknown"))
        assert stale.code == 503 and "stale" in stale.json()["message"]


def test_metrics_are_prometheus_text_over_the_store(tmp_path):
    checker = _standard(tmp_path, Fakes(cp_sat_canary=HEALTHY, registry=WARNING))
    monitor = checker.monitor
    for seconds, status in ((0.3, "OPTIMAL"), (1.5, "FEASIBLE"), (40.0, "UNKNOWN")):
        monitor.record(SolveRecord("bracket", status, seconds, version="7", jobs=10))
    monitor.record_event("fallback", "bracket", "registry unreachable")
    assert monitor.flush(30)
    with running(checker) as server:
        wait_for(server, "/health", _status("warning"))
        answer = get(server, "/metrics")
    assert (answer.code, answer.content_type) == (200, CONTENT_TYPE_LATEST)
    families = {f.name: f for f in text_string_to_metric_families(answer.body.decode())}
    duration = families["fresh_solver_solve_duration_seconds"]
    counts = {s.labels["status"]: s.value for s in duration.samples
              if s.name.endswith("_count") and s.labels["template"] == "bracket"}
    assert counts == {"OPTIMAL": 1, "FEASIBLE": 1, "UNKNOWN": 1}
    [fallbacks] = families["fresh_solver_fallbacks"].samples
    assert (fallbacks.labels["template"], fallbacks.value) == ("bracket", 1)
    [served] = families["fresh_solver_version_served"].samples
    assert served.labels == {"template": "bracket", "version": "7"}
    [error_rate] = families["fresh_solver_error_rate"].samples
    assert error_rate.value == pytest.approx(1 / 3)
    [overall] = families["fresh_solver_health_status"].samples
    assert overall.value == 1  # warning
    check_values = {s.labels["check"]: s.value
                    for s in families["fresh_solver_check_status"].samples}
    assert check_values == {"cp_sat_canary": 0, "registry": 1}


def test_metrics_with_the_store_unreachable_answer_503(tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    checker = HealthChecker(PerformanceMonitor(
        db_url=f"sqlite:///{tmp_path / 'not-a-folder' / 'ops.db'}"), timeout_s=5)
    checker.checks = {"cp_sat_canary": (lambda: Verdict(HEALTHY, "ok"), True)}
    with running(checker) as server:
        wait_for(server, "/health", lambda a: bool(a.json()["checks"]))
        answer = get(server, "/metrics")
        assert answer.code == 503 and b"operations store unreachable" in answer.body
        assert get(server, "/livez").code == 200


# --- `fresh-solver health` and `fresh-solver serve` --------------------------------------------

def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FRESH_SOLVER_DB_URL", "FRESH_SOLVER_CONFIG", "MLFLOW_TRACKING_URI")}
    return env | {"FRESH_SOLVER_HOME": str(tmp_path / "home")}


def test_cli_health_json_with_real_checks(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "fresh_solver.cli", "health", "--json", "--checks",
         "ortools,cp_sat_canary"], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "healthy"
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        ("ortools", "healthy"), ("cp_sat_canary", "healthy")]


@pytest.fixture
def fake_checker(tmp_path, monkeypatch) -> Fakes:
    """`fresh-solver health` in process, its HealthChecker's checks replaced by fakes."""
    fakes = Fakes(cp_sat_canary=HEALTHY, registry=HEALTHY)
    monkeypatch.setenv("FRESH_SOLVER_DB_URL", f"sqlite:///{tmp_path / 'ops.db'}")

    class FakeChecker(HealthChecker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.checks = {"cp_sat_canary": (fakes.check("cp_sat_canary"), True),
                           "registry": (fakes.check("registry"), False)}

    monkeypatch.setattr(checks_module, "HealthChecker", FakeChecker)
    return fakes


@pytest.mark.parametrize(("canary", "registry", "status", "code"), [
    (HEALTHY, HEALTHY, "healthy", 0), (HEALTHY, CRITICAL, "warning", 0),
    (CRITICAL, HEALTHY, "critical", 1), (UNKNOWN, HEALTHY, "unknown", 1)])
def test_cli_health_exit_code_follows_the_status(fake_checker, capsys, canary, registry,
                                                 status, code):
    fake_checker.statuses.update(cp_sat_canary=canary, registry=registry)
    assert cli.main(["health", "--json"]) == code
    assert json.loads(capsys.readouterr().out)["status"] == status
    assert cli.main(["health"]) == code
    err = capsys.readouterr().err
    assert f"overall: {status}" in err
    # the production snapshot too: an empty store has no score and no solve in its window
    assert "production: health score - of 100 over 0 solve(s) in the last 60 min" in err


def test_cli_health_unknown_check_exits_2(fake_checker, capsys):
    assert cli.main(["health", "--checks", "registry,nosuch"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "cp_sat_canary" in err  # names the known checks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serve_port_in_use_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FRESH_SOLVER_DB_URL", f"sqlite:///{tmp_path / 'ops.db'}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "message"), [
    (["serve", "--port", "99999"], "argument --port: must be 0-65535, got 99999"),
    (["serve", "--port", "http"], "argument --port: expected a port number, got 'http'"),
    (["serve", "--interval", "0"], "argument --interval: must be a positive number of seconds"),
    (["serve", "--interval", "-5"], "argument --interval: must be a positive number of seconds"),
    (["health", "--timeout", "-1"], "argument --timeout: must be a positive number of seconds"),
    (["health", "--timeout", "nan"], "argument --timeout: must be a positive number of seconds"),
])
def test_cli_refuses_a_bad_port_interval_or_timeout_with_exit_2(capsys, command, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(command)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_serve_answers_then_stops_with_its_process_group(tmp_path):
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "fresh_solver.cli", "serve", "--port", str(port),
             "--interval", "60"], cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.DEVNULL,
            stderr=err, start_new_session=True)
    try:
        end = time.monotonic() + 120
        while True:
            try:
                answer = get(port, "/livez")
                break
            except OSError:  # not listening yet
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < end, "serve never answered /livez"
                time.sleep(0.2)
        assert (answer.code, answer.body) == (200, b"ok\n")
        health = get(port, "/health")
        assert health.content_type == HEALTH_JSON
        assert health.json()["status"] in ("healthy", "warning", "critical", "unknown")
        assert f"serving http://127.0.0.1:{port}/health" in log.read_text()
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(30) == -signal.SIGTERM
        with pytest.raises(OSError):
            get(port, "/livez")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def _request(port: int, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        # header names are case-insensitive: compare them lowercased
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read()
    finally:
        connection.close()


def test_head_answers_every_probe_path_and_other_methods_get_405_json(tmp_path):
    with running(_standard(tmp_path, Fakes(cp_sat_canary=HEALTHY, registry=HEALTHY))) as server:
        wait_for(server, "/health", _status("healthy"))
        port = server.server_address[1]
        for path in ("/livez", "/readyz", "/health", "/metrics"):
            got = _request(port, "GET", path)
            code, headers, body = _request(port, "HEAD", path)
            assert (code, headers["content-type"], body) == (got[0], got[1]["content-type"], b"")
            if path in ("/livez", "/readyz"):  # the others' bodies change between requests
                assert headers["content-length"] == got[1]["content-length"]
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                code, headers, body = _request(port, method, path)
                assert (code, headers["allow"]) == (405, "GET, HEAD"), (method, path)
                assert json.loads(body) == {"error": f"method {method} not allowed on {path}",
                                            "allowed": ["GET", "HEAD"]}
        assert _request(port, "POST", "/nosuch")[0] == 404


def test_idle_and_dropped_clients_are_closed_quietly(tmp_path, monkeypatch, capfd):
    """Connections that send nothing, or stop half-way through a request, cost no thread and
    are closed after the idle timeout; clients that hang up before the answer are never a
    traceback on stderr."""
    from fresh_solver.operations import server as server_module

    monkeypatch.setattr(server_module, "IDLE_TIMEOUT_S", 0.5)
    with running(_standard(tmp_path, Fakes(cp_sat_canary=HEALTHY, registry=HEALTHY))) as server:
        port = server.server_address[1]
        assert get(server, "/livez").code == 200
        threads = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        try:
            for i, sock in enumerate(idle):
                sock.settimeout(10)  # a recv still blocked then fails the test
                if i % 2:
                    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never ended
            assert threading.active_count() == threads  # open connections hold no thread
            for sock in idle:
                while sock.recv(65536):  # until the server closes it
                    pass
        finally:
            for sock in idle:
                sock.close()
        for _ in range(20):  # hang up (reset) before reading the answer
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        assert get(server, "/livez").code == 200
    assert "Traceback" not in capfd.readouterr().err


def test_serve_delivers_the_alert_outbox_with_no_dag_running(tmp_path, monkeypatch):
    """An alert queued while its webhook was down goes out on serve's next round once the
    receiver is back: nothing else runs here (no health DAG, no `alert run`)."""
    from fresh_solver.operations.alerts import AlertManager
    from fresh_solver.operations.config import load_config
    from tests.test_alerting import SECRET, SECRET_ENV, Receiver, _free_port, _webhook

    port = _free_port()  # nothing listens yet
    config = tmp_path / "ops.toml"
    config.write_text(_webhook(port))
    monkeypatch.setenv("FRESH_SOLVER_CONFIG", str(config))
    monkeypatch.setenv("FRESH_SOLVER_DB_URL", f"sqlite:///{tmp_path / 'ops.db'}")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    # queued two minutes ago, so its first retry (30 s later) is due now
    queued = AlertManager(load_config(config), clock=lambda: time.time() - 120)
    assert queued.notify("retune_failed", "the retune of bracket failed", key="t1")
    assert queued.history(5)[0]["rule"] == "retune_failed"
    with Receiver(port=port) as receiver, running(
            _standard(tmp_path, Fakes(cp_sat_canary=HEALTHY, registry=HEALTHY))):
        deadline = time.monotonic() + 30
        while not receiver.alerts and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [a["name"] for a in receiver.alerts] == ["retune_failed"]


@pytest.mark.slow
def test_the_load_test_answers_every_probe_while_idle_connections_cost_no_thread(tmp_path):
    """`endpoint_load` runs `fresh-solver serve` as a user does, with probe clients and
    connections that never finish a request: every probe is answered, and the server's
    threads stay below the connections it holds open."""
    from benchmarks import endpoint_load

    out = tmp_path / "load"
    assert endpoint_load.main(["--probes", "2", "--idle", "50", "--seconds", "3",
                               "--deadline", "10", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["sent"] == data["answered"] > 0 and "200" in data["codes"]
    assert data["server_connections_max"] >= 50 > data["server_threads_max"]
