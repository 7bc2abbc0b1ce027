"""Does `fresh-solver serve` answer every probe while others hold connections open?

    python -m benchmarks.endpoint_load --probes 8 --idle 300 --seconds 30 \
        --out out/endpoint_load

Starts ``fresh-solver serve`` as a user does (its own process, a scratch FRESH_SOLVER_HOME,
127.0.0.1 and a free port), opens ``--idle`` connections that send nothing or half a request
(reopened whenever the server closes them), and runs ``--probes`` client threads that each ask
/livez, /readyz, /health and /metrics in turn, with ``--deadline`` s per request, for
``--seconds``. Reported: probes sent, answered within the deadline, latency percentiles, and,
sampled every 0.2 s, the server process's threads and open TCP connections (what the idle
connections cost it). Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.record import rerun_command, write_results
from fresh_solver.measure import percentile
from fresh_solver.operations.server import PATHS


def start_serve(home: Path, port: int) -> subprocess.Popen:
    """`fresh-solver serve` on 127.0.0.1:``port``, once it answers /livez."""
    from fresh_solver import devstack

    log = open(home / "serve.log", "wb")  # noqa: SIM115 - the process writes it while it runs
    process = subprocess.Popen(
        [str(devstack.venv_bin() / "fresh-solver"), "serve", "--port", str(port),
         "--interval", "5"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=os.environ | {"FRESH_SOLVER_HOME": str(home)}, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"serve did not start; {home / 'serve.log'}:\n"
                     f"{(home / 'serve.log').read_text()[-2000:]}")


def hold_idle(port: int, count: int, stop: threading.Event, reopened: list[int]) -> None:
    """Keep ``count`` connections open that never finish a request."""
    def open_one(i: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never ended
        sock.setblocking(False)
        return sock

    sockets = [open_one(i) for i in range(count)]
    while not stop.wait(0.2):
        for i, sock in enumerate(sockets):
            try:
                closed = sock.recv(1) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            if closed:
                sock.close()
                sockets[i] = open_one(i)
                reopened[0] += 1
    for sock in sockets:
        sock.close()


def probe(port: int, deadline: float, stop: threading.Event, results: list) -> None:
    """Ask the probe paths in turn until ``stop``; each answer's (path, code or error, s)."""
    i = 0
    while not stop.is_set():
        path = PATHS[i % len(PATHS)]
        i += 1
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=deadline)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            outcome: Any = response.status
        except OSError as exc:  # a timeout included: the deadline passed
            outcome = type(exc).__name__
        finally:
            connection.close()
        results.append((path, outcome, time.perf_counter() - started))


def sample(pid: int, stop: threading.Event, samples: list) -> None:
    """The server's thread and TCP connection counts, every 0.2 s."""
    import psutil

    process = psutil.Process(pid)
    while not stop.wait(0.2):
        try:
            samples.append((process.num_threads(), len(process.net_connections("tcp"))))
        except psutil.Error:
            return


def run(probes: int, idle: int, seconds: float, deadline: float) -> dict[str, Any]:
    from fresh_solver import devstack

    home = Path(tempfile.mkdtemp(prefix="fresh-solver-endpoint-"))
    port = devstack.free_port()
    process = start_serve(home, port)
    stop = threading.Event()
    results: list = []
    samples: list = []
    reopened = [0]
    try:
        threads = [threading.Thread(target=hold_idle, args=(port, idle, stop, reopened)),
                   threading.Thread(target=sample, args=(process.pid, stop, samples))]
        threads += [threading.Thread(target=probe, args=(port, deadline, stop, results))
                    for _ in range(probes)]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=deadline + 10)
    finally:
        os.killpg(process.pid, 15)
        process.wait(30)
    answered = [r for r in results if isinstance(r[1], int) and r[2] <= deadline]
    latencies = [r[2] * 1000 for r in answered]
    return {"probes": probes, "idle": idle, "seconds": seconds, "deadline_s": deadline,
            "sent": len(results), "answered": len(answered),
            "codes": sorted({str(r[1]) for r in results}),
            "failed": [list(r) for r in results if r not in answered][:20],
            "latency_ms": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                           "max": max(latencies)} if latencies else None,
            "idle_reopened": reopened[0],
            "server_threads_max": max((s[0] for s in samples), default=None),
            "server_connections_max": max((s[1] for s in samples), default=None)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=8, help="concurrent probe clients")
    parser.add_argument("--idle", type=int, default=300, help="idle connections held open")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--deadline", type=float, default=2.0, help="per probe request, s")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.probes < 1 or args.idle < 0 or args.seconds <= 0 or args.deadline <= 0:
        parser.error("--probes >= 1, --idle >= 0, --seconds and --deadline > 0")
    args.out.mkdir(parents=True, exist_ok=True)
    from fresh_solver.fingerprint import machine_fingerprint

    data = run(args.probes, args.idle, args.seconds, args.deadline) | {
        "machine": machine_fingerprint(), "command": rerun_command(__spec__.name, argv)}
    latency = data["latency_ms"] or {"p50": 0, "p99": 0, "max": 0}
    report = "\n".join([
        "# fresh-solver serve under load", "",
        f"{args.probes} probe clients and {args.idle} idle connections for {args.seconds:g} s, "
        f"deadline {args.deadline:g} s per request.", "",
        "| probes sent | answered in time | status codes | latency p50 / p99 / max ms | "
        "idle connections reopened | server threads (max) | server TCP connections (max) |",
        "|---|---|---|---|---|---|---|",
        f"| {data['sent']} | {data['answered']} | {', '.join(data['codes'])} | "
        f"{latency['p50']:.1f} / {latency['p99']:.1f} / {latency['max']:.1f} | "
        f"{data['idle_reopened']} | {data['server_threads_max']} | "
        f"{data['server_connections_max']} |", "",
        f"Machine: {data['machine']}", "", f"Rerun: `{data['command']}`", ""])
    write_results(args.out, data, report)
    return 0 if data["answered"] == data["sent"] else 1


if __name__ == "__main__":
    sys.exit(main())
