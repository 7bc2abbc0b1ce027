"""The operations config: monitor settings, alert channels and alert rules in one TOML file.

The file is ``FRESH_SOLVER_CONFIG`` (or the path given to :func:`load_config`); without one the
built-in default applies: a single ``log`` channel and :data:`DEFAULT_RULES`. Everything is
checked when the file is loaded: unknown sections and keys, value types, channel types and
their required keys, rules routed to channels that do not exist, conditions that do not parse
or name unknown fields. A bad file raises one :class:`~fresh_solver.errors.InputError` listing
every problem, each as ``<file>, line <n>: [<table>] <what>``; TOML syntax errors carry
tomllib's own line, the others the line of the offending key (or of its table's header).
The reference with an example is ``docs/alerting.md``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.operations.channels import CHANNEL_TYPES, Setting
from fresh_solver.operations.rules import SEVERITIES, ConditionError, Rule, compile_condition

CONFIG_ENV = "FRESH_SOLVER_CONFIG"
DEFAULT_CHANNEL = "log"


@dataclass(frozen=True)
class MonitorConfig:
    """``[monitor]``: how long solve records are kept, the window health and rules look at,
    and the monitor store's SQLAlchemy URL (None: the store's own default)."""

    retention_hours: float = 168.0
    window_minutes: float = 60.0
    db_url: str | None = None


@dataclass(frozen=True)
class ChannelConfig:
    """``[channels.<name>]``: the channel type and its settings, defaults filled in."""

    name: str
    type: str
    settings: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class OperationsConfig:
    """The whole file. ``source`` is the file it came from (None: the built-in default).
    A rule without routing keeps ``channels`` None: every channel configured when it fires,
    channels added later through the API included."""

    monitor: MonitorConfig
    channels: dict[str, ChannelConfig] = field(hash=False)
    rules: tuple[Rule, ...]
    source: str | None = None


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("performance_degradation", "performance_change > 0.5", "critical",
         description="The window's median solve time is more than 50 % above the Production "
                     "version's validated baseline (the source document's rule, HIGH there)."),
    Rule("error_rate_high", "solves >= 10 and error_rate > 0.05", "critical",
         description="More than 5 % of at least 10 solves in the window found no solution "
                     "or failed."),
    Rule("health_critical", 'status == "critical"', "critical",
         description="The overall health status is critical."),
    Rule("parameter_fallbacks", "fallbacks > 0", "warning",
         description="Production solves ran on fallback parameters (registry unreachable or "
                     "slow, or an invalid parameter set)."),
    Rule("production_refusals", "refusals > 0", "warning",
         description="A Production version was refused (not validated, or its evidence does "
                     "not match) and the previous good version served."),
)
"""The rules used when the config file has no ``rules`` key (``rules = []`` means none)."""


def default_config() -> OperationsConfig:
    """The config without a file: one ``log`` channel and :data:`DEFAULT_RULES`, routed to
    every channel (so far, that one)."""
    return OperationsConfig(
        monitor=MonitorConfig(),
        channels={DEFAULT_CHANNEL: ChannelConfig(DEFAULT_CHANNEL, "log", {})},
        rules=DEFAULT_RULES)


def load_config(path: str | os.PathLike[str] | None = None) -> OperationsConfig:
    """The operations config from ``path``, else from the file ``FRESH_SOLVER_CONFIG`` names,
    else :func:`default_config`. Raises InputError (naming file and line) for a bad file."""
    env_problems = _environment_problems()
    named_by = ""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
        if path is None:
            if env_problems:
                raise InputError(env_problems)
            return default_config()
        named_by = f" (named by {CONFIG_ENV})"
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(env_problems + [f"{path}{named_by}: cannot read the config file: "
                                         f"{getattr(exc, 'strerror', None) or exc}"]) from None
    try:
        config = parse_config(text, str(path))
    except InputError as exc:
        raise InputError(env_problems + exc.problems) from None
    if env_problems:
        raise InputError(env_problems)
    return config


def _environment_problems() -> list[str]:
    """What the environment overrides of the file get wrong: ``FRESH_SOLVER_DB_URL`` wins
    over ``[monitor] db_url``, so it is checked as that key is."""
    url = os.environ.get("FRESH_SOLVER_DB_URL")
    if not url:
        return []
    from fresh_solver.operations.store import safe_url, url_problem  # SQLAlchemy: when set

    why = url_problem(url)
    return [f"FRESH_SOLVER_DB_URL {safe_url(url)!r} {why}"] if why else []


def parse_config(text: str, source: str) -> OperationsConfig:
    """The config in ``text``; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if match:
            line, where = int(match[1]), f", column {match[2]}"
        else:  # "(at end of document)"
            line, where = max(1, len(text.splitlines())), ""
        what = re.sub(r"\s*\(at [^)]*\)$", "", message)
        raise InputError(f"{source}, line {line}{where}: invalid TOML: {what}") from None
    return _Loader(text, source).load(data)


