"""`fresh-solver serve`: liveness, readiness, health and metrics over HTTP.

- ``/livez``   200 while the process runs; asks nothing.
- ``/readyz``  200 when the Production parameters load (registry check not critical) and the
  CP-SAT canary solves; 503 otherwise.
- ``/health``  the health report as ``application/health+json``; 200 for ``healthy`` and
  ``warning``, 503 for ``critical`` and ``unknown`` (the source document's mapping).
- ``/metrics`` Prometheus text (:mod:`fresh_solver.operations.metrics`).

The checks never run on a request thread. One background thread runs them every
``interval_s`` (default 30 s); requests get the latest report with its age (``age_s``). Before
the first report exists the answer is ``unknown`` / 503 "checks running", and a report older
than three intervals plus two check timeouts (the longest a round takes) is ``unknown`` / 503
"stale". So a slow or hung check delays the report, never a response. Binds 127.0.0.1 unless
told otherwise.

Each round also delivers the alert outbox (alerts queued while a channel was down go out within
a round, with no DAG running). HEAD answers every probe path as GET does, without the body;
other methods get 405 with a JSON body and ``Allow``. A connection idle for
:data:`IDLE_TIMEOUT_S` is closed, and a client that hangs up is a debug line, not a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fresh_solver.operations.checks import STORE_ERRORS, HealthChecker

log = logging.getLogger("fresh_solver.serve")

OK_STATUSES = ("healthy", "warning")
PATHS = ("/livez", "/readyz", "/health", "/metrics")
# A connection that sends nothing (or stops half-way) for this long is closed, freeing its
# thread: half-open connections otherwise held one thread each for as long as they lived.
IDLE_TIMEOUT_S = 10.0


class HealthService:
    """Runs the checks in the background and keeps the latest report."""

    def __init__(self, checker: HealthChecker | None = None, interval_s: float = 30.0):
        self.checker = checker or HealthChecker()
        self.interval_s = interval_s
        self._report: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._metrics_cache: tuple[float, bytes] | None = None
        self._thread = threading.Thread(target=self._loop, name="health-checks", daemon=True)

    def start(self) -> None:
        """Start the background checks."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the running round (the thread is a daemon; nothing waits on it)."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            report = self.checker.generate_health_report()
            with self._lock:
                self._report = report
            deliver_outbox()
            self._stop.wait(self.interval_s)

    def report(self) -> dict[str, Any]:
        """The latest report with its age, or an ``unknown`` placeholder before the first."""
        with self._lock:
            report = self._report
        if report is None:
            return {"status": "unknown", "message": "checks running; no report yet",
                    "checks": []}
        age = time.time() - report["generated_at"]
        # A round takes up to two check timeouts (the registry runs first with its own).
        if age > 3 * self.interval_s + 2 * self.checker.timeout_s:
            # The check rounds stopped (a bug): an old "healthy" must not stand.
            return report | {"status": "unknown", "age_s": round(age, 3),
                             "message": f"stale: no check round for {age:.0f} s"}
        return report | {"age_s": round(age, 3)}

    def ready(self) -> tuple[bool, str]:
        """Whether production solves can be served as intended (see module doc)."""
        report = self.report()
        checks = {c["name"]: c for c in report.get("checks", [])}
        canary, registry = checks.get("cp_sat_canary"), checks.get("registry")
        if canary is None:
            return False, "checks running; no report yet"
        if canary["status"] != "healthy":
            return False, f"canary: {canary['message']}"
        if registry is not None and registry["status"] == "critical":
            return False, f"registry: {registry['message']}"
        return True, "ready"

    def metrics(self) -> bytes:
        """Prometheus text, recomputed at most once a second (scrapes under load share it)."""
        from fresh_solver.operations.metrics import render

        cached = self._metrics_cache
        if cached is not None and time.monotonic() - cached[0] < 1.0:
            return cached[1]
        text = render(self.checker.monitor, self.report)
        self._metrics_cache = (time.monotonic(), text)
        return text


def deliver_outbox() -> None:
    """Send the alert outbox's due deliveries (retries of channels that were down). Best
    effort: a store or config that cannot be used now is the health report's to say."""
    from fresh_solver.errors import InputError
    from fresh_solver.operations.alerts import AlertManager

    try:
        counts = AlertManager().dispatch()
    except (InputError, *STORE_ERRORS) as exc:
        log.debug("alert outbox not delivered this round: %s", exc)
        return
    if any(counts.values()):
        log.info("alert outbox: %s", counts)


def make_handler(service: HealthService) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``service``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "fresh-solver"
        timeout = IDLE_TIMEOUT_S  # per socket read: an idle connection is closed
        # Every answer, malformed requests' included, starts with a status line (the stdlib
        # default, HTTP/0.9, sends errors as bare HTML); errors are one plain line.
        default_request_version = "HTTP/1.0"
        error_message_format = "%(code)d %(message)s\n"
        error_content_type = "text/plain; charset=utf-8"
        _head = False

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
            self._head = True  # probes send HEAD: the same status and headers, no body
            self.do_GET()

        def _not_found(self) -> None:
            self._send(HTTPStatus.NOT_FOUND, b"not found: try /livez /readyz /health "
                       b"/metrics\n", "text/plain; charset=utf-8")

        def _not_allowed(self) -> None:
            path = self.path.split("?", 1)[0]
            if path not in PATHS:
                self._not_found()
                return
            body = json.dumps({"error": f"method {self.command} not allowed on {path}",
                               "allowed": ["GET", "HEAD"]}).encode()
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, body, "application/json",
                       {"Allow": "GET, HEAD"})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/livez":
                self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                ok, why = service.ready()
                self._send(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                           f"{why}\n".encode(), "text/plain; charset=utf-8")
            elif path == "/health":
                report = service.report()
                code = HTTPStatus.OK if report["status"] in OK_STATUSES \
                    else HTTPStatus.SERVICE_UNAVAILABLE
                self._send(code, json.dumps(report, default=str).encode(),
                           "application/health+json")
            elif path == "/metrics":
                from prometheus_client.exposition import CONTENT_TYPE_LATEST

                try:
                    body, code = service.metrics(), HTTPStatus.OK
                except STORE_ERRORS as exc:  # an OSError too: an SQLite path not openable
                    body = f"operations store unreachable: {type(exc).__name__}\n".encode()
                    code = HTTPStatus.SERVICE_UNAVAILABLE
                self._send(code, body, CONTENT_TYPE_LATEST if code == HTTPStatus.OK
                           else "text/plain; charset=utf-8")
            else:
                self._not_found()

        def _send(self, code: HTTPStatus, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not self._head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base's name
            log.debug("%s - " + format, self.address_string(), *args)

    return Handler


class ProbeServer(ThreadingHTTPServer):
    """The stdlib threading server, quiet about clients that go away."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up or goes silent (reset, broken pipe, the idle timeout) is
        # routine for a probe endpoint; anything else keeps the stdlib's traceback.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address, error)
            return
        super().handle_error(request, client_address)


def serve(host: str = "127.0.0.1", port: int = 8787, interval_s: float = 30.0,
          checker: HealthChecker | None = None) -> ThreadingHTTPServer:
    """A started server (its own thread) and background checks; call ``shutdown()`` on it."""
    service = HealthService(checker, interval_s)
    server = ProbeServer((host, port), make_handler(service))
    service.start()
    server.service = service  # type: ignore[attr-defined] - for callers and tests
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
