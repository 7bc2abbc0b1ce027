"""The alert manager end to end: rules evaluated on contexts, the alert log and the outbox in a
real SQLite store, delivery to receivers started here on 127.0.0.1 (an http.server webhook that
verifies every signature, an aiosmtpd SMTP server), and the `fresh-solver alert` commands.

Time moves through the manager's ``clock=``, never by sleeping: repeat intervals, cooldowns and
retry backoff are minutes and hours.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from fresh_solver import cli
from fresh_solver.errors import InputError
from fresh_solver.operations import cycle, store
from fresh_solver.operations.alerts import AlertManager, build_contexts
from fresh_solver.operations.channels import verify_signature
from fresh_solver.operations.config import OperationsConfig, load_config
from fresh_solver.operations.rules import CONTEXT_FIELDS

SECRET = "alerting-test-secret"
SECRET_ENV = "FRESH_SOLVER_TEST_WEBHOOK_SECRET"
PERFORMANCE_RULE = """
[[rules]]
name = "performance_degradation"
condition = "performance_change > 0.5"
severity = "critical"
channels = ["{channel}"]
repeat_interval_minutes = 60
cooldown_minutes = 15
"""


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    for name in ("FRESH_SOLVER_DB_URL", "FRESH_SOLVER_CONFIG", "FRESH_SOLVER_ALERT_MAX_AGE_H"):
        monkeypatch.delenv(name, raising=False)


# --- helpers ---------------------------------------------------------------------------------

class Clock:
    """The manager's clock, moved by the test."""

    def __init__(self, now: float | None = None):
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, *, hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        self.now += hours * 3600 + minutes * 60 + seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """A webhook receiver: checks each request's signature with ``verify_signature`` (401 if
    it does not verify), keeps the verified alerts, answers ``status``."""

    def __init__(self, port: int = 0, status: int = 200, delay_s: float = 0.0):
        self.alerts: list[dict] = []
        self.fingerprint_headers: list[str] = []
        self.unverified = 0
        self.status, self.delay_s = status, delay_s
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                verified = verify_signature(SECRET, body, self.headers)
                with outer._lock:
                    if verified:
                        outer.alerts.append(json.loads(body))
                        outer.fingerprint_headers.append(
                            self.headers["X-Fresh-Solver-Fingerprint"])
                    else:
                        outer.unverified += 1
                self.send_response(outer.status if verified else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _webhook(port: int, name: str = "hook") -> str:
    return f"""
[channels.{name}]
type = "webhook"
url = "http://127.0.0.1:{port}/alerts"
secret_env = "{SECRET_ENV}"
timeout_s = 5
"""


def _config(tmp_path: Path, channels: str, rules: str | None = None,
            channel: str = "hook") -> OperationsConfig:
    """An operations config file in tmp_path: ``channels`` plus the performance rule routed
    to ``channel`` (or ``rules``), loaded as the CLI would."""
    path = tmp_path / "ops.toml"
    path.write_text(channels + (PERFORMANCE_RULE.format(channel=channel) if rules is None
                                else rules), encoding="utf-8")
    return load_config(path)


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'operations.db'}"


def _context(template_id: str | None, **figures) -> dict:
    return dict.fromkeys(CONTEXT_FIELDS) | {"template_id": template_id, "check": {}} | figures


def _slow(template_id: str = "bracket") -> dict:
    return _context(template_id, solves=20, median_solve_s=6.0, baseline_s=3.0,
                    performance_change=1.0, slowdown=2.0, error_rate=0.0)


def _fine(template_id: str = "bracket") -> dict:
    return _context(template_id, solves=20, median_solve_s=3.1, baseline_s=3.0,
                    performance_change=0.033, slowdown=1.033, error_rate=0.0)


@pytest.fixture
def manager(tmp_path: Path, receiver: Receiver) -> AlertManager:
    return AlertManager(_config(tmp_path, _webhook(receiver.port)), db_url=_db(tmp_path),
                        clock=Clock())


def _events(transitions: list[dict]) -> list[tuple[str, str | None, list[str]]]:
    return [(t["event"], t["alert"]["template_id"], t["notified"]) for t in transitions]