_SECTIONS = ("monitor", "channels", "rules")
_MONITOR: dict[str, Setting] = {
    "retention_hours": Setting("number", False, 168.0, "Hours solve records are kept."),
    "window_minutes": Setting("number", False, 60.0, "The recent window health looks at."),
    "db_url": Setting("str", doc="SQLAlchemy URL of the monitor store."),
}
_RULE: dict[str, Setting] = {
    "name": Setting("str", True, doc="Unique rule name; the alert's name."),
    "condition": Setting("str", True, doc="When the rule fires (docs/alerting.md)."),
    "severity": Setting("str", False, "warning", "critical, warning or info."),
    "channels": Setting("str_list", doc="Channel names to send to; default all."),
    "repeat_interval_minutes": Setting("number", False, 60.0,
                                       "Re-notify a still-firing alert this often."),
    "cooldown_minutes": Setting("number", False, 15.0,
                                "Quiet time after a resolve before it may fire again."),
    "template": Setting("str", doc="Only contexts of this template id (glob allowed)."),
    "description": Setting("str", False, "", "What the rule means, for people."),
}
_SECRET_KEYS = {"password": "password_env", "secret": "secret_env", "token": "url_env"}
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_HEADER = re.compile(r"""^\s*\[\[?\s*[\w."' -]+\]\]?\s*(#.*)?$""")


def _type_problem(value: Any, kind: str) -> str | None:
    """Why ``value`` is not of the setting kind, or None."""
    if kind == "str":
        ok = isinstance(value, str)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "bool":
        ok = isinstance(value, bool)
    else:  # str_list
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    names = {"str": "a string", "int": "an integer", "number": "a number",
             "bool": "true or false", "str_list": "a list of strings"}
    return None if ok else f"must be {names[kind]}, not {value!r}"


