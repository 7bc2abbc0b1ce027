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
