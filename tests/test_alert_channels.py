"""Alert delivery against real receivers on 127.0.0.1: an aiosmtpd SMTP server (plain, and
STARTTLS with AUTH and a self-signed certificate), and http.server receivers standing in for a
Slack incoming webhook and a generic webhook that verifies the signature."""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from fresh_solver.operations.channels import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Alert,
    DeliveryError,
    EmailChannel,
    LogChannel,
    SlackChannel,
    WebhookChannel,
    build_channels,
    deliver,
    verify_signature,
)
from fresh_solver.operations.config import parse_config

SECRET = "s3cret-for-tests"


def _alert(**overrides) -> Alert:
    values = dict(name="performance_degradation", severity="critical", status="firing",
                  summary="bracket solves 2.1x slower than validated",
                  details={"median_solve_s": 6.3, "baseline_s": 3.0}, template_id="bracket",
                  started_at=1_700_000_000.0)
    values.update(overrides)
    return Alert(**values)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- SMTP ------------------------------------------------------------------------------------

class _Collector:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, _Collector]]:
    handler = _Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fresh-solver test SMTP")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def tls_smtp_server(tmp_path: Path) -> Iterator[tuple[Controller, _Collector, Path]]:
    """Requires STARTTLS, then AUTH as alerts / hunter2."""
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts"
              and auth_data.password == b"hunter2")
        return AuthResult(success=ok, handled=False)  # failed: aiosmtpd answers 535

    handler = _Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(),
                            tls_context=context, require_starttls=True, auth_required=True,
                            authenticator=authenticator)
    controller.start()
    try:
        yield controller, handler, cert_file
    finally:
        controller.stop()


def _email(controller: Controller, **settings) -> EmailChannel:
    return EmailChannel("mail", host="127.0.0.1", port=controller.port,
                        sender="fresh-solver@example.org", to=["oncall@example.org"],
                        timeout_s=5, **settings)


def test_email_delivered_with_severity_name_and_summary(smtp_server):
    controller, handler = smtp_server
    _email(controller).send(_alert())
    (envelope,) = handler.envelopes
    assert envelope.rcpt_tos == ["oncall@example.org"]
    mail = message_from_bytes(envelope.content)
    for text in ("critical", "performance_degradation", "2.1x slower than validated",
                 "FIRING"):
        assert text in mail["Subject"]
    body = mail.get_payload(decode=True).decode()
    assert "severity critical" in body and "bracket" in body and '"baseline_s": 3.0' in body
    assert mail["X-Fresh-Solver-Fingerprint"] == _alert().fingerprint


def test_email_resolved_notification(smtp_server):
    controller, handler = smtp_server
    _email(controller).send(_alert(status="resolved", resolved_at=1_700_000_600.0))
    mail = message_from_bytes(handler.envelopes[0].content)
    assert "RESOLVED" in mail["Subject"]
    assert "2023-11-14 22:23:20 UTC" in mail.get_payload(decode=True).decode()


def test_email_starttls_and_auth(tls_smtp_server, monkeypatch):
    controller, handler, cert_file = tls_smtp_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "hunter2")
    channel = _email(controller, starttls=True, ca_file=str(cert_file), username="alerts",
                     password_env="TEST_SMTP_PASSWORD")
    channel.send(_alert())
    (envelope,) = handler.envelopes
    assert "performance_degradation" in message_from_bytes(envelope.content)["Subject"]


def test_email_wrong_password_is_not_retryable(tls_smtp_server, monkeypatch):
    controller, handler, cert_file = tls_smtp_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    channel = _email(controller, starttls=True, ca_file=str(cert_file), username="alerts",
                     password_env="TEST_SMTP_PASSWORD")
    with pytest.raises(DeliveryError) as caught:
        channel.send(_alert())
    assert not caught.value.retryable and "535" in str(caught.value)
    assert handler.envelopes == []


def test_email_without_starttls_refused_by_a_server_requiring_it(tls_smtp_server):
    controller, handler, _ = tls_smtp_server
    with pytest.raises(DeliveryError) as caught:
        _email(controller).send(_alert())
    assert not caught.value.retryable and "530" in str(caught.value)


def test_email_certificate_not_trusted_is_not_retryable(tls_smtp_server):
    controller, _, _ = tls_smtp_server
    with pytest.raises(DeliveryError) as caught:
        _email(controller, starttls=True).send(_alert())  # system CAs only
    assert not caught.value.retryable and "certificate" in str(caught.value)


