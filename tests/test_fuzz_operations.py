"""Fuzzing what an operator or a client controls: the operations config file and the HTTP
endpoint's request line and headers (hypothesis). Every input is either accepted or refused
with a clear message: the config parser raises InputError and nothing else, building channels
from an accepted config raises nothing, and the endpoint answers with an HTTP status (or
closes) and stays up, with no traceback on stderr. Each test runs EXAMPLES inputs."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fresh_solver.errors import InputError
from fresh_solver.operations.channels import CHANNEL_TYPES, build_channels
from fresh_solver.operations.config import _MONITOR, _RULE, parse_config

EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# ---- the operations config ------------------------------------------------------------------

KEYS = sorted({*_MONITOR, *_RULE, *(k for c in CHANNEL_TYPES.values() for k in c.SETTINGS),
               "type", "url", "nonsense"})
scalars = st.one_of(
    st.text(max_size=30), st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.sampled_from(["http://127.0.0.1:99999/x", "sqlite:///x.db", "mysql://h/db",
                     "not a url", "performance_change > 0.5", "error_rate >", "critical",
                     "webhook", "email", "slack", "log", "*", "", "http://h st/x"]))
values = st.one_of(scalars, st.lists(scalars, max_size=4))
tables = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


def toml_value(value) -> str:
    """A TOML rendering of ``value`` (json's strings are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


def toml_table(header: str, table: dict) -> str:
    return f"{header}\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())


@st.composite
def config_files(draw) -> str:
    parts = []
    if draw(st.booleans()):
        parts.append(toml_table("[monitor]", draw(tables)))
    for name in draw(st.lists(st.sampled_from(["log", "hook", "mail", "bad name", "s"]),
                              max_size=3, unique=True)):
        parts.append(toml_table(f'[channels."{name}"]', draw(tables)))
    for _ in range(draw(st.integers(0, 3))):
        parts.append(toml_table("[[rules]]", draw(tables)))
    if draw(st.booleans()):
        parts.append(toml_table(f"[{draw(st.sampled_from(['extra', 'monitor.x']))}]",
                                draw(tables)))
    return "\n".join(parts)


def _loads_or_refuses(text: str) -> None:
    try:
        config = parse_config(text, "fuzz.toml")
    except InputError as refused:
        assert refused.problems and all(isinstance(p, str) and p for p in refused.problems)
        return
    build_channels(config)  # what an accepted config promises: channels that can be built


@FUZZ
@given(config_files())
def test_structured_config_files_load_or_are_refused_clearly(text: str) -> None:
    _loads_or_refuses(text)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_as_a_config_file_is_refused_clearly(text: str) -> None:
    _loads_or_refuses(text)


# ---- the endpoint ---------------------------------------------------------------------------

token = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=0, max_size=20)
methods = st.one_of(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                     "OPTIONS", "TRACE", "CONNECT", "get", ""]), token)
paths = st.one_of(st.sampled_from(["/livez", "/readyz", "/health", "/metrics", "/", "*",
                                   "/health?x=1", "//metrics", "/livez/../health"]), token)
versions = st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/9", "http/1.1", "",
                            "HTTP/1.1 extra"])
headers = st.lists(st.tuples(token, st.text(max_size=40)), max_size=5)
raw = st.binary(max_size=200)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    from fresh_solver.operations.checks import HEALTHY
    from tests.test_endpoint import Fakes, _standard, running

    folder = tmp_path_factory.mktemp("fuzz")
    with running(_standard(folder, Fakes(cp_sat_canary=HEALTHY, registry=HEALTHY)),
                 interval_s=0.5) as server:
        yield server.server_address[1]


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # the whole request: the server answers or closes
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            return b""
    return b"".join(chunks)


def _answered(port: int, data: bytes) -> None:
    answer = _exchange(port, data)
    assert answer == b"" or answer.startswith(b"HTTP/1."), answer[:200]
    # the server still answers (an HTTP/1.1 server's status line to an HTTP/1.0 request)
    assert _exchange(port, b"GET /livez HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")


@FUZZ
@given(methods, paths, versions, headers)
def test_request_lines_and_headers_get_an_http_answer(endpoint, capfd, method, path, version,
                                                      header_list) -> None:
    lines = [f"{method} {path} {version}".strip()]
    lines += [f"{name}: {value}" for name, value in header_list]
    _answered(endpoint, ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass"))
    assert "Traceback" not in capfd.readouterr().err


@FUZZ
@given(raw)
def test_arbitrary_bytes_get_an_http_answer_or_a_close(endpoint, capfd, data: bytes) -> None:
    _answered(endpoint, data)
    assert "Traceback" not in capfd.readouterr().err


def test_the_fuzzers_reached_every_outcome(tmp_path: Path) -> None:
    """The config strategies are not all refusals: some accepted configs exist."""
    accepted = parse_config(toml_table("[channels.hook]", {"type": "log"}) +
                            toml_table("[[rules]]", {"name": "r", "condition": "error_rate > 0.1"}),
                            "fuzz.toml")
    assert list(accepted.channels) == ["hook"] and accepted.rules[0].name == "r"
