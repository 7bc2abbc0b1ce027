"""The operations store: every production solve, every fallback and refusal, the alert log and
its delivery outbox, in one SQL database shared by all processes (solvers, `health`, `serve`,
the health DAG).

Where: ``FRESH_SOLVER_DB_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/fresh_solver``),
else ``sqlite:///$FRESH_SOLVER_HOME/operations.db``. The schema is created and upgraded by the
alembic migrations in ``migrations/`` the first time a process opens the store (under a file
lock on SQLite, an advisory lock on PostgreSQL, so concurrent first openers do not race).
SQLite runs in WAL mode with a busy timeout: many writer processes queue instead of failing.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

solves = sa.Table(
    "solves", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),  # epoch seconds, solve end
    sa.Column("template_id", sa.String(200), nullable=False, index=True),
    sa.Column("params_source", sa.String(500), nullable=False),
    sa.Column("version", sa.String(50)),  # registry version served, if any
    sa.Column("jobs", sa.Integer),
    sa.Column("tasks", sa.Integer),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("objective", sa.BigInteger),
    sa.Column("best_bound", sa.Float),
    sa.Column("solve_time_s", sa.Float, nullable=False),
    sa.Column("build_time_s", sa.Float),
    sa.Column("peak_rss_mb", sa.Float),
    sa.Column("fallback", sa.Boolean, nullable=False, default=False),
    sa.Column("host", sa.String(64), nullable=False),  # machine fingerprint hash
    sa.Column("ortools_version", sa.String(30)),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("template_id", sa.String(200), index=True),
    sa.Column("kind", sa.String(30), nullable=False),  # fallback | refusal | dropped
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("host", sa.String(64), nullable=False),
)

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # firing | resolved
    sa.Column("template_id", sa.String(200)),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # JSON
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float),
    sa.Column("last_seen_at", sa.Float, nullable=False),
    sa.Column("last_notified_at", sa.Float),
    sa.Column("notifications", sa.Integer, nullable=False, default=0),
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # the Alert as JSON, as it was sent
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.Float, nullable=False, index=True),
    sa.Column("delivered_at", sa.Float),
    sa.Column("gave_up_at", sa.Float),
    sa.Column("last_error", sa.Text),
)

spooled = sa.Table(  # spool files written (monitor.py: exactly once, with their rows)
    "spooled", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("written_at", sa.Float, nullable=False),
)

MIGRATIONS = Path(__file__).with_name("migrations")
SCHEMA_HEAD = "0002"  # the newest migration's revision (a test keeps the two equal)


def db_url() -> str:
    """The store's SQLAlchemy URL (``FRESH_SOLVER_DB_URL``, else SQLite in the data folder)."""
    url = os.environ.get("FRESH_SOLVER_DB_URL")
    if url:
        return url
    from fresh_solver import tracking

    tracking.home().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{tracking.home() / 'operations.db'}"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot name the store, or None: it must parse as a SQLAlchemy URL whose
    dialect and driver are installed (``mysql://`` without a driver fails here, not on the
    first record)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(url).get_dialect().import_dbapi()
    except ArgumentError:
        return "is not a SQLAlchemy database URL (e.g. sqlite:///path/operations.db)"
    except (NoSuchModuleError, ImportError) as exc:
        return f"names a database driver that is not installed ({exc})"
    return None


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine(url: str | None = None) -> Engine:
    """The process's engine for ``url`` (default :func:`db_url`), schema at head."""
    url = url or db_url()
    with _engines_lock:
        existing = _engines.get(url)
        if existing is not None:
            return existing
        created = _create_engine(url)
        if _stored_revision(created) != SCHEMA_HEAD:  # alembic costs ~1 s to import
            from fresh_solver.tracking import ALEMBIC_LOCK

            with ALEMBIC_LOCK, _migration_lock(created):
                upgrade(created)
        _engines[url] = created
        return created


def dispose_all() -> None:
    """Close every pooled connection (tests that point the store elsewhere, forks)."""
    with _engines_lock:
        for existing in _engines.values():
            existing.dispose()
        _engines.clear()


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        created = sa.create_engine(url, connect_args={"timeout": 30})
        if created.url.database:  # SQLite creates the file, not its folder
            Path(created.url.database).parent.mkdir(parents=True, exist_ok=True)

        @sa.event.listens_for(created, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return created
    # A PostgreSQL server that does not answer must not hang the writer thread for minutes.
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


@contextlib.contextmanager
def _migration_lock(created: Engine) -> Iterator[None]:
    """One process at a time creates or upgrades the schema."""
    if created.dialect.name == "sqlite":
        from fresh_solver.tracking import sqlite_file_lock

        with sqlite_file_lock(Path(created.url.database or "operations.db")):
            yield
    elif created.dialect.name == "postgresql":
        with created.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(7294105)"))
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(7294105)"))
                conn.commit()
    else:
        yield


def _stored_revision(created: Engine) -> str | None:
    """The schema revision the database records (None: no schema yet)."""
    try:
        with created.connect() as connection:
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")
                                      ).scalar()
    except sa.exc.ProgrammingError:  # PostgreSQL: no such table
        return None
    except sa.exc.OperationalError as exc:  # SQLite: no such table; else the store is down
        if "no such table" in str(exc):
            return None
        raise


def _alembic_config(connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(created: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there)."""
    from alembic import command

    with created.begin() as connection:
        command.upgrade(_alembic_config(connection), "head")


def schema_revision(created: Engine) -> tuple[str | None, str]:
    """(the database's revision, the newest migration's): equal when the schema is at head."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with created.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        head = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
    return current, head


def safe_url(url: str) -> str:
    """The URL without its password, for messages and log lines (also one SQLAlchemy
    cannot parse: whatever sits between ``user:`` and ``@`` is hidden)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
