"""The tests' databases: which kind a test asked for, and an engine on one with the current schema."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.database import connect, migrate


def database_kind(request: pytest.FixtureRequest) -> str:
    """"sqlite" or "postgres": a test parametrized (indirectly) on `database_url` or `empty_database_url`
    (`BOTH_DATABASES`) says which; any other test gets SQLite."""
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec is not None else {}
    chosen = getattr(request, "param", None) or params.get("empty_database_url") or params.get("database_url")
    return str(chosen or "sqlite")


_template: list[Path] = []  # one migrated SQLite file per test session, copied for each test


def migrated_sqlite_file(path: Path) -> None:
    """Make `path` a SQLite database with this version's schema: a copy of one migrated once per session
    (what `migrate` gives an empty file, without paying for it in every test)."""
    if not _template:
        folder = tempfile.mkdtemp(prefix="desk-bot-schema-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = Path(folder) / "migrated.db"
        engine = connect(f"sqlite:///{template}")
        migrate(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
        engine.dispose()
        _template.append(template)
    shutil.copyfile(_template[0], path)


def migrated(url: str, default_app: str = "default") -> sa.Engine:
    """An engine on `url` with this version's schema (migrated as `python -m bot migrate` does;
    nothing to do when it already is). For "sqlite://", a new in-memory database."""
    engine = connect(url)
    migrate(engine, default_app=default_app)
    return engine


def create_postgres_database(server_url: str) -> str:
    """A new, empty database on the PostgreSQL server at `server_url`; its URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres_database(server_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
