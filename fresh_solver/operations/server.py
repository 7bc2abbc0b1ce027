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
other methods get 405 with a JSON body and ``Allow``. The server is uvicorn (asyncio, h11):
an open connection costs no thread, one that sends no whole request head within
:data:`IDLE_TIMEOUT_S` is closed, a malformed request gets 400, and a client that hangs up
is nobody's traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from fresh_solver.operations.checks import STORE_ERRORS, HealthChecker

log = logging.getLogger("fresh_solver.serve")

OK_STATUSES = ("healthy", "warning")
PATHS = ("/livez", "/readyz", "/health", "/metrics")
# A connection that sends no whole request head for this long (after opening, or after its
# last answer) is closed: half-open connections otherwise stayed open as long as they lived.
IDLE_TIMEOUT_S = 10.0
TEXT = "text/plain; charset=utf-8"


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


def answer(service: HealthService, method: str, path: str
           ) -> tuple[HTTPStatus, bytes, str, dict[str, str]]:
    """The status, body, content type and extra headers for ``method`` on ``path`` (HEAD is
    answered as GET; the server leaves its body out)."""
    if path not in PATHS:
        return (HTTPStatus.NOT_FOUND, b"not found: try /livez /readyz /health /metrics\n",
                TEXT, {})
    if method not in ("GET", "HEAD"):
        body = json.dumps({"error": f"method {method} not allowed on {path}",
                           "allowed": ["GET", "HEAD"]}).encode()
        return HTTPStatus.METHOD_NOT_ALLOWED, body, "application/json", {"Allow": "GET, HEAD"}
    if path == "/livez":
        return HTTPStatus.OK, b"ok\n", TEXT, {}
    if path == "/readyz":
        ok, why = service.ready()
        return (HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, f"{why}\n".encode(),
                TEXT, {})
    if path == "/health":
        report = service.report()
        code = HTTPStatus.OK if report["status"] in OK_STATUSES \
            else HTTPStatus.SERVICE_UNAVAILABLE
        return code, json.dumps(report, default=str).encode(), "application/health+json", {}
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    try:
        return HTTPStatus.OK, service.metrics(), CONTENT_TYPE_LATEST, {}
    except STORE_ERRORS as exc:  # an OSError too: an SQLite path not openable
        return (HTTPStatus.SERVICE_UNAVAILABLE,
                f"operations store unreachable: {type(exc).__name__}\n".encode(), TEXT, {})


def probe_app(service: HealthService):
    """The endpoint as an ASGI application. /metrics may read the operations store, so it is
    answered on a worker thread (asyncio's bounded default pool): a slow store never stalls
    the event loop, and so never /livez."""

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/metrics":
            code, body, content_type, headers = await asyncio.to_thread(
                answer, service, method, path)
        else:
            code, body, content_type, headers = answer(service, method, path)
        fields = {"content-type": content_type, "content-length": str(len(body)),
                  "cache-control": "no-store"} | {k.lower(): v for k, v in headers.items()}
        await send({"type": "http.response.start", "status": int(code),
                    "headers": [(k.encode(), v.encode()) for k, v in fields.items()]})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    return app


class ProbeProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11) with a deadline for every request head: a connection
    that has not sent a whole request head within :data:`IDLE_TIMEOUT_S` of opening or of its
    last answer is closed (uvicorn itself times out only idle keep-alive connections, so a
    client that connects and sends nothing, or half a request, would stay forever)."""

    _head_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(IDLE_TIMEOUT_S, self._close_idle)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _close_idle(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a whole request head arrived
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()


class ProbeServer:
    """uvicorn serving :func:`probe_app` on its own thread and event loop, on a socket bound
    before the thread starts (so a port in use is the caller's OSError, not a log line):
    idle connections cost no thread, and no client can make it print a traceback."""

    def __init__(self, host: str, port: int, service: HealthService):
        import uvicorn

        self.service = service
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family)
        self.server_address = self.socket.getsockname()
        # log_config None: uvicorn's warnings (a malformed request) go through this process's
        # logging, which uvicorn otherwise reconfigures; loop "asyncio": no global loop policy.
        config = uvicorn.Config(probe_app(service), http=ProbeProtocol, lifespan="off",
                                ws="none", interface="asgi3", loop="asyncio",
                                log_config=None, log_level="warning",
                                access_log=False, server_header=False,
                                timeout_keep_alive=IDLE_TIMEOUT_S,
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self.socket]}, name="http",
                                        daemon=True)

    @property
    def server_port(self) -> int:
        """The bound port (as the stdlib servers name it; 0 asked for a free one)."""
        return self.server_address[1]

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and self._thread.is_alive() \
                and time.monotonic() < deadline:
            time.sleep(0.01)

    def shutdown(self) -> None:
        """Stop serving (open connections are closed) and wait for the server's thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def server_close(self) -> None:
        self.socket.close()


def serve(host: str = "127.0.0.1", port: int = 8787, interval_s: float = 30.0,
          checker: HealthChecker | None = None) -> ProbeServer:
    """A started server (its own thread) and background checks; call ``shutdown()`` on it.
    OSError when the address cannot be bound."""
    service = HealthService(checker, interval_s)
    server = ProbeServer(host, port, service)
    service.start()
    server.start()
    return server