def test_email_starttls_not_offered(smtp_server):
    controller, handler = smtp_server
    with pytest.raises(DeliveryError) as caught:
        _email(controller, starttls=True).send(_alert())
    assert not caught.value.retryable and "STARTTLS" in str(caught.value)
    assert handler.envelopes == []


def test_email_password_variable_unset(smtp_server, monkeypatch):
    controller, _ = smtp_server
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    channel = _email(controller, username="alerts", password_env="TEST_SMTP_PASSWORD")
    with pytest.raises(DeliveryError, match="TEST_SMTP_PASSWORD is not set") as caught:
        channel.send(_alert())
    assert not caught.value.retryable


def test_email_server_down_is_retryable():
    channel = EmailChannel("mail", host="127.0.0.1", port=_free_port(), sender="a@example.org",
                           to=["b@example.org"], timeout_s=5)
    with pytest.raises(DeliveryError) as caught:
        channel.send(_alert())
    assert caught.value.retryable and caught.value.channel == "mail"


# --- HTTP ------------------------------------------------------------------------------------

class _Receiver:
    """An HTTP receiver in a thread: records each request, answers with the next status of
    ``statuses`` (the last one repeats)."""

    def __init__(self, statuses=(200,)):
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 \
                    else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no thanks")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/XYZSECRET"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_slack_message_delivered():
    with _Receiver() as receiver:
        SlackChannel("slack", url=receiver.url, timeout_s=5).send(_alert())
    (path, headers, body), = receiver.requests
    assert path == "/hooks/T000/B000/XYZSECRET"
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    for text in ("critical", "performance_degradation", "2.1x slower than validated"):
        assert text in payload["text"]
    kinds = [block["type"] for block in payload["blocks"]]
    assert kinds[0] == "header" and "context" in kinds
    assert "performance_degradation" in payload["blocks"][0]["text"]["text"]


def test_slack_url_from_environment(monkeypatch):
    with _Receiver() as receiver:
        monkeypatch.setenv("TEST_SLACK_URL", receiver.url)
        SlackChannel("slack", url_env="TEST_SLACK_URL", timeout_s=5).send(_alert())
    assert len(receiver.requests) == 1


def test_webhook_signed_and_verified_by_the_receiver(monkeypatch):
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    alert = _alert()
    with _Receiver() as receiver:
        WebhookChannel("hook", url=receiver.url, secret_env="TEST_WEBHOOK_SECRET",
                       timeout_s=5).send(alert)
    (_, headers, body), = receiver.requests
    assert verify_signature(SECRET, body, headers)
    assert headers[SIGNATURE_HEADER].startswith("sha256=")
    assert not verify_signature("another secret", body, headers)
    assert not verify_signature(SECRET, body.replace(b"critical", b"warning"), headers)
    later = int(headers[TIMESTAMP_HEADER]) + 3600
    assert not verify_signature(SECRET, body, headers, now=later)  # a replay an hour later
    lowered = {key.lower(): value for key, value in headers.items()}
    assert verify_signature(SECRET, body, lowered)
    assert Alert.from_dict(json.loads(body)) == alert


def test_webhook_without_secret_is_unsigned():
    with _Receiver() as receiver:
        WebhookChannel("hook", url=receiver.url, timeout_s=5).send(_alert())
    (_, headers, body), = receiver.requests
    assert SIGNATURE_HEADER not in headers
    assert not verify_signature(SECRET, body, headers)
    assert json.loads(body)["format"] == "fresh-solver/alert-v1"


def test_webhook_secret_variable_unset_sends_nothing(monkeypatch):
    monkeypatch.delenv("TEST_WEBHOOK_SECRET", raising=False)
    with _Receiver() as receiver:
        channel = WebhookChannel("hook", url=receiver.url, secret_env="TEST_WEBHOOK_SECRET")
        with pytest.raises(DeliveryError) as caught:
            channel.send(_alert())
    assert not caught.value.retryable and receiver.requests == []


@pytest.mark.parametrize("status, retryable", [(500, True), (503, True), (429, True),
                                               (400, False), (404, False), (301, False)])
def test_http_failures_classified(status, retryable):
    with _Receiver([status]) as receiver, pytest.raises(DeliveryError) as caught:
        WebhookChannel("hook", url=receiver.url, timeout_s=5).send(_alert())
    assert caught.value.retryable is retryable
    assert f"HTTP {status}" in str(caught.value)
    assert "XYZSECRET" not in str(caught.value)  # the URL's secret path is never shown


