"""Registry faults to inject, all on 127.0.0.1: an HTTP server that answers every request with
an error status or with malformed JSON, and a proxy that delays every request to a real server.
(A hung server is a real one stopped with SIGSTOP; a dead one, a real one stopped.)

Used by the fault-injection tests and by ``registry_faults``, the benchmark that measures what
each fault costs a production solve; ``webhook_receiver`` stands in for an alert destination.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FaultServer:
    """A loopback HTTP server whose handler is ``respond(handler)``; a context manager."""

    def __init__(self, respond):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                server.requests += 1
                respond(self)

            do_GET = do_POST = do_PATCH = do_DELETE = _any

            def log_message(self, *args) -> None:  # quiet: faults are expected here
                pass

        self.requests = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    length = int(handler.headers.get("Content-Length") or 0)
    handler.rfile.read(length)
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def error_server(status: int = 500) -> FaultServer:
    """Every request answered with ``status`` and an MLflow-shaped error body."""
    body = b'{"error_code": "INTERNAL_ERROR", "message": "injected fault"}'
    return FaultServer(lambda h: _reply(h, status, body))


def malformed_server() -> FaultServer:
    """Every request answered 200 with a body that is not JSON."""
    return FaultServer(lambda h: _reply(h, 200, b'{"registered_model": [not json'))


def webhook_receiver() -> FaultServer:
    """A webhook that answers 204 and keeps each POSTed JSON body with its arrival time in
    ``server.received`` as ``(epoch seconds, body)``: alerts' destination in tests and in the
    operations benchmark."""
    received: list[tuple[float, dict]] = []

    def keep(handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        received.append((time.time(), json.loads(body)))
        handler.send_response(204)
        handler.end_headers()

    server = FaultServer(keep)
    server.received = received
    return server


def delaying_proxy(target: str, delay_s: float) -> FaultServer:
    """Every request forwarded to ``target`` after ``delay_s`` seconds (a slow network)."""
    host, port = urlsplit(target).hostname, urlsplit(target).port

    def forward(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(delay_s)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(host, port, timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
        upstream.request(handler.command, handler.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        upstream.close()

    return FaultServer(forward)


class TcpForwarder:
    """A TCP forwarder from 127.0.0.1:``port`` to ``target``: a database that is unreachable
    until the forwarder starts, and comes back when it does."""

    def __init__(self, port: int, target: tuple[str, int]):
        self.target = target
        self.server = socket.create_server(("127.0.0.1", port))
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        # Shut down before closing: a bare close leaves the socket listening (and forwarding)
        # for as long as the accept thread stays blocked on it.
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for s in self.sockets:
            s.close()
