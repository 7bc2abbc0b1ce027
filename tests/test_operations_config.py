"""The operations config file (channels, rules, monitor) and the rule condition language:
a full file loads, each bad file is refused naming the file and the line, conditions evaluate
as documented and unsafe ones are refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fresh_solver.errors import InputError
from fresh_solver.operations.config import (
    CONFIG_ENV,
    DEFAULT_RULES,
    OperationsConfig,
    load_config,
)
from fresh_solver.operations.rules import CONTEXT_FIELDS, ConditionError, Rule, compile_condition

FULL = """\
# fresh-solver operations
[monitor]
retention_hours = 48
window_minutes = 30
db_url = "postgresql+psycopg2://fresh@127.0.0.1:5432/fresh"

[channels.oncall]
type = "email"
host = "smtp.example.org"
port = 587
starttls = true
from = "fresh-solver@example.org"
to = ["oncall@example.org", "team@example.org"]
username = "fresh-solver"
password_env = "FRESH_SOLVER_SMTP_PASSWORD"
timeout_s = 5

[channels.team-slack]
type = "slack"
url_env = "FRESH_SOLVER_SLACK_URL"

[channels.pager]
type = "webhook"
url = "https://alerts.example.org/hooks/fresh-solver"
secret_env = "FRESH_SOLVER_WEBHOOK_SECRET"

[channels.log]
type = "log"

[[rules]]
name = "performance_degradation"
condition = "performance_change > 0.5"
severity = "critical"
channels = ["oncall", "pager"]
repeat_interval_minutes = 120
cooldown_minutes = 10
description = "50 % slower than validated"

[[rules]]
name = "bracket_errors"
condition = 'error_rate > 0.1 and template_id == "bracket"'
template = "bracket*"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "operations.toml"
    path.write_text(text)
    return path


def _line_of(text: str, needle: str, nth: int = 0) -> int:
    return [i + 1 for i, line in enumerate(text.splitlines()) if needle in line][nth]