def _deliveries(manager: AlertManager) -> list[dict]:
    return [d for alert in manager.history() for d in alert["deliveries"]]


# --- dedup, repeat, resolve, cooldown ----------------------------------------------------------

def test_fires_once_repeats_after_the_interval_and_resolves_once(manager, receiver):
    clock = manager.clock
    assert _events(manager.evaluate([_slow()])) == [("fired", "bracket", ["hook"])]
    assert manager.dispatch() == {"delivered": 1, "retrying": 0, "given_up": 0}
    first = receiver.alerts[0]
    assert (first["name"], first["status"], first["severity"], first["template_id"]) == (
        "performance_degradation", "firing", "critical", "bracket")
    assert first["details"]["performance_change"] == 1.0

    clock.advance(minutes=10)  # still firing, repeat not due: nothing queued, nothing sent
    assert manager.evaluate([_slow()]) == []
    assert manager.dispatch()["delivered"] == 0

    clock.advance(minutes=51)  # 61 min after the first notification
    assert _events(manager.evaluate([_slow()])) == [("repeated", "bracket", ["hook"])]
    assert manager.dispatch()["delivered"] == 1
    repeat = receiver.alerts[1]
    assert repeat["status"] == "firing"
    assert (repeat["fingerprint"], repeat["started_at"]) == (first["fingerprint"],
                                                             first["started_at"])

    clock.advance(minutes=1)
    assert _events(manager.evaluate([_fine()])) == [("resolved", "bracket", ["hook"])]
    assert manager.dispatch()["delivered"] == 1
    resolved = receiver.alerts[2]
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] == clock.now
    assert resolved["started_at"] == first["started_at"]

    clock.advance(minutes=1)  # still fine: resolved once, not again
    assert manager.evaluate([_fine()]) == []
    assert manager.dispatch()["delivered"] == 0
    assert [a["status"] for a in receiver.alerts] == ["firing", "firing", "resolved"]
    assert receiver.unverified == 0
    [logged] = manager.history()
    assert logged["status"] == "resolved"
    assert [d["state"] for d in logged["deliveries"]] == ["delivered"] * 3


def test_firing_again_within_the_cooldown_is_recorded_and_notified_after_it(manager,
                                                                             receiver):
    """Cooldown 15 min after a resolve, even when the alert had been firing for longer."""
    clock = manager.clock
    manager.evaluate([_slow()])
    clock.advance(minutes=30)
    manager.evaluate([_fine()])
    manager.dispatch()
    assert [a["status"] for a in receiver.alerts] == ["firing", "resolved"]

    clock.advance(minutes=5)  # flaps back 5 min after the resolve
    assert _events(manager.evaluate([_slow()])) == [("fired", "bracket", [])]
    assert manager.dispatch()["delivered"] == 0
    [logged] = manager.history()
    assert logged["status"] == "firing"
    assert logged["started_at"] == clock.now  # a new episode, recorded

    clock.advance(minutes=5)  # 10 min after the resolve: still quiet
    assert manager.evaluate([_slow()]) == []
    assert manager.dispatch()["delivered"] == 0

    clock.advance(minutes=6)  # 16 min after the resolve, still holding: notified now
    [(_, template_id, notified)] = _events(manager.evaluate([_slow()]))
    assert (template_id, notified) == ("bracket", ["hook"])
    assert manager.dispatch()["delivered"] == 1
    assert [a["status"] for a in receiver.alerts] == ["firing", "resolved", "firing"]
    assert receiver.alerts[2]["started_at"] == logged["started_at"]


def test_an_alert_never_notified_resolves_silently(manager, receiver):
    clock = manager.clock
    manager.evaluate([_slow()])
    clock.advance(minutes=1)
    manager.evaluate([_fine()])
    manager.dispatch()
    assert [a["status"] for a in receiver.alerts] == ["firing", "resolved"]

    clock.advance(minutes=1)
    assert _events(manager.evaluate([_slow()])) == [("fired", "bracket", [])]  # cooldown
    clock.advance(minutes=1)
    assert _events(manager.evaluate([_fine()])) == [("resolved", "bracket", [])]
    assert manager.dispatch()["delivered"] == 0
    assert [a["status"] for a in receiver.alerts] == ["firing", "resolved"]


