"""The MLflow tracking server of the local stacks (``mlflow_config/start_server.sh``)."""

from __future__ import annotations

import os
from pathlib import Path

from fresh_solver.devstack.processes import HOST, ROOT, Service, spawn, stop, venv_bin, wait_ready

DEFAULT_MLFLOW_PORT = 5000



def start_mlflow(home: Path, port: int, wait: bool = True, timeout: float = 120.0,
                 backend_store_uri: str | None = None, env_extra: dict | None = None) -> Service:
    """Run mlflow_config/start_server.sh (what a deployment runs) on 127.0.0.1:``port`` over
    the embedded store the CLI writes (``home``/mlflow.db), so the UI shows the main job's runs
    and versions; or over ``backend_store_uri`` (the distributed stack's PostgreSQL), where
    clients see only the server: artifacts are proxied (``mlflow-artifacts:`` URIs) into
    ``home``/server-artifacts (start_server.sh's default)."""
    home = Path(home).resolve()
    env = os.environ | {
        "FRESH_SOLVER_HOME": str(home),
        "MLFLOW_PORT": str(port),
        "MLFLOW_HOST": HOST,
        "MLFLOW": str(venv_bin() / "mlflow"),
        "MLFLOW_BACKEND_STORE_URI": backend_store_uri or f"sqlite:///{home / 'mlflow.db'}",
    } | (env_extra or {})
    service = Service("mlflow", f"http://{HOST}:{port}", port)
    spawn(service, "server", ["bash", str(ROOT / "mlflow_config" / "start_server.sh")], env,
           home / "logs" / "mlflow.log")
    if wait:
        try:
            wait_ready(service, "/health", timeout)
        except BaseException:
            stop(service)
            raise
    return service
