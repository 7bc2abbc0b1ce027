"""Real servers for integration tests: started on 127.0.0.1 and a free port, stopped after.

An MLflow server is started with the project's own script (mlflow_config/start_server.sh),
so the tests exercise what a deployment runs; it is stopped by process group because its
workers outlive the main process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def mlflow_server(home: Path):
    """Yields the server's URL; the server's state lives in ``home``."""
    port = free_port()
    env = os.environ | {"FRESH_SOLVER_HOME": str(home), "MLFLOW_PORT": str(port),
                        "MLFLOW": str(Path(sys.executable).parent / "mlflow")}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(home / "mlflow-server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(["bash", str(ROOT / "mlflow_config" / "start_server.sh")],
                               env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", 120, process)
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@contextmanager
def using_mlflow_server(home: Path):
    """A server as above, with MLFLOW_TRACKING_URI pointing at it (and a client data folder)
    for the duration; the environment is restored after."""
    import pytest

    with mlflow_server(home) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", url)
        mp.setenv("FRESH_SOLVER_HOME", str(home / "client"))
        yield url