def test_each_template_is_its_own_alert(manager, receiver):
    transitions = manager.evaluate([_slow("bracket"), _slow("flowshop"), _fine("openshop")])
    assert _events(transitions) == [("fired", "bracket", ["hook"]),
                                    ("fired", "flowshop", ["hook"])]
    fingerprints = {t["alert"]["fingerprint"] for t in transitions}
    assert len(fingerprints) == 2
    assert manager.dispatch()["delivered"] == 2
    assert set(receiver.fingerprint_headers) == fingerprints

    manager.clock.advance(minutes=1)
    assert _events(manager.evaluate([_fine("bracket"), _slow("flowshop")])) == [
        ("resolved", "bracket", ["hook"])]
    states = {a["template_id"]: a["status"] for a in manager.history()}
    assert states == {"bracket": "resolved", "flowshop": "firing"}


def test_a_rule_with_a_template_glob_applies_only_to_matching_templates(tmp_path, receiver):
    rules = """
[[rules]]
name = "bracket_errors"
condition = "error_rate > 0.1"
template = "bracket*"
channels = ["hook"]

[[rules]]
name = "any_errors"
condition = "error_rate > 0.1"
channels = ["hook"]
"""
    manager = AlertManager(_config(tmp_path, _webhook(receiver.port), rules),
                           db_url=_db(tmp_path), clock=Clock())
    contexts = [_context(None, status="warning", solves=40),
                _context("bracket-small", solves=10, error_rate=0.5),
                _context("flowshop", solves=10, error_rate=0.5),
                _context("bracket-large", solves=10, error_rate=0.0)]
    fired = {(t["alert"]["name"], t["alert"]["template_id"])
             for t in manager.evaluate(contexts)}
    assert fired == {("bracket_errors", "bracket-small"), ("any_errors", "bracket-small"),
                     ("any_errors", "flowshop")}


def test_contexts_from_a_health_report_fire_the_default_rules(tmp_path, receiver):
    """build_contexts: one system-wide context and one per template; the default rules (the
    file has no `rules`) each fire at their grain, routed to every channel."""
    manager = AlertManager(_config(tmp_path, _webhook(receiver.port), rules=""),
                           db_url=_db(tmp_path), clock=Clock())
    report = {"status": "critical",
              "checks": [{"name": "cp_sat_canary", "status": "critical"}],
              "production": {"overall_health_score": 40.0, "solves": 12, "templates": {
                  "bracket": {"solves": 10, "errors": 3, "fallbacks": 2, "median_solve_s": 6.0,
                              "p95_solve_s": 9.0, "baseline_s": 3.0, "versions": ["7"]},
                  "flowshop": {"solves": 2, "errors": 0, "fallbacks": 0,
                               "median_solve_s": 1.0, "p95_solve_s": 1.0, "baseline_s": None,
                               "versions": ["2"]}}}}
    events = [{"template_id": "bracket", "kind": "fallback", "detail": "registry down"},
              {"template_id": "bracket", "kind": "refusal", "detail": "not validated"},
              {"template_id": "flowshop", "kind": "dropped", "detail": "3 records"}]
    contexts = build_contexts(report, events)
    system, bracket, flowshop = contexts
    assert (system["template_id"], system["status"], system["solves"]) == (None, "critical", 12)
    assert system["check"] == {"cp_sat_canary": "critical"}
    assert bracket["performance_change"] == pytest.approx(1.0)
    assert (bracket["error_rate"], bracket["fallbacks"], bracket["refusals"]) == (0.3, 1, 1)
    assert flowshop["performance_change"] is None and flowshop["fallbacks"] == 0
    assert set(bracket) == set(CONTEXT_FIELDS) | {"check"}

    fired = {(t["alert"]["name"], t["alert"]["template_id"])
             for t in manager.evaluate(contexts)}
    assert fired == {("health_critical", None), ("performance_degradation", "bracket"),
                     ("error_rate_high", "bracket"), ("parameter_fallbacks", "bracket"),
                     ("production_refusals", "bracket")}
    assert manager.dispatch()["delivered"] == 5
    assert len(receiver.alerts) == 5


