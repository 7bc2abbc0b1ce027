"""Alert delivery: the alert record, the channels that carry it, and retries with backoff.

A channel turns an :class:`Alert` into one message (a mail, a Slack post, a signed JSON POST, a
log line) and either delivers it or raises :class:`DeliveryError`, whose ``retryable`` says
whether trying again later can help (connection refused, timeout, 5xx, 429, SMTP 4xx) or not
(4xx, SMTP 5xx, a missing secret, TLS not offered). :func:`deliver` retries the retryable ones
a few times with exponential backoff; the alert manager's outbox keeps what still failed.

Secrets never live in the config file or the repository: the SMTP password, a webhook's signing
secret and (if you like) a webhook URL are read from environment variables whose *names* the
config gives, at send time, so rotating one needs no reload. Error messages never contain them
(a URL is shown as scheme and host only).

The webhook signature scheme (what :func:`verify_signature` checks):
``X-Fresh-Solver-Timestamp: <unix seconds>`` and
``X-Fresh-Solver-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``, where
``body`` is the exact bytes of the request body and the secret is UTF-8 encoded. Signing the
timestamp lets a receiver refuse replays older than its tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

from fresh_solver.operations.rules import SEVERITIES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fresh_solver.operations.config import OperationsConfig

log = logging.getLogger(__name__)
alert_log = logging.getLogger("fresh_solver.alerts")

STATUSES = ("firing", "resolved")
ALERT_FORMAT = "fresh-solver/alert-v1"
DEFAULT_TIMEOUT_S = 10.0
SIGNATURE_HEADER = "X-Fresh-Solver-Signature"
TIMESTAMP_HEADER = "X-Fresh-Solver-Timestamp"
SIGNATURE_TOLERANCE_S = 300.0
_USER_AGENT = "fresh-solver-alerts/1"


def alert_fingerprint(name: str, template_id: str | None) -> str:
    """The default identity of an alert: one per rule and template, so a rule firing again for
    the same template is the same alert (deduplicated), another template's is not."""
    key = json.dumps([name, template_id]).encode()
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One notification. ``details`` is JSON-able (values JSON cannot hold become strings);
    ``summary`` is one line (whitespace runs collapse); an empty ``fingerprint`` becomes
    :func:`alert_fingerprint` of name and template. Times are epoch seconds."""

    name: str
    severity: str
    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict, hash=False)
    fingerprint: str = ""
    template_id: str | None = None
    started_at: float = field(default_factory=time.time)
    resolved_at: float | None = None

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity {self.severity!r} is not one of {SEVERITIES}")
        if self.status not in STATUSES:
            raise ValueError(f"alert status {self.status!r} is not one of {STATUSES}")
        object.__setattr__(self, "summary", " ".join(str(self.summary).split()))
        object.__setattr__(self, "details", json.loads(json.dumps(self.details, default=str)))
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint",
                               alert_fingerprint(self.name, self.template_id))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``format: fresh-solver/alert-v1``): the webhook body, and what an
        outbox stores to send it again later."""
        return {"format": ALERT_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """The inverse of :meth:`to_dict` (unknown keys, such as ``format``, are ignored)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class DeliveryError(Exception):
    """A channel could not deliver an alert. ``retryable``: whether the same message may
    succeed later (the receiver was down or overloaded) rather than never (refused,
    misconfigured)."""

    def __init__(self, message: str, *, retryable: bool, channel: str | None = None):
        self.retryable = retryable
        self.channel = channel
        super().__init__(f"channel {channel}: {message}" if channel else message)


class Setting(NamedTuple):
    """One key of a channel's config table: its kind (``str``, ``int``, ``number``, ``bool``,
    ``str_list``), whether it is required, its default, and what it means."""

    kind: str
    required: bool = False
    default: Any = None
    doc: str = ""


_TIMEOUT = Setting("number", False, DEFAULT_TIMEOUT_S,
                   "Seconds allowed for each network operation (connect, each read).")


class Channel(ABC):
    """A named way to deliver alerts. Subclasses declare their config keys in ``SETTINGS``
    (checked by the config loader) and deliver in :meth:`send`."""

    type: ClassVar[str]
    SETTINGS: ClassVar[dict[str, Setting]]

    def __init__(self, name: str, *, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.name = name
        self.timeout_s = float(timeout_s)

    @abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver ``alert`` once; raise :class:`DeliveryError` if it was not delivered."""

    @classmethod
    def from_settings(cls, name: str, settings: dict[str, Any]) -> Channel:
        """A channel from its validated config table (keys of ``SETTINGS``)."""
        return cls(name, **settings)

    @classmethod
    def settings_problems(cls, settings: dict[str, Any]) -> list[tuple[str | None, str]]:
        """Problems no single key shows, as (key or None, message); the loader adds where."""
        timeout = settings.get("timeout_s")
        return [("timeout_s", "must be > 0")] if timeout is not None and timeout <= 0 else []

    def _error(self, message: str, retryable: bool) -> DeliveryError:
        return DeliveryError(message, retryable=retryable, channel=self.name)

    def _from_env(self, variable: str, what: str) -> str:
        value = os.environ.get(variable)
        if not value:
            raise self._error(f"{what}: environment variable {variable} is not set",
                              retryable=False)
        return value