class _Loader:
    """Validates parsed TOML against the schema, collecting every problem with its line."""

    def __init__(self, text: str, source: str):
        self.lines = text.splitlines()
        self.source = source
        self.problems: list[tuple[int, str]] = []

    # -- where ---------------------------------------------------------------------------

    def _header(self, pattern: str, nth: int = 0) -> int | None:
        """1-based line of the ``nth`` table header matching ``pattern``."""
        regex = re.compile(rf"^\s*{pattern}\s*(#.*)?$")
        found = [i + 1 for i, line in enumerate(self.lines) if regex.match(line)]
        return found[nth] if nth < len(found) else None

    def _key(self, header: int | None, key: str | None) -> int:
        """Line of ``key`` in the table whose header is line ``header`` (without a header: the
        first assignment of the key anywhere); else the header's line; else the first line
        that mentions the key; else 1."""
        if key is not None:
            regex = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}")\s*=""")
            for i in range(header or 0, len(self.lines)):
                if header is not None and _HEADER.match(self.lines[i]):
                    break
                if regex.match(self.lines[i]):
                    return i + 1
        if header is not None:
            return header
        for i, line in enumerate(self.lines):
            if key and key in line:
                return i + 1
        return 1

    def _problem(self, line: int, table: str, message: str) -> None:
        self.problems.append((line, f"{self.source}, line {line}: {table} {message}"))

    # -- what ----------------------------------------------------------------------------

    def _settings(self, table: dict[str, Any], schema: dict[str, Setting], label: str,
                  header: int | None, skip: tuple[str, ...] = ()
                  ) -> tuple[dict[str, Any], set[str]]:
        """Typed values of ``table`` with defaults filled, and the keys that are wrong
        (unknown, mistyped or missing required), each reported at its line. The values of the
        right keys come back too, so their range checks run in the same pass: every problem
        of a file is reported at once."""
        bad: set[str] = set()
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key in skip:
                continue
            if key not in schema:
                bad.add(key)
                hint = (f"secrets never go in the config file: put it in an environment "
                        f"variable and give that variable's name as {_SECRET_KEYS[key]}"
                        if key in _SECRET_KEYS and _SECRET_KEYS[key] in schema else
                        f"unknown key (known: {', '.join(schema) or 'none'})")
                self._problem(self._key(header, key), label, f"{key}: {hint}")
            elif why := _type_problem(value, schema[key].kind):
                bad.add(key)
                self._problem(self._key(header, key), label, f"{key}: {why}")
            else:
                values[key] = float(value) if schema[key].kind == "number" else value
        for key, spec in schema.items():
            if key in table:
                continue
            if spec.required:
                bad.add(key)
                self._problem(self._key(header, None), label, f"missing required key {key!r}")
            else:
                values[key] = spec.default
        return values, bad

    def load(self, data: dict[str, Any]) -> OperationsConfig:
        for key in data:
            if key not in _SECTIONS:
                header = self._header(rf"\[\[?\s*{re.escape(key)}\s*[].][^#]*")
                self._problem(header or self._key(None, key), f"[{key}]",
                              f"unknown section (known: {', '.join(_SECTIONS)})")
        monitor = self._monitor(data.get("monitor", {}))
        channels = self._channels(data.get("channels"))
        declared = data["channels"] if isinstance(data.get("channels"), dict) else channels
        rules = self._rules(data.get("rules"), tuple(declared))
        if self.problems:
            raise InputError([text for _, text in sorted(self.problems, key=lambda p: p[0])])
        return OperationsConfig(monitor, channels, rules, self.source)

    def _monitor(self, table: Any) -> MonitorConfig:
        header = self._header(r"\[\s*monitor\s*\]")
        if not isinstance(table, dict):
            self._problem(self._key(header, "monitor"), "[monitor]", "must be a table")
            return MonitorConfig()
        values, bad = self._settings(table, _MONITOR, "[monitor]", header)
        for key in ("retention_hours", "window_minutes"):
            if key in values and values[key] <= 0:
                self._problem(self._key(header, key), "[monitor]", f"{key}: must be > 0")
        from fresh_solver.operations.store import url_problem  # SQLAlchemy: only when asked

        if values.get("db_url") is not None and (why := url_problem(values["db_url"])):
            bad.add("db_url")
            self._problem(self._key(header, "db_url"), "[monitor]", f"db_url: {why}")
        return MonitorConfig() if bad else MonitorConfig(**values)

    def _channels(self, tables: Any) -> dict[str, ChannelConfig]:
        if tables is None:
            return {DEFAULT_CHANNEL: ChannelConfig(DEFAULT_CHANNEL, "log", {})}
        if not isinstance(tables, dict):
            self._problem(self._key(None, "channels"), "[channels]",
                          "must be a table of [channels.<name>] tables")
            return {}
        channels: dict[str, ChannelConfig] = {}
        for name, table in tables.items():
            label = f"[channels.{name}]"
            header = self._header(
                rf"""\[\s*channels\s*\.\s*(?:{re.escape(name)}|"{re.escape(name)}"|"""
                rf"""'{re.escape(name)}')\s*\]""")
            if header is None:  # written as a dotted key or an inline table
                header = self._key(None, name)
            if not _CHANNEL_NAME.match(name):
                self._problem(header, label, "a channel name uses letters, digits, _ and - only")
                continue
            if not isinstance(table, dict):
                self._problem(header, label, "must be a table")
                continue
            kind = table.get("type")
            if kind is None:
                self._problem(header, label, "missing required key 'type' (one of "
                              f"{', '.join(CHANNEL_TYPES)})")
                continue
            if not isinstance(kind, str) or kind not in CHANNEL_TYPES:
                self._problem(self._key(header, "type"), label,
                              f"type: unknown channel type {kind!r} (known: "
                              f"{', '.join(CHANNEL_TYPES)})")
                continue
            cls = CHANNEL_TYPES[kind]
            settings, bad = self._settings(table, cls.SETTINGS, label, header, skip=("type",))
            # a problem of several keys (None) is only known once every key is right
            problems = [(key, message) for key, message in cls.settings_problems(settings)
                        if key not in bad and (key is not None or not bad)]
            for key, message in problems:
                self._problem(self._key(header, key), label,
                              f"{key}: {message}" if key else message)
            if not problems and not bad:
                channels[name] = ChannelConfig(name, kind, settings)
        return channels

    def _rules(self, tables: Any, names: tuple[str, ...]) -> tuple[Rule, ...]:
        """The rules; ``names`` are the declared channels a rule may be routed to (even one
        with problems of its own, so a bad channel is reported once, not again by each rule
        routed to it). Without routing, a rule goes to every channel when it fires."""
        if tables is None:
            return DEFAULT_RULES
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            self._problem(self._key(None, "rules"), "[[rules]]",
                          "must be an array of tables ([[rules]])")
            return ()
        rules: list[Rule] = []
        seen: set[str] = set()
        for index, table in enumerate(tables):
            header = self._header(r"\[\[\s*rules\s*\]\]", index)
            label = f"[[rules]] #{index + 1}"
            if isinstance(table.get("name"), str):
                label += f" {table['name']!r}"
            values, bad = self._settings(table, _RULE, label, header)
            rule = self._rule(values, bad, label, header, names, seen)
            if rule is not None:
                rules.append(rule)
        return tuple(rules)

    def _rule(self, values: dict[str, Any], bad: set[str], label: str, header: int | None,
              channels: tuple[str, ...], seen: set[str]) -> Rule | None:
        """Check the right keys of a rule (``bad``: the wrong ones, already reported)."""
        ok = not bad
        if "name" in values:
            if values["name"] in seen:
                ok = False
                self._problem(self._key(header, "name"), label,
                              "name: another rule has this name")
            seen.add(values["name"])
        if "severity" in values and values["severity"] not in SEVERITIES:
            ok = False
            self._problem(self._key(header, "severity"), label,
                          f"severity: {values['severity']!r} is not one of "
                          f"{', '.join(SEVERITIES)}")
        routed = values.get("channels")
        for name in routed or ():
            if name not in channels:
                ok = False
                self._problem(self._key(header, "channels"), label,
                              f"channels: no channel named {name!r} (configured: "
                              f"{', '.join(channels) or 'none'})")
        for key in ("repeat_interval_minutes", "cooldown_minutes"):
            if key in values and values[key] < 0:
                ok = False
                self._problem(self._key(header, key), label, f"{key}: must be >= 0")
        if "condition" in values:
            try:
                compile_condition(values["condition"])
            except ConditionError as exc:
                ok = False
                self._problem(self._key(header, "condition"), label, f"condition: {exc}")
        if not ok:
            return None
        return Rule(values["name"], values["condition"], values["severity"],
                    tuple(routed) if routed is not None else None,
                    values["repeat_interval_minutes"], values["cooldown_minutes"],
                    values["template"], values["description"])