# --- the outbox: kept while a channel is down, delivered once when it is back ------------------

def test_webhook_down_is_kept_and_delivered_once_by_a_restarted_manager(tmp_path):
    port = _free_port()  # nothing listens there yet
    config = _config(tmp_path, _webhook(port))
    clock = Clock()
    before = AlertManager(config, db_url=_db(tmp_path), clock=clock)
    before.evaluate([_slow()])
    assert before.dispatch() == {"delivered": 0, "retrying": 1, "given_up": 0}
    [kept] = _deliveries(before)
    assert (kept["channel"], kept["state"], kept["attempts"]) == ("hook", "pending", 1)
    assert "ConnectionError" in kept["last_error"] and "127.0.0.1" in kept["last_error"]
    store.dispose_all()  # the process ends; only the store remembers

    with Receiver(port) as back:
        restarted = Clock(clock.now + 10)
        after = AlertManager(config, db_url=_db(tmp_path), clock=restarted)
        assert after.dispatch()["delivered"] == 0  # the 30 s backoff is not over
        restarted.advance(seconds=25)
        assert after.dispatch() == {"delivered": 1, "retrying": 0, "given_up": 0}
        restarted.advance(minutes=30)
        assert after.evaluate([_slow()]) == []  # still firing, its repeat not due
        assert after.dispatch()["delivered"] == 0
        assert [a["status"] for a in back.alerts] == ["firing"]
    [done] = _deliveries(after)
    assert (done["state"], done["attempts"]) == ("delivered", 2)


@pytest.mark.parametrize(("status", "outcome", "state"), [
    (400, "given_up", "given up"), (404, "given_up", "given up"), (503, "retrying", "pending"),
    (429, "retrying", "pending")])
def test_rejected_outright_is_given_up_at_once(tmp_path, status, outcome, state):
    with Receiver(status=status) as refusing:
        manager = AlertManager(_config(tmp_path, _webhook(refusing.port)),
                               db_url=_db(tmp_path), clock=Clock())
        manager.evaluate([_slow()])
        assert manager.dispatch()[outcome] == 1
        manager.clock.advance(hours=2)
        later = manager.dispatch()
        assert later["given_up" if outcome == "retrying" else "delivered"] == 0
        [kept] = _deliveries(manager)
        assert kept["state"] == state
        assert f"HTTP {status}" in kept["last_error"]
        if outcome == "given_up":
            assert kept["attempts"] == 1 and len(refusing.alerts) == 1


def test_retries_back_off_and_give_up_when_too_old(tmp_path):
    manager = AlertManager(_config(tmp_path, _webhook(_free_port())), db_url=_db(tmp_path),
                           clock=Clock())
    clock = manager.clock
    manager.evaluate([_slow()])
    assert manager.dispatch()["retrying"] == 1
    for wait_s in (30, 60, 120):  # exponential backoff
        clock.advance(seconds=wait_s - 1)
        assert manager.dispatch() == {"delivered": 0, "retrying": 0, "given_up": 0}
        clock.advance(seconds=2)
        assert manager.dispatch()["retrying"] == 1
    clock.advance(hours=25)  # beyond FRESH_SOLVER_ALERT_MAX_AGE_H (24)
    assert manager.dispatch() == {"delivered": 0, "retrying": 0, "given_up": 1}
    [kept] = _deliveries(manager)
    assert (kept["state"], kept["attempts"]) == ("given up", 5)
    clock.advance(hours=1)
    assert manager.dispatch()["given_up"] == 0


class _Mailbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 OK"


def test_smtp_down_then_up_delivers_once(tmp_path):
    port = _free_port()
    mail = f"""
[channels.mail]
type = "email"
host = "127.0.0.1"
port = {port}
from = "fresh-solver@example.org"
to = ["oncall@example.org"]
timeout_s = 5
"""
    config = _config(tmp_path, mail, channel="mail")
    clock = Clock()
    before = AlertManager(config, db_url=_db(tmp_path), clock=clock)
    before.evaluate([_slow()])
    assert before.dispatch()["retrying"] == 1
    [kept] = _deliveries(before)
    assert kept["state"] == "pending" and f"127.0.0.1:{port}" in kept["last_error"]
    store.dispose_all()

    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        after = AlertManager(config, db_url=_db(tmp_path), clock=Clock(clock.now + 31))
        assert after.dispatch() == {"delivered": 1, "retrying": 0, "given_up": 0}
        assert after.dispatch()["delivered"] == 0
    finally:
        controller.stop()
    [envelope] = mailbox.envelopes
    assert envelope.rcpt_tos == ["oncall@example.org"]
    message = message_from_bytes(envelope.content)
    assert "FIRING critical: performance_degradation [bracket]" in message["Subject"]
    assert message["X-Fresh-Solver-Status"] == "firing"