# --- rendering -----------------------------------------------------------------------------

def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def subject(alert: Alert) -> str:
    """One line naming status, severity, rule, template and summary: the mail subject, the
    Slack notification text and the log line."""
    where = f" [{alert.template_id}]" if alert.template_id else ""
    line = (f"[fresh-solver] {alert.status.upper()} {alert.severity}: "
            f"{alert.name}{where}: {alert.summary}")
    return line if len(line) <= 200 else line[:199] + "…"


def render_text(alert: Alert) -> str:
    """The plain-text body of a mail: the summary, the facts, and the details as JSON."""
    lines = [f"{alert.name} is {alert.status.upper()} (severity {alert.severity})", "",
             alert.summary, "",
             f"template     {alert.template_id or '-'}",
             f"started      {_when(alert.started_at)}",
             f"resolved     {_when(alert.resolved_at)}",
             f"fingerprint  {alert.fingerprint}"]
    if alert.details:
        lines += ["", "details:", json.dumps(alert.details, indent=2, sort_keys=True)]
    return "\n".join(lines) + "\n"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SLACK_ICON = {"critical": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (shown in notifications) and Block Kit
    blocks (header, summary, facts, details, fingerprint), within Slack's length limits."""
    icon = ":white_check_mark:" if alert.status == "resolved" else _SLACK_ICON[alert.severity]
    header = f"{icon} {alert.status.upper()} {alert.severity}: {alert.name}"
    facts = [("Severity", alert.severity), ("Status", alert.status),
             ("Template", alert.template_id or "-"), ("Started", _when(alert.started_at))]
    if alert.resolved_at is not None:
        facts.append(("Resolved", _when(alert.resolved_at)))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(alert.summary)}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{label}*\n{_slack_escape(value)}"}
            for label, value in facts]},
    ]
    if alert.details:
        details = json.dumps(alert.details, indent=2, sort_keys=True)
        if len(details) > 2800:
            details = details[:2799] + "…"
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": f"```{_slack_escape(details)}```"}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"fingerprint `{alert.fingerprint}`"}]})
    return {"text": _slack_escape(subject(alert)), "blocks": blocks}


def alert_json(alert: Alert) -> bytes:
    """The webhook body: :meth:`Alert.to_dict` as compact UTF-8 JSON with sorted keys."""
    return json.dumps(alert.to_dict(), sort_keys=True, separators=(",", ":")).encode()


# --- signatures ----------------------------------------------------------------------------