def test_receiver_down_is_retryable():
    url = f"http://127.0.0.1:{_free_port()}/hooks/T000/B000/XYZSECRET"
    for channel in (SlackChannel("slack", url=url, timeout_s=5),
                    WebhookChannel("hook", url=url, timeout_s=5)):
        with pytest.raises(DeliveryError) as caught:
            channel.send(_alert())
        assert caught.value.retryable
        assert "XYZSECRET" not in str(caught.value)


def test_deliver_retries_retryable_failures_then_raises():
    with _Receiver([500]) as receiver:
        channel = WebhookChannel("hook", url=receiver.url, timeout_s=5)
        with pytest.raises(DeliveryError, match="HTTP 500"):
            deliver(channel, _alert(), attempts=4, base_delay=0.001)
    assert len(receiver.requests) == 4


def test_deliver_does_not_retry_a_permanent_failure():
    with _Receiver([400]) as receiver:
        channel = WebhookChannel("hook", url=receiver.url, timeout_s=5)
        with pytest.raises(DeliveryError, match="HTTP 400"):
            deliver(channel, _alert(), attempts=4, base_delay=0.001)
    assert len(receiver.requests) == 1


def test_deliver_succeeds_when_the_receiver_recovers():
    with _Receiver([503, 502, 200]) as receiver:
        deliver(SlackChannel("slack", url=receiver.url, timeout_s=5), _alert(),
                attempts=3, base_delay=0.001)
    assert len(receiver.requests) == 3


def test_deliver_backs_off_exponentially(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    url = f"http://127.0.0.1:{_free_port()}/"
    with pytest.raises(DeliveryError):
        deliver(WebhookChannel("hook", url=url, timeout_s=5), _alert(), attempts=4,
                base_delay=0.5)
    assert slept == [0.5, 1.0, 2.0]


# --- log, the record, building from config ---------------------------------------------------

def test_log_channel_levels_by_severity_and_status(caplog):
    channel = LogChannel("log")
    with caplog.at_level(logging.INFO, logger="fresh_solver.alerts"):
        channel.send(_alert())
        channel.send(_alert(severity="warning"))
        channel.send(_alert(severity="info"))
        channel.send(_alert(status="resolved", resolved_at=1_700_000_600.0))
    records = [r for r in caplog.records if r.name == "fresh_solver.alerts"]
    assert [r.levelno for r in records] == [logging.ERROR, logging.WARNING, logging.INFO,
                                            logging.INFO]
    assert "performance_degradation" in records[0].getMessage()
    assert "2.1x slower" in records[0].getMessage()


def test_alert_record():
    alert = _alert(summary="two\nlines", details={"when": datetime.date(2024, 1, 2)})
    assert alert.summary == "two lines"
    assert alert.details == {"when": "2024-01-02"}
    assert alert.fingerprint == _alert(severity="warning").fingerprint
    assert alert.fingerprint != _alert(template_id="other").fingerprint
    assert Alert.from_dict(alert.to_dict()) == alert
    with pytest.raises(ValueError, match="severity"):
        _alert(severity="high")
    with pytest.raises(ValueError, match="status"):
        _alert(status="open")


def test_build_channels_from_config(tmp_path):
    text = """
[channels.mail]
type = "email"
host = "127.0.0.1"
port = 2525
from = "fresh-solver@example.org"
to = ["oncall@example.org"]

[channels.slack]
type = "slack"
url_env = "TEST_SLACK_URL"
timeout_s = 3

[channels.hook]
type = "webhook"
url = "http://127.0.0.1:9/x"
secret_env = "TEST_WEBHOOK_SECRET"

[channels.log]
type = "log"
"""
    channels = build_channels(parse_config(text, str(tmp_path / "ops.toml")))
    assert {name: type(c) for name, c in channels.items()} == {
        "mail": EmailChannel, "slack": SlackChannel, "hook": WebhookChannel, "log": LogChannel}
    assert channels["mail"].sender == "fresh-solver@example.org"
    assert channels["mail"].port == 2525 and channels["mail"].timeout_s == 10.0
    assert channels["slack"].timeout_s == 3.0 and channels["slack"].url_env == "TEST_SLACK_URL"
    assert channels["hook"].secret_env == "TEST_WEBHOOK_SECRET"