def test_two_dispatchers_send_each_delivery_once(tmp_path):
    templates = [f"t{i}" for i in range(8)]
    with Receiver(delay_s=0.05) as slow_receiver:
        config = _config(tmp_path, _webhook(slow_receiver.port))
        clock = Clock()
        AlertManager(config, db_url=_db(tmp_path), clock=clock).evaluate(
            [_slow(t) for t in templates])
        dispatchers = [AlertManager(config, db_url=_db(tmp_path), clock=clock)
                       for _ in range(3)]
        start = threading.Barrier(len(dispatchers))
        counts: list[dict[str, int]] = []

        def run(dispatcher: AlertManager) -> None:
            start.wait()
            counts.append(dispatcher.dispatch())

        threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sum(c["delivered"] for c in counts) == len(templates)
    assert sum(c["retrying"] + c["given_up"] for c in counts) == 0
    assert sorted(a["template_id"] for a in slow_receiver.alerts) == templates
    assert all(d["attempts"] == 1 for d in _deliveries(dispatchers[0]))


# --- one-off notifications and the seed's create_performance_alert -----------------------------

def test_notify_with_a_key_is_idempotent(manager, receiver):
    assert manager.notify("retune_review", "bracket v7 awaits review", key="run-17",
                          template_id="bracket", details={"version": "7"})
    assert not manager.notify("retune_review", "bracket v7 awaits review", key="run-17",
                              template_id="bracket")
    assert [a["summary"] for a in receiver.alerts] == ["bracket v7 awaits review"]
    assert receiver.alerts[0]["severity"] == "info"
    assert manager.notify("retune_review", "bracket v8 awaits review", key="run-18",
                          template_id="bracket", channels=("hook",))
    assert len(receiver.alerts) == 2
    with pytest.raises(InputError, match="nosuch"):
        manager.notify("retune_review", "x", key="run-19", channels=("nosuch",))


def test_create_performance_alert(manager, receiver):
    alert = manager.create_performance_alert("bracket", 15.2, 3.1, 50.0)
    assert alert is not None
    assert (alert.name, alert.status, alert.severity, alert.template_id) == (
        "performance_degradation", "firing", "critical", "bracket")
    [sent] = receiver.alerts
    assert sent["fingerprint"] == alert.fingerprint
    assert sent["details"]["performance_change"] == pytest.approx(15.2 / 3.1 - 1)

    again = manager.create_performance_alert("bracket", 15.0, 3.1, 50.0)
    assert again is not None and again.fingerprint == alert.fingerprint
    assert len(receiver.alerts) == 1  # deduplicated: the repeat is not due

    assert manager.create_performance_alert("flowshop", 4.0, 3.1, 50.0) is None
    assert manager.create_performance_alert("flowshop", 3.0, 3.1) is None
    configured = manager.create_performance_alert("openshop", 5.0, 3.1, 50.0)
    assert configured is not None and configured.severity == "critical"  # the rule's severity
    assert len(receiver.alerts) == 2


def test_create_performance_alert_without_a_configured_rule_grades_by_size(tmp_path, receiver):
    config = load_config(_config_file(tmp_path, "rules = []\n" + _webhook(receiver.port)))
    manager = AlertManager(config, db_url=_db(tmp_path), clock=Clock())
    warning = manager.create_performance_alert("openshop", 5.0, 3.1, 50.0)
    assert warning is not None and warning.severity == "warning"  # 61 %: not twice over
    critical = manager.create_performance_alert("flowshop", 15.2, 3.1, 50.0)
    assert critical is not None and critical.severity == "critical"
    assert len(receiver.alerts) == 2


