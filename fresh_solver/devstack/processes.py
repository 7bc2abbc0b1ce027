"""Processes of the local stacks: each server or worker in a session of its own, started,
watched, signalled and stopped as a whole session, and waited for over HTTP (stdlib only)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
HOST = "127.0.0.1"


@dataclass
class Service:
    """A started server: its URL and the sessions (one per process) that make it up.

    ``processes`` rows are JSON-able (name, pid, log) so a later process can stop them from
    ``stack.json``; ``info`` holds what a user needs to log in (Airflow's password file)."""

    name: str
    url: str
    port: int
    processes: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    popens: list[subprocess.Popen] = field(default_factory=list, repr=False, compare=False)

    def to_json(self) -> dict:
        """What stack.json records (no Popen objects: they do not outlive this process)."""
        return {"name": self.name, "url": self.url, "port": self.port,
                "processes": self.processes, "info": self.info}

    @classmethod
    def from_json(cls, data: dict) -> Service:
        """A service read back from stack.json, enough to check and stop it elsewhere."""
        return cls(data["name"], data["url"], data["port"], list(data["processes"]),
                   dict(data.get("info", {})))


class StackError(RuntimeError):
    """A server could not start (the message carries the tail of its log)."""



def venv_bin() -> Path:
    """The bin/ folder of the running interpreter's environment: the servers must run the same
    airflow/mlflow (and see the same fresh_solver) as the process that starts them."""
    return Path(sys.executable).parent


def port_in_use(port: int, host: str = HOST) -> bool:
    """Whether something listens on ``host:port`` (or a wildcard address), so ``up`` can refuse
    before starting anything. SO_REUSEADDR: a just-stopped stack's TIME_WAIT sockets do not
    count, as they do not stop the servers (which set it too) from binding."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    """A port free on 127.0.0.1 now (for tests and side-by-side stacks)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def log_tail(path: Path | str, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def spawn(service: Service, name: str, argv: list[str], env: dict, log: Path,
           cwd: Path | None = None, cpus: list[int] | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
    if cpus:
        # Pinned from here, not in a preexec_fn (unsafe in a process with threads): the
        # worker's pool processes, forked seconds later at start-up, inherit it.
        os.sched_setaffinity(process.pid, cpus)
    service.popens.append(process)
    service.processes.append({"name": name, "pid": process.pid, "pgid": process.pid,
                              "log": str(log)})
    return process


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgrp, session) of ``pid`` from /proc, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[2]), int(fields[3])


def _session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``: the server and everything it spawned,
    whatever process group they moved to. Without /proc, the session leader's group."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(sid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [sid]
    members = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat and stat[2] == sid and stat[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def _signal_session(sid: int, sig: int) -> None:
    # One killpg per process group, so a server and its helpers get the signal together; the
    # groups that Airflow's task runners make for themselves within the session are reached
    # as well. (Airflow's triggerer may still take ~10 s: it waits for its trigger runner.)
    groups = {sid}
    if Path("/proc").is_dir():
        groups |= {stat[1] for pid in _session_members(sid) if (stat := _proc_stat(pid))}
    for pgid in sorted(groups, key=lambda g: g != sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def send_signal(service: Service, sig: int) -> None:
    """Signal every process of the service (fault injection: SIGSTOP hangs a server with its
    sockets still accepting, SIGCONT resumes it)."""
    for row in service.processes:
        _signal_session(row["pid"], sig)


def alive(service: Service) -> list[str]:
    """Names of the service's processes that still run (anything left in their session)."""
    for process in service.popens:
        process.poll()  # reap our own children, or they count as alive (zombies)
    return [p["name"] for p in service.processes if _session_members(p["pid"])]


def stop(handle: Service | list[Service], timeout: float = 20.0) -> None:
    """Stop services by session: SIGTERM everything in them, SIGKILL what is left after
    ``timeout`` s. Idempotent, and works from another process (``down``)."""
    services = handle if isinstance(handle, list) else [handle]
    sids = [p["pid"] for s in services for p in s.processes]
    for sid in sids:
        _signal_session(sid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(s) for s in services):
            break
        time.sleep(0.2)
    else:
        for sid in sids:
            _signal_session(sid, signal.SIGKILL)
        time.sleep(0.5)
    for s in services:
        for process in s.popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(service: Service, path: str, timeout: float) -> None:
    """Wait until ``service.url + path`` answers 200; raise StackError with the log tail as
    soon as one of its processes dies, or when ``timeout`` s pass."""
    url = service.url.rstrip("/") + path
    deadline = time.monotonic() + timeout
    while True:
        for process, row in zip(service.popens, service.processes):
            if process.poll() is not None:
                raise StackError(f"{service.name} {row['name']} exited with {process.returncode} "
                                 f"before {url} answered; {row['log']} ends:\n"
                                 f"{log_tail(row['log'])}")
        try:
            if http_get(url)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {r['log']}\n{log_tail(r['log'], 15)}" for r in service.processes)
            raise StackError(f"{url} did not answer within {timeout:.0f} s\n{logs}")
        time.sleep(0.3)
