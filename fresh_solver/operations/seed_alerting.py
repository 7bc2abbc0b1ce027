"""The source document's alerting set-up calls, mapped onto the operations config.

    manager.add_channel(AlertChannel(name="critical_alerts", type="email",
                                     config={"recipients": ["oncall@company.com"]}))
    manager.add_rule(AlertRule(name="performance_degradation",
                               condition="performance_change > 0.5",
                               severity=AlertSeverity.HIGH, channels=["critical_alerts"]))

An :class:`AlertChannel` is a ``[channels.<name>]`` table of ``docs/alerting.md``: ``type`` is
``email``, ``slack``, ``webhook`` or ``log`` and ``config`` holds that type's keys, checked
as the config loader checks them. The document's ``recipients`` is the email channel's ``to``.
An email channel that names no SMTP server (``host``) takes the server settings (host, port,
from, starttls, ca_file, username, password_env, timeout_s) of the configured email channel
(the first in the file): the document gives only recipients, the file says where mail goes.

An :class:`AlertRule` is a ``[[rules]]`` table; a rule of the same name replaces the
configured one (the default config has a ``performance_degradation`` rule). Severity words:
the project has ``critical``, ``warning`` and ``info``; :class:`AlertSeverity` maps the
document's ``HIGH`` (and ``CRITICAL``) to ``critical``, ``MEDIUM`` (and ``WARNING``) to
``warning``, ``LOW`` (and ``INFO``) to ``info``.

Both change the one :class:`~fresh_solver.operations.alerts.AlertManager` they are added to,
in this process. Channels and rules every process (the health DAG, ``serve``) must use belong
in the config file (``FRESH_SOLVER_CONFIG``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.operations.channels import CHANNEL_TYPES
from fresh_solver.operations.config import ChannelConfig, OperationsConfig, _type_problem
from fresh_solver.operations.rules import Rule

_SERVER_KEYS = ("host", "port", "from", "starttls", "ca_file", "username", "password_env",
                "timeout_s")


class AlertSeverity(StrEnum):
    """The document's severities as the project's words (module docstring)."""

    CRITICAL = "critical"
    HIGH = "critical"
    WARNING = "warning"
    MEDIUM = "warning"
    INFO = "info"
    LOW = "info"


@dataclass(frozen=True)
class AlertChannel:
    """The document's channel: a name, a channel type and that type's settings."""

    name: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRule:
    """The document's rule: a condition (docs/alerting.md's fields), a severity (a word or
    an :class:`AlertSeverity`) and the channels it goes to (None: every channel)."""

    name: str
    condition: str
    severity: str = AlertSeverity.WARNING
    channels: Sequence[str] | None = None
    repeat_interval_minutes: float = 60.0
    cooldown_minutes: float = 15.0
    template: str | None = None
    description: str = ""


def severity_word(severity: Any) -> str:
    """The project's severity word for an :class:`AlertSeverity`, a word or a member name
    (``"HIGH"``)."""
    if isinstance(severity, str):
        if severity in AlertSeverity._value2member_map_:
            return AlertSeverity(severity).value
        if severity.upper() in AlertSeverity.__members__:
            return AlertSeverity[severity.upper()].value
    raise InputError(f"severity {severity!r}: expected one of "
                     f"{', '.join(AlertSeverity.__members__)} (or critical, warning, info)")


def channel_config(channel: AlertChannel, config: OperationsConfig) -> ChannelConfig:
    """The checked ``[channels.<name>]`` equivalent of ``channel``; every problem named."""
    label = f"AlertChannel {channel.name!r}"
    cls = CHANNEL_TYPES.get(channel.type)
    if cls is None:
        raise InputError(f"{label}: unknown channel type {channel.type!r} (known: "
                         f"{', '.join(CHANNEL_TYPES)})")
    table = dict(channel.config)
    if "recipients" in table:
        if "to" in table:
            raise InputError(f"{label}: give recipients or to, not both")
        table["to"] = table.pop("recipients")
    if channel.type == "email" and "host" not in table:
        server = next((c.settings for c in config.channels.values() if c.type == "email"),
                      None)
        if server is None:
            raise InputError(f"{label}: no SMTP server: give host and from, or configure an "
                             "email channel in the operations config (docs/alerting.md)")
        table = {**{k: server[k] for k in _SERVER_KEYS if server.get(k) is not None}, **table}
    problems, settings = [], {}
    for key, value in table.items():
        spec = cls.SETTINGS.get(key)
        if spec is None:
            problems.append(f"{label}: {key}: unknown key (known: "
                            f"{', '.join(cls.SETTINGS) or 'none'})")
        elif why := _type_problem(value, spec.kind):
            problems.append(f"{label}: {key}: {why}")
        else:
            settings[key] = float(value) if spec.kind == "number" else value
    for key, spec in cls.SETTINGS.items():
        if key not in table:
            if spec.required:
                problems.append(f"{label}: missing required key {key!r}")
            else:
                settings[key] = spec.default
    if not problems:
        problems = [f"{label}: {k}: {m}" if k else f"{label}: {m}"
                    for k, m in cls.settings_problems(settings)]
    if problems:
        raise InputError(problems)
    return ChannelConfig(channel.name, channel.type, settings)


def add_channel(config: OperationsConfig, channel: AlertChannel) -> OperationsConfig:
    """``config`` with ``channel`` added (or replacing the one of that name)."""
    checked = channel_config(channel, config)
    return dataclasses.replace(config, channels={**config.channels, channel.name: checked})


def add_rule(config: OperationsConfig, rule: AlertRule) -> OperationsConfig:
    """``config`` with ``rule`` added, replacing a rule of the same name; its channels must
    be configured (None routes to every channel, as in the file)."""
    channels = tuple(rule.channels) if rule.channels is not None else None  # None: all
    unknown = [c for c in channels or () if c not in config.channels]
    if unknown:
        raise InputError(f"AlertRule {rule.name!r}: no channel named {unknown} (configured: "
                         f"{', '.join(config.channels) or 'none'})")
    checked = Rule(rule.name, rule.condition, severity_word(rule.severity), channels,
                   rule.repeat_interval_minutes, rule.cooldown_minutes, rule.template,
                   rule.description)
    rules = tuple(r for r in config.rules if r.name != rule.name) + (checked,)
    return dataclasses.replace(config, rules=rules)