@pytest.mark.parametrize(("current", "baseline"), [
    (15.2, 0.0), (15.2, -3.1), (-1.0, 3.1), (math.nan, 3.1), (15.2, math.inf), (15.2, 3.1)])
def test_create_performance_alert_refuses_bad_input(manager, receiver, current, baseline):
    threshold = -10.0 if (current, baseline) == (15.2, 3.1) else 50.0
    with pytest.raises(InputError):
        manager.create_performance_alert("bracket", current, baseline, threshold)
    assert receiver.alerts == []


# --- retention -----------------------------------------------------------------------------

def test_retention_keeps_firing_alerts_and_pending_deliveries(tmp_path):
    manager = AlertManager(_config(tmp_path, _webhook(_free_port())), db_url=_db(tmp_path),
                           clock=Clock())
    manager.evaluate([_slow("old")])
    manager.clock.advance(minutes=1)
    manager.evaluate([_fine("old")])  # resolved, never delivered (receiver down)
    manager.evaluate([_slow("current")])
    manager.dispatch()
    manager.clock.advance(hours=200)
    manager.dispatch()  # everything is now too old to retry: given up
    assert manager.enforce_retention(168) == 4  # 'old': 1 alert, 2 deliveries; 'current': 1
    [kept] = manager.history()
    assert (kept["template_id"], kept["status"]) == ("current", "firing")


# --- the `fresh-solver alert` commands ---------------------------------------------------------