def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Fresh-Solver-Signature`` value for ``body`` sent at ``timestamp``."""
    message = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, headers: Mapping[str, str], *,
                     tolerance_s: float = SIGNATURE_TOLERANCE_S,
                     now: float | None = None) -> bool:
    """For a receiver: whether ``body`` (the exact bytes received) was signed with ``secret``
    no more than ``tolerance_s`` from ``now``. ``headers`` is any mapping of the request's
    headers (names are matched case-insensitively). Compares in constant time."""
    lowered = {str(key).lower(): value for key, value in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower())
    given = lowered.get(SIGNATURE_HEADER.lower())
    if stamp is None or given is None:
        return False
    try:
        timestamp = int(stamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, body, timestamp), given)


# --- HTTP ----------------------------------------------------------------------------------

def _redact(url: str) -> str:
    """Scheme and host only: webhook URLs (Slack's above all) carry their secret in the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook target, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if any(c.isspace() for c in url):
        return "must not contain spaces"
    try:
        parts.port  # noqa: B018 (urllib checks the port when it is read)
    except ValueError:
        return f"has a bad port ({parts.netloc.rpartition(':')[2]!r}: 0-65535)"
    return None


class _HttpChannel(Channel):
    """A JSON POST to a URL given in the config (``url``) or in an environment variable named
    there (``url_env``)."""

    SETTINGS: ClassVar[dict[str, Setting]] = {
        "url": Setting("str", doc="The URL to POST to (prefer url_env: such URLs are secrets)."),
        "url_env": Setting("str", doc="Name of the environment variable holding the URL."),
        "timeout_s": _TIMEOUT,
    }

    def __init__(self, name: str, *, url: str | None = None, url_env: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__(name, timeout_s=timeout_s)
        self.url = url
        self.url_env = url_env

    @classmethod
    def settings_problems(cls, settings: dict[str, Any]) -> list[tuple[str | None, str]]:
        problems = super().settings_problems(settings)
        url, url_env = settings.get("url"), settings.get("url_env")
        if (url is None) == (url_env is None):
            problems.append((None, "give exactly one of url and url_env"))
        elif url is not None and (why := url_problem(url)):
            problems.append(("url", why))
        return problems

    def _target(self) -> str:
        if self.url is not None:
            return self.url
        url = self._from_env(self.url_env, "webhook URL")
        if why := url_problem(url):
            raise self._error(f"the URL in {self.url_env} {why}", retryable=False)
        return url

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """POST and classify: 2xx delivered; 408, 425, 429, 5xx and network faults retryable;
        redirects (not followed: a POST must reach the configured URL) and other 4xx not."""
        import requests  # 0.2-0.4 s: paid by the processes that post, not by every config reader

        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT, **headers}
        try:
            response = requests.post(url, data=body, headers=headers, timeout=self.timeout_s,
                                     allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise self._error(f"{type(exc).__name__} posting to {_redact(url)}",
                              retryable=True) from None
        except requests.RequestException as exc:
            raise self._error(f"{type(exc).__name__} posting to {_redact(url)}",
                              retryable=False) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        retryable = status >= 500 or status in (408, 425, 429)
        answer = " ".join(response.text.split())[:200]
        raise self._error(f"{_redact(url)} answered HTTP {status}: {answer}", retryable)


class SlackChannel(_HttpChannel):
    """A Slack incoming webhook (or anything that takes its payload, e.g. Mattermost)."""

    type = "slack"

    def send(self, alert: Alert) -> None:
        """Post :func:`slack_payload` of the alert."""
        body = json.dumps(slack_payload(alert)).encode()
        self._post(self._target(), body, {})


class WebhookChannel(_HttpChannel):
    """A generic JSON webhook: the body is :func:`alert_json`; with ``secret_env`` set, each
    request is signed (module doc, :func:`verify_signature`)."""

    type = "webhook"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        **_HttpChannel.SETTINGS,
        "secret_env": Setting("str", doc="Name of the environment variable holding the HMAC "
                                         "signing secret; without it requests are unsigned."),
    }

    def __init__(self, name: str, *, url: str | None = None, url_env: str | None = None,
                 secret_env: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__(name, url=url, url_env=url_env, timeout_s=timeout_s)
        self.secret_env = secret_env

    def send(self, alert: Alert) -> None:
        """Post the alert's JSON, signed when a secret is configured."""
        url = self._target()
        body = alert_json(alert)
        headers = {"X-Fresh-Solver-Fingerprint": alert.fingerprint}
        if self.secret_env is not None:
            secret = self._from_env(self.secret_env, "signing secret")
            timestamp = int(time.time())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = signature(secret, body, timestamp)
        self._post(url, body, headers)


# --- email ---------------------------------------------------------------------------------

class EmailChannel(Channel):
    """Mail through an SMTP server (smtplib), optionally upgraded with STARTTLS (certificate
    and host name verified) and authenticated with a password from the environment."""

    type = "email"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "host": Setting("str", True, doc="SMTP server host."),
        "port": Setting("int", False, 25, "SMTP server port (587 is the usual STARTTLS port)."),
        "from": Setting("str", True, doc="Sender address."),
        "to": Setting("str_list", True, doc="Recipient addresses."),
        "starttls": Setting("bool", False, False,
                            "Upgrade the connection with STARTTLS; delivery fails if the "
                            "server does not offer it."),
        "ca_file": Setting("str", doc="CA bundle (PEM) to verify the server with, instead of "
                                      "the system's (a private CA)."),
        "username": Setting("str", doc="SMTP AUTH user; needs password_env."),
        "password_env": Setting("str", doc="Name of the environment variable holding the SMTP "
                                           "password."),
        "timeout_s": _TIMEOUT,
    }

    def __init__(self, name: str, *, host: str, sender: str, to: list[str], port: int = 25,
                 starttls: bool = False, ca_file: str | None = None,
                 username: str | None = None, password_env: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__(name, timeout_s=timeout_s)
        self.host, self.port, self.sender, self.to = host, int(port), sender, list(to)
        self.starttls, self.ca_file = starttls, ca_file
        self.username, self.password_env = username, password_env

    @classmethod
    def from_settings(cls, name: str, settings: dict[str, Any]) -> EmailChannel:
        """As the base, with the config's ``from`` passed as ``sender``."""
        settings = dict(settings)
        settings["sender"] = settings.pop("from")
        return cls(name, **settings)

    @classmethod
    def settings_problems(cls, settings: dict[str, Any]) -> list[tuple[str | None, str]]:
        problems = super().settings_problems(settings)
        if (settings.get("username") is None) != (settings.get("password_env") is None):
            problems.append((None, "give both username and password_env, or neither"))
        if not settings.get("to"):
            problems.append(("to", "needs at least one recipient"))
        problems += [("to", f"{address!r} is not a mail address")
                     for address in settings.get("to") or [] if "@" not in address]
        if "@" not in (settings.get("from") or "@"):
            problems.append(("from", f"{settings['from']!r} is not a mail address"))
        if not 0 < settings.get("port", 25) < 65536:
            problems.append(("port", "must be between 1 and 65535"))
        ca_file = settings.get("ca_file")
        if ca_file is not None and not settings.get("starttls"):
            problems.append(("ca_file", "is used only with starttls = true"))
        elif ca_file is not None and not os.path.isfile(ca_file):
            problems.append(("ca_file", f"{ca_file} is not a file"))
        return problems

    def message(self, alert: Alert) -> EmailMessage:
        """The mail for ``alert``: subject :func:`subject`, body :func:`render_text`, and
        ``X-Fresh-Solver-*`` headers a mail filter can route on."""
        mail = EmailMessage()
        mail["Subject"] = subject(alert)
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        mail["X-Fresh-Solver-Alert"] = alert.name
        mail["X-Fresh-Solver-Severity"] = alert.severity
        mail["X-Fresh-Solver-Status"] = alert.status
        mail["X-Fresh-Solver-Fingerprint"] = alert.fingerprint
        mail.set_content(render_text(alert))
        return mail

    def send(self, alert: Alert) -> None:
        """One SMTP session: connect, STARTTLS if configured, AUTH if configured, send.
        SMTP 4xx and network faults are retryable; 5xx, missing STARTTLS/AUTH support, a
        certificate that does not verify and a missing password are not."""
        mail = self.message(alert)
        password = (self._from_env(self.password_env, "SMTP password")
                    if self.password_env is not None else None)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                if self.username is not None:
                    smtp.login(self.username, password)
                refused = smtp.send_message(mail)
        except smtplib.SMTPNotSupportedError as exc:
            raise self._error(f"{self.host}:{self.port} does not support it: {exc}",
                              retryable=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise self._error(f"every recipient refused: {exc.recipients}",
                              retryable=all(400 <= c < 500 for c in codes)) from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            raise self._error(f"{self.host}:{self.port} answered {exc.smtp_code} {text}",
                              retryable=400 <= exc.smtp_code < 500) from None
        except ssl.SSLCertVerificationError as exc:
            raise self._error(f"{self.host}:{self.port} certificate: {exc.verify_message}",
                              retryable=False) from None
        except OSError as exc:  # refused, timeout, disconnected (SMTPException is an OSError)
            raise self._error(f"{self.host}:{self.port}: {type(exc).__name__}: {exc}",
                              retryable=True) from None
        if refused:
            log.warning("channel %s: alert %s not delivered to %s", self.name, alert.name,
                        ", ".join(refused))


# --- log -----------------------------------------------------------------------------------

class LogChannel(Channel):
    """The ``fresh_solver.alerts`` logger: firing critical alerts at ERROR, firing warnings at
    WARNING, info alerts and resolved notifications at INFO. Always delivers."""

    type = "log"
    SETTINGS: ClassVar[dict[str, Setting]] = {}

    def send(self, alert: Alert) -> None:
        """Log :func:`subject` with the fingerprint and details."""
        if alert.status == "resolved" or alert.severity == "info":
            level = logging.INFO
        else:
            level = logging.ERROR if alert.severity == "critical" else logging.WARNING
        alert_log.log(level, "%s (fingerprint %s) %s", subject(alert), alert.fingerprint,
                      json.dumps(alert.details, sort_keys=True))


CHANNEL_TYPES: dict[str, type[Channel]] = {
    cls.type: cls for cls in (EmailChannel, SlackChannel, WebhookChannel, LogChannel)}


def build_channels(config: OperationsConfig) -> dict[str, Channel]:
    """The configured channels by name, ready to send (secrets are read when sending)."""
    return {name: CHANNEL_TYPES[channel.type].from_settings(name, channel.settings)
            for name, channel in config.channels.items()}


def deliver(channel: Channel, alert: Alert, attempts: int = 3, base_delay: float = 0.5) -> None:
    """Send with retries: a retryable failure is tried again after ``base_delay``, then twice
    that, and so on, up to ``attempts`` tries in all; a non-retryable one is not retried. The
    last :class:`DeliveryError` is raised when nothing got through, for the outbox to keep."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            channel.send(alert)
            return
        except DeliveryError as exc:
            if not exc.retryable or attempt == attempts:
                raise
            delay = base_delay * 2 ** (attempt - 1)
            log.warning("%s; try %d of %d, next in %.2f s", exc, attempt, attempts, delay)
            time.sleep(delay)
