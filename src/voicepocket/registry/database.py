"""The registry's SQL database: connecting to it and migrating its schema.

Owns :func:`make_database` (an SQLAlchemy engine for a database URL: SQLite by default,
PostgreSQL for a cluster) and :func:`migrate` (the Alembic migrations under
``migrations/``, run at start-up). What the tables hold is ``models``; who reads and
writes them, the other registry modules.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

_MIGRATIONS = Path(__file__).parent / "migrations"


def make_database(database_url: str) -> Engine:
    """An SQLAlchemy engine; SQLite gets cross-thread use and enforced foreign keys."""
    if database_url.startswith("sqlite"):
        database = create_engine(database_url, connect_args={"check_same_thread": False})

        @event.listens_for(database, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return database
    return create_engine(database_url, pool_pre_ping=True)


def migrate(database: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with database.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