def _cli(args: list[str], tmp_path: Path, config: Path | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FRESH_SOLVER_DB_URL", "FRESH_SOLVER_CONFIG")}
    env |= {"FRESH_SOLVER_HOME": str(tmp_path / "home"), SECRET_ENV: SECRET}
    if config is not None:
        env["FRESH_SOLVER_CONFIG"] = str(config)
    return subprocess.run([sys.executable, "-m", "fresh_solver.cli", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)


def _config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ops.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_alert_test_delivers_to_the_webhook(tmp_path, receiver):
    config = _config_file(tmp_path, _webhook(receiver.port) + '\n[channels.log]\ntype = "log"\n')
    done = _cli(["alert", "test", "hook"], tmp_path, config)
    assert done.returncode == 0, done.stderr
    assert "delivered a test alert through 'hook'" in done.stderr
    [alert] = receiver.alerts
    assert (alert["name"], alert["severity"]) == ("test", "info")
    assert receiver.unverified == 0


def test_cli_alert_test_receiver_down_exits_1(tmp_path, monkeypatch, capsys):
    config = _config_file(tmp_path, _webhook(_free_port()))
    monkeypatch.setenv("FRESH_SOLVER_CONFIG", str(config))
    assert cli.main(["alert", "test", "hook"]) == 1
    err = capsys.readouterr().err
    assert "not delivered through 'hook'" in err and "ConnectionError" in err


def test_cli_alert_test_unknown_channel_exits_2_naming_the_channels(tmp_path, monkeypatch,
                                                                    capsys):
    config = _config_file(tmp_path, _webhook(_free_port()) + '\n[channels.log]\ntype = "log"\n')
    monkeypatch.setenv("FRESH_SOLVER_CONFIG", str(config))
    assert cli.main(["alert", "test", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "'nosuch'" in err and "'hook'" in err and "'log'" in err and str(config) in err


def test_cli_bad_config_exits_2_naming_file_and_line(tmp_path, monkeypatch, capsys):
    config = _config_file(tmp_path, '[monitor]\nwindow_minutes = 30\n\n'
                                    '[channels.ops]\ntype = "pagerduty"\n')
    monkeypatch.setenv("FRESH_SOLVER_CONFIG", str(config))
    for command in (["alert", "test", "ops"], ["alert", "list"], ["health"]):
        assert cli.main(command) == 2  # a message, not an exception
        err = capsys.readouterr().err
        assert f"{config}, line 5" in err and "pagerduty" in err
        assert "Traceback" not in err


def test_cli_alert_run_and_list(tmp_path, receiver, monkeypatch, capsys):
    """`alert run` in process, with the checks replaced by a critical report: the
    health_critical rule pages the webhook; `alert list` shows it from the store."""
    config = _config_file(tmp_path, _webhook(receiver.port) + """
[[rules]]
name = "health_critical"
condition = 'status == "critical"'
severity = "critical"
""")
    monkeypatch.setenv("FRESH_SOLVER_CONFIG", str(config))
    monkeypatch.setenv("FRESH_SOLVER_DB_URL", _db(tmp_path))
    report = {"status": "critical", "generated_at": time.time(), "checks": [
        {"name": "cp_sat_canary", "status": "critical"}],
        "production": {"overall_health_score": None, "solves": 0, "templates": {}}}
    monkeypatch.setattr(cycle, "check", lambda names=None: report)
    assert cli.main(["alert", "run"]) == 0
    ran = json.loads(capsys.readouterr().out)
    assert ran["status"] == "critical"
    assert ran["transitions"] == [{"event": "fired", "name": "health_critical",
                                   "template_id": None, "notified": ["hook"]}]
    assert ran["deliveries"]["delivered"] == 1
    assert [a["name"] for a in receiver.alerts] == ["health_critical"]

    assert cli.main(["alert", "run"]) == 0  # again: deduplicated
    assert json.loads(capsys.readouterr().out)["transitions"] == []
    assert len(receiver.alerts) == 1

    assert cli.main(["alert", "list", "--json"]) == 0
    [logged] = json.loads(capsys.readouterr().out)
    assert (logged["rule"], logged["status"]) == ("health_critical", "firing")
    assert logged["deliveries"][0]["state"] == "delivered"
    assert cli.main(["alert", "list"]) == 0  # for people: one line per alert, not JSON
    [line] = capsys.readouterr().out.strip().splitlines()
    assert "firing" in line and "critical" in line and "health_critical" in line
    assert line.endswith("(hook delivered)")


def test_cli_alert_test_log_shows_what_it_logged(tmp_path, monkeypatch, capsys):
    config = _config_file(tmp_path, '[channels.log]\ntype = "log"\n')
    monkeypatch.setenv("FRESH_SOLVER_CONFIG", str(config))
    monkeypatch.setenv("FRESH_SOLVER_DB_URL", _db(tmp_path))
    assert cli.main(["alert", "test", "log"]) == 0
    err = capsys.readouterr().err
    assert "INFO fresh_solver.alerts:" in err and "delivered a test alert through 'log'" in err
    assert cli.main(["alert", "list"]) == 0


def test_concurrent_evaluations_record_and_notify_an_alert_once(tmp_path, receiver):
    """Two managers (an `alert run` beside the DAG's round) evaluating the same firing
    condition at once: one alert row, one notification, no error."""
    import threading

    config = _config(tmp_path, _webhook(receiver.port))
    managers = [AlertManager(config, db_url=_db(tmp_path), clock=Clock()) for _ in range(4)]
    managers[0].history()  # the store exists before the race
    barrier = threading.Barrier(len(managers))
    errors: list[BaseException] = []

    def evaluate(manager: AlertManager) -> None:
        barrier.wait()
        try:
            manager.evaluate([_slow("bracket")])
            manager.dispatch()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=evaluate, args=(m,)) for m in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(managers[0].history()) == 1
    assert len(receiver.alerts) == 1


def test_a_channel_added_through_the_documents_api_gets_the_documents_alert(
        tmp_path, receiver):
    """The source document: ``AlertManager()``, ``add_channel(AlertChannel(...))``, then
    ``create_performance_alert(...)``: the added channel receives it (before, rules were
    routed to the channels of the file when it loaded, so the added one got nothing)."""
    from fresh_solver.operations.seed_alerting import AlertChannel

    manager = AlertManager(load_config(None), db_url=_db(tmp_path), clock=Clock())
    manager.add_channel(AlertChannel("team_hook", "webhook", {
        "url": f"http://127.0.0.1:{receiver.port}/alerts", "secret_env": SECRET_ENV}))
    alert = manager.create_performance_alert("bracket", current_time=6.0, baseline_time=3.0)
    assert alert is not None and alert.severity == "critical"
    [received] = receiver.alerts
    assert received["name"] == "performance_degradation"
    assert received["template_id"] == "bracket"
