"""This machine's PostgreSQL for integration tests (127.0.0.1:5432, user postgres, trust auth):
an admin engine that skips the test, saying why, when the server is not there (CI turns that
skip into a failure), and throw-away databases dropped after use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def admin_engine() -> Iterator:
    """An AUTOCOMMIT engine on the maintenance database; skips when it cannot connect."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {str(exc).splitlines()[0]}")
    try:
        yield admin
    finally:
        admin.dispose()


@contextmanager
def database(admin, name: str, create: bool = True) -> Iterator[str]:
    """A new, empty database ``name`` (with ``create=False`` only its name, for what is
    under test to create); yields its URL's tail (``127.0.0.1:5432/<name>``, for the caller's
    driver prefix) and drops it after, whoever is still connected."""
    import sqlalchemy as sa

    if create:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
