"""Where MLflow lives, and the experiment names every part of the project uses (DESIGN §6).

The tracking URI comes from ``MLFLOW_TRACKING_URI``; the embedded default is a SQLite store in
the project's data folder (``FRESH_SOLVER_HOME``, default ``./.fresh_solver``) with artifacts
beside it, so a laptop needs no server. ``import mlflow`` costs seconds: this package imports
it only inside the functions that track, so importing it (or ``names``) is free.
"""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

from fresh_solver.errors import InputError


def home() -> Path:
    return Path(os.environ.get("FRESH_SOLVER_HOME", ".fresh_solver")).resolve()


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else the embedded SQLite store under ``FRESH_SOLVER_HOME``. A
    bare ``postgresql://`` store is read through psycopg2: under SQLAlchemy's default driver
    (psycopg 3) MLflow's archiving on promotion fails ("integer <> character varying")."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri.replace("postgresql://", "postgresql+psycopg2://", 1) \
            if uri.startswith("postgresql://") else uri
    home().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home() / 'mlflow.db'}"


def ui_link(server: str, page: str = "/models") -> str:
    """A link straight to ``page`` of the MLflow UI at ``server`` (``/models``,
    ``/models/NAME/versions/N``): MLflow 3's UI opens in its GenAI mode, whose sidebar has no
    Models entry until the reviewer switches to "Model training"; the page itself opens
    either way."""
    return f"{server.rstrip('/')}/#{page}"


def tuning_experiment(template_id: str) -> str:
    return f"fresh-solver/tuning/{template_id}"


def validation_experiment(template_id: str) -> str:
    return f"fresh-solver/validation/{template_id}"


def client():
    """An MlflowClient on the project's tracking URI (MLflow's noisy start-up quietened)."""
    warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    if not uri.startswith("sqlite:///") or uri in _opened:
        return MlflowClient(tracking_uri=uri)
    with ALEMBIC_LOCK, sqlite_file_lock(Path(uri.removeprefix("sqlite:///"))):
        mlflow_client = MlflowClient(tracking_uri=uri)  # creates and migrates the tables
        mlflow_client.search_registered_models(max_results=1)  # the registry's, too
    _opened.add(uri)
    return mlflow_client


_opened: set[str] = set()  # SQLite stores this process has opened (created and migrated)
# Alembic's `context` and `op` are process-wide proxies: MLflow's migrations and the
# operations store's, run by two threads at once, clobber each other ("'NoneType' object has
# no attribute 'add_column'"). Every migration in this process holds this lock.
ALEMBIC_LOCK = threading.RLock()


@contextmanager
def sqlite_file_lock(db: Path):
    """Held while a process first opens (creates, migrates) a SQLite database: two processes
    creating one store at once make MLflow's migration fail ("Online migration expected to
    match one row"), e.g. a tuning session and a health check on a fresh data folder; the
    operations store's migrations take the same lock."""
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Tracking URIs whose server (or workspace) decides where artifacts go; any other store (a
# database, a folder) would put them under ./mlruns in whatever directory a command runs from.
_ARTIFACTS_DECIDED_ELSEWHERE = ("http://", "https://", "databricks")


def experiment_id(mlflow_client, name: str) -> str:
    """The id of experiment ``name``, created on first use; its artifacts under the data
    folder unless a server decides (DESIGN §6: never ``./mlruns`` in the caller's
    directory, which MLflow picks for a database store the project did not create)."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if not tracking_uri().startswith(_ARTIFACTS_DECIDED_ELSEWHERE):
        artifact_location = (home() / "artifacts").as_uri()
    return mlflow_client.create_experiment(name, artifact_location=artifact_location)


def get_run(mlflow_client, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_run(run_id)
    except MlflowException:
        raise InputError(f"no MLflow run {run_id!r} at {tracking_uri()}") from None