def _refused(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def test_full_file_loads(tmp_path):
    path = _write(tmp_path, FULL)
    config = load_config(path)
    assert config.source == str(path)
    assert config.monitor.retention_hours == 48 and config.monitor.window_minutes == 30
    assert config.monitor.db_url.startswith("postgresql")
    assert {n: c.type for n, c in config.channels.items()} == {
        "oncall": "email", "team-slack": "slack", "pager": "webhook", "log": "log"}
    oncall = config.channels["oncall"].settings
    assert oncall["from"] == "fresh-solver@example.org" and oncall["port"] == 587
    assert oncall["starttls"] is True and oncall["timeout_s"] == 5.0
    assert config.channels["team-slack"].settings["timeout_s"] == 10.0  # the default
    degradation, errors = config.rules
    assert degradation.channels == ("oncall", "pager") and degradation.severity == "critical"
    assert degradation.repeat_interval_minutes == 120 and degradation.cooldown_minutes == 10
    assert errors.channels is None  # default: every channel configured when it fires
    assert errors.severity == "warning" and errors.repeat_interval_minutes == 60
    assert errors.cooldown_minutes == 15 and errors.template == "bracket*"
    assert errors.evaluate({"error_rate": 0.2, "template_id": "bracket-line"}) is False
    assert errors.evaluate({"error_rate": 0.2, "template_id": "bracket"}) is True


def test_default_config_without_file(monkeypatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    config = load_config()
    assert isinstance(config, OperationsConfig) and config.source is None
    assert list(config.channels) == ["log"] and config.channels["log"].type == "log"
    assert [r.name for r in config.rules] == [r.name for r in DEFAULT_RULES]
    assert all(r.channels is None for r in config.rules)  # every channel, when they fire
    assert config.monitor.retention_hours == 168 and config.monitor.window_minutes == 60
    assert config.monitor.db_url is None


def test_config_from_environment(tmp_path, monkeypatch):
    path = _write(tmp_path, FULL)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert load_config().source == str(path)
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(InputError, match=f"missing.toml \\(named by {CONFIG_ENV}\\)"):
        load_config()


def test_file_without_rules_or_channels_gets_the_defaults(tmp_path):
    config = load_config(_write(tmp_path, "[monitor]\nwindow_minutes = 15\n"))
    assert list(config.channels) == ["log"]
    assert [r.name for r in config.rules] == [r.name for r in DEFAULT_RULES]
    assert load_config(_write(tmp_path, "rules = []\n")).rules == ()


def test_unparsable_toml(tmp_path):
    text = FULL.replace('port = 587', 'port = = 587')
    message = _refused(tmp_path, text)
    assert f"line {_line_of(text, 'port = = 587')}" in message and "invalid TOML" in message


def test_unknown_channel_type(tmp_path):
    text = FULL.replace('type = "slack"', 'type = "pagerduty"')
    message = _refused(tmp_path, text)
    assert f"line {_line_of(text, 'pagerduty')}:" in message
    assert "[channels.team-slack]" in message and "unknown channel type 'pagerduty'" in message


def test_condition_with_a_syntax_error(tmp_path):
    text = FULL.replace('"performance_change > 0.5"', '"performance_change > > 0.5"')
    message = _refused(tmp_path, text)
    assert f"line {_line_of(text, '> > 0.5')}:" in message
    assert "[[rules]] #1 'performance_degradation'" in message and "syntax error" in message


def test_condition_with_an_unknown_name(tmp_path):
    text = FULL.replace("error_rate > 0.1", "eror_rate > 0.1")
    message = _refused(tmp_path, text)
    assert f"line {_line_of(text, 'eror_rate')}:" in message
    assert "[[rules]] #2 'bracket_errors'" in message and "unknown name 'eror_rate'" in message


def test_rule_routed_to_an_unknown_channel(tmp_path):
    text = FULL.replace('["oncall", "pager"]', '["oncall", "pagr"]')
    message = _refused(tmp_path, text)
    assert f"line {_line_of(text, 'pagr')}:" in message
    assert "no channel named 'pagr'" in message


def test_missing_required_keys(tmp_path):
    text = FULL.replace('host = "smtp.example.org"\n', "")
    text = text.replace('type = "slack"\n', "")
    message = _refused(tmp_path, text)
    assert f"line {_line_of(text, '[channels.oncall]')}: [channels.oncall] missing required " \
           "key 'host'" in message
    assert f"line {_line_of(text, '[channels.team-slack]')}: [channels.team-slack] missing " \
           "required key 'type'" in message


def test_every_problem_reported_at_once_with_its_line(tmp_path):
    text = FULL.replace("retention_hours = 48", "retention_hours = -1").replace(
        'severity = "critical"', 'severity = "high"').replace(
        "timeout_s = 5", 'timeout_s = "5"')
    text += '\n[[rules]]\nname = "bracket_errors"\ncondition = "fallbacks > 0"\n'
    problems = _refused(tmp_path, text).splitlines()
    assert len(problems) == 4
    expected = {_line_of(text, "retention_hours"), _line_of(text, "high"),
                _line_of(text, 'timeout_s = "5"'), _line_of(text, 'name = "bracket_errors"', 1)}
    assert {int(p.split("line ")[1].split(":")[0]) for p in problems} == expected


def test_type_and_range_problems_of_one_table_are_reported_together(tmp_path):
    # a mistyped key no longer hides a range problem of another key of the same table
    text = FULL.replace("retention_hours = 48", 'retention_hours = "48"').replace(
        "window_minutes = 30", "window_minutes = 0")
    text = text.replace('url_env = "FRESH_SOLVER_SLACK_URL"',
                        'url = "http://hooks.example:99999/x"\ntimeout_s = "soon"')
    message = _refused(tmp_path, text)
    assert f"line {_line_of(text, 'retention_hours')}: [monitor] retention_hours:" in message
    assert f"line {_line_of(text, 'window_minutes')}: [monitor] window_minutes: must be > 0" \
        in message
    assert f"line {_line_of(text, '99999')}: [channels.team-slack] url: has a bad port" in message
    assert f"line {_line_of(text, 'soon')}: [channels.team-slack] timeout_s:" in message


@pytest.mark.parametrize(("url", "why"), [
    ("not a url at all", "is not a SQLAlchemy database URL"),
    ("mysql://u@127.0.0.1/x", "names a database driver that is not installed"),
])
def test_an_unusable_store_url_is_refused_when_the_config_loads(tmp_path, url, why):
    text = FULL.replace('"postgresql+psycopg2://fresh@127.0.0.1:5432/fresh"', repr(url))
    assert f"line {_line_of(text, 'db_url')}: [monitor] db_url: {why}" in _refused(tmp_path, text)


def test_secrets_and_unknown_keys_refused(tmp_path):
    text = FULL.replace('password_env = "FRESH_SOLVER_SMTP_PASSWORD"', 'password = "hunter2"')
    text = text.replace("[channels.log]", "[channels.log]\nlevel = 'debug'")
    text += "\n[alerts]\nx = 1\n"
    message = _refused(tmp_path, text)
    assert f"line {_line_of(text, 'hunter2')}:" in message and "password_env" in message
    assert f"line {_line_of(text, 'level =')}: [channels.log] level: unknown key" in message
    assert f"line {_line_of(text, '[alerts]')}: [alerts] unknown section" in message


def test_channel_cross_checks(tmp_path):
    text = FULL.replace('url_env = "FRESH_SOLVER_SLACK_URL"', 'url = "ftp://example.org/x"')
    text = text.replace('to = ["oncall@example.org", "team@example.org"]', 'to = ["oncall"]')
    text = text.replace("[channels.log]", "[channels.both]\ntype = 'webhook'\n"
                        "url = 'http://a.example/'\nurl_env = 'X'\n\n[channels.log]")
    message = _refused(tmp_path, text)
    assert f"line {_line_of(text, 'ftp://')}: [channels.team-slack] url: must be an http" \
           in message
    assert f"line {_line_of(text, 'to = [')}: [channels.oncall] to: 'oncall' is not" in message
    assert f"line {_line_of(text, '[channels.both]')}: [channels.both] give exactly one of " \
           "url and url_env" in message


# --- rules -----------------------------------------------------------------------------------

CONTEXT = {"performance_change": 0.6, "error_rate": 0.02, "status": "warning",
           "health_score": 71.5, "fallbacks": 0, "refusals": 2, "p95_solve_s": 4.0,
           "solves": 40, "template_id": "bracket",
           "check": {"cpsat_canary": "healthy", "registry": "critical"}}


@pytest.mark.parametrize("condition, expected", [
    ("performance_change > 0.5", True),
    ("performance_change > 0.7", False),
    ("0.5 < performance_change <= 0.6", True),
    ("error_rate >= 0.05 or fallbacks > 0", False),
    ("error_rate < 0.05 and refusals > 1", True),
    ("not refusals", False),
    ("not (fallbacks > 0)", True),
    ('status == "warning"', True),
    ('status != "warning"', False),
    ('status in ("warning", "critical")', True),
    ('status not in ["warning", "critical"]', False),
    ("health_score < 50 or p95_solve_s * 1000 > 3500", True),
    ("p95_solve_s / 2 - 1 == 1", True),
    ("solves % 7 == 5", True),
    ("-performance_change < -0.5", True),
    ('check.registry == "critical"', True),
    ('check.cpsat_canary != "healthy"', False),
    ('template_id == "bracket" and True', True),
])
def test_truth_table(condition, expected):
    assert Rule("r", condition).evaluate(CONTEXT) is expected


def test_missing_data_is_false(caplog):
    with caplog.at_level(logging.DEBUG, logger="fresh_solver.operations.rules"):
        assert Rule("absent", "median_solve_s > 1").evaluate(CONTEXT) is False
        assert Rule("none", "baseline_s > 1").evaluate({"baseline_s": None}) is False
        assert Rule("check", 'check.disk == "critical"').evaluate(CONTEXT) is False
    levels = {r.getMessage().split(":")[0]: r.levelno for r in caplog.records}
    assert levels == {"rule absent": logging.WARNING, "rule none": logging.DEBUG,
                      "rule check": logging.WARNING}
    assert Rule("ok", "fallbacks > 0 and median_solve_s > 1").evaluate(CONTEXT) is False
    assert Rule("short", "refusals > 0 or median_solve_s > 1").evaluate(CONTEXT) is True


def test_runtime_faults_are_false(caplog):
    with caplog.at_level(logging.WARNING, logger="fresh_solver.operations.rules"):
        assert Rule("div", "refusals / fallbacks > 1").evaluate(CONTEXT) is False
        assert Rule("type", "solves > 1").evaluate({"solves": "many"}) is False
    assert len(caplog.records) == 2


def test_template_filter():
    rule = Rule("r", "fallbacks >= 0", template="bracket-*")
    assert rule.evaluate({"fallbacks": 1, "template_id": "bracket-w48"})
    assert not rule.evaluate({"fallbacks": 1, "template_id": "gear"})
    assert not rule.evaluate({"fallbacks": 1})  # the system-wide context


@pytest.mark.parametrize("condition, why", [
    ("__import__('os')", "function calls"),
    ("__import__('os').system('true')", "function calls"),
    ("().__class__.__bases__", "attribute access"),
    ("status.upper", "attribute access"),
    ("check.__class__", "attribute access"),
    ("lambda: 1", "lambdas"),
    ("len(status)", "function calls"),
    ("[x for x in (1, 2)]", "comprehensions"),
    ("fallbacks[0]", "subscripts"),
    ("2 ** 100000", "'**'"),
    ("(fallbacks := 3)", "assignments"),
    ("1 if fallbacks else 0", "conditional"),
    ("open", "unknown name 'open'"),
    ("None", "literal None"),
    ("fallbacks in refusals", "literal list"),
    ('"a" * 1000000000 == "a"', "arithmetic needs numbers"),
    ('fallbacks == "0"', "compares a number with text"),
    ('status == "critcal"', "not a status word"),
    ('status > "warning"', "not by order"),
    ("performance_change >", "syntax error"),
    ("", "empty"),
    ("x" * 2000, "longer than"),
])
def test_unsafe_or_wrong_conditions_refused(condition, why):
    with pytest.raises(ConditionError, match=why.replace("(", r"\(").replace("*", r"\*")):
        compile_condition(condition)


def test_bad_severity_refused():
    with pytest.raises(InputError, match="severity 'high'"):
        Rule("r", "fallbacks > 0", severity="high")


def test_context_fields_documented():
    assert {"performance_change", "error_rate", "status", "health_score", "fallbacks",
            "refusals", "p95_solve_s"} <= set(CONTEXT_FIELDS)
    assert all(f.kind in ("number", "status", "text") and f.doc for f in CONTEXT_FIELDS.values())


def test_docs_example_loads_and_documents_every_context_field(tmp_path):
    docs = (Path(__file__).parent.parent / "docs" / "alerting.md").read_text()
    example = docs.split("## Example\n\n```toml\n", 1)[1].split("```", 1)[0]
    config = load_config(_write(tmp_path, example))
    assert [r.name for r in config.rules] == ["performance_degradation", "parameter_fallbacks",
                                              "bracket_canary"]
    for name in CONTEXT_FIELDS:
        assert f"| `{name}` |" in docs
    for rule in DEFAULT_RULES:
        assert f"| `{rule.name}` | `{rule.condition}` | {rule.severity} |" in docs


@pytest.mark.parametrize("url, why", [
    ("not a url at all", "is not a SQLAlchemy database URL"),
    ("mysql://ops:hunter2@127.0.0.1/ops", "names a database driver that is not installed"),
])
def test_a_bad_store_url_in_the_environment_is_named_with_the_files_problems(
        tmp_path, monkeypatch, url, why):
    """FRESH_SOLVER_DB_URL overrides [monitor] db_url, so it is checked like it, and with
    every problem of the file at once; its password is never printed."""
    monkeypatch.setenv("FRESH_SOLVER_DB_URL", url)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(InputError) as refused:
        load_config()
    [problem] = refused.value.problems
    assert problem.startswith("FRESH_SOLVER_DB_URL '") and why in problem
    assert "hunter2" not in problem
    bad_file = tmp_path / "ops.toml"
    bad_file.write_text("[monitor]\nretention_hours = -1\n")
    with pytest.raises(InputError) as both:
        load_config(bad_file)
    assert len(both.value.problems) == 2 and "retention_hours" in both.value.problems[1]


@pytest.mark.parametrize("argv", [
    ["health"], ["serve", "--port", "0"],
    ["solve", "fresh_solver/examples/bracket_line.json", "--production", "bracket",
     "--time-limit", "1"]])
def test_commands_refuse_a_bad_store_url_before_working(tmp_path, argv):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = os.environ | {"FRESH_SOLVER_DB_URL": "mysql://ops:hunter2@127.0.0.1/ops",
                        "FRESH_SOLVER_HOME": str(tmp_path / "home")}
    env.pop(CONFIG_ENV, None)
    done = subprocess.run([sys.executable, "-m", "fresh_solver.cli", *argv], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr
    assert "FRESH_SOLVER_DB_URL 'mysql://ops:***@127.0.0.1/ops' names a database driver" \
        in done.stderr
    assert "solving" not in done.stderr  # refused before any work
