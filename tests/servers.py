"""Real servers for integration tests: started on 127.0.0.1 and a free port, stopped after.

The MLflow server is started the way `make up` starts it (``fresh_solver.devstack``, which
runs mlflow_config/start_server.sh: what a deployment runs) and stopped with its whole
process session, because its workers outlive the main process.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from fresh_solver import devstack


@contextmanager
def mlflow_server(home: Path):
    """Yields the server's URL; the server's state lives in ``home``."""
    service = devstack.start_mlflow(home, devstack.free_port())
    try:
        yield service.url
    finally:
        devstack.stop(service)


@contextmanager
def using_mlflow_server(home: Path):
    """A server as above, with MLFLOW_TRACKING_URI pointing at it (and a client data folder)
    for the duration; the environment is restored after."""
    import pytest

    with mlflow_server(home) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", url)
        mp.setenv("FRESH_SOLVER_HOME", str(home / "client"))
        yield url


@contextmanager
def mlflow_auth_server(home: Path, backend_store_uri: str, env: dict[str, str]):
    """mlflow_config/start_server.sh with ``MLFLOW_AUTH=1`` (the fresh-solver-auth app: users,
    and only reviewers promote) over ``backend_store_uri``, which also holds its users, on
    127.0.0.1 and a free port; artifacts proxied into ``home``. ``env`` adds the admin's
    password (MLFLOW_AUTH_ADMIN_PASSWORD) and FRESH_SOLVER_REVIEWERS. Yields the URL."""
    import os
    import subprocess

    port = devstack.free_port()
    service = devstack.Service("mlflow-auth", f"http://{devstack.HOST}:{port}", port)
    log = home / "logs" / "mlflow.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | env | {
        "MLFLOW_AUTH": "1", "FRESH_SOLVER_HOME": str(home), "MLFLOW_HOST": devstack.HOST,
        "MLFLOW_PORT": str(port), "MLFLOW_WORKERS": "1",
        "MLFLOW": str(devstack.venv_bin() / "mlflow"),
        "MLFLOW_BACKEND_STORE_URI": backend_store_uri}
    with open(log, "ab") as out:
        process = subprocess.Popen(
            ["bash", str(devstack.ROOT / "mlflow_config" / "start_server.sh")], env=env,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    service.popens.append(process)
    service.processes.append({"name": "server", "pid": process.pid, "pgid": process.pid,
                              "log": str(log)})
    try:
        devstack.wait_ready(service, "/health", 180)
        yield service.url
    finally:
        devstack.stop(service)
