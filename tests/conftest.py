"""Shared fixtures: the Desk emulator, settings pointing at it, and a client built from them.

Fixtures made with `@e2e_fixture` start real servers on loopback (the emulator, Redis,
PostgreSQL): the tests using them are end-to-end (marked `e2e`, tests/support/tiers.py), and
every other test runs under the fast tier's tripwire. Under CI=true a missing server fails the run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.boot import build_desk_client
from bot.config import Settings
from bot.desk import DeskClient
from bot.sandbox.desk_emulator import DeskEmulator
from bot.shared import forget_connections
from tests.support.databases import (
    create_postgres_database,
    database_kind,
    drop_postgres_database,
    migrated,
    migrated_sqlite_file,
)
from tests.support.environment import make_settings, missing_service, pg_tool, redis_binary
from tests.support.services import PostgresServer, PostgresUnavailable, RedisServer
from tests.support.tiers import e2e_fixture, fast_tier_guard, mark_end_to_end, note_tripped_call

pytest_plugins = ["pytester"]  # tests/test_tiers.py runs pytest on deliberate violations


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_end_to_end(items)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    note_tripped_call(item, call)


@pytest.fixture(autouse=True)
def _fast_tier(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test not marked e2e fails if it opens a socket, starts a process or sleeps."""
    yield from fast_tier_guard(request)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's real credentials."""
    for name in list(os.environ):
        if name.startswith(("DESK_", "SLACK_", "DIGEST_", "REDIS_", "DATABASE_")):
            monkeypatch.delenv(name, raising=False)


@e2e_fixture
def emulator() -> Iterator[DeskEmulator]:
    with DeskEmulator() as emu:
        yield emu


@pytest.fixture
def settings(emulator: DeskEmulator) -> Settings:
    return make_settings(emulator)


@pytest.fixture
def client(settings: Settings) -> DeskClient:
    return build_desk_client(settings)


# --- Redis (tests of bot/shared) ---------------------------------------------------------------
@e2e_fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(redis_session: RedisServer) -> str:
    """The URL of a redis-server shared by the whole session (`redis_url` for an emptied one)."""
    return redis_session.url


@pytest.fixture
def redis_url(redis_session: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_session.flushall()
    return redis_session.url


@pytest.fixture
def no_registered_connections() -> Iterator[None]:
    """Each test starts and ends without this process's shared Redis connections (connection_for)."""
    forget_connections()
    yield
    forget_connections()


@e2e_fixture
def redis_process() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop, restart or pause mid-test."""
    server = RedisServer(redis_binary()).start()
    yield server
    server.stop()


# --- PostgreSQL (tests of bot/digests) ---------------------------------------------------------
@e2e_fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server (tests/support/services.py `PostgresServer`) for the session,
    as a SQLAlchemy URL; TEST_DATABASE_URL points the tests at an existing server instead."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    initdb, pg_ctl = pg_tool("initdb"), pg_tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        missing_service("PostgreSQL (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing_service("psycopg 3 (pip install '.[postgres]')")
    assert initdb is not None and pg_ctl is not None
    server = PostgresServer(initdb, pg_ctl)
    try:
        server.start()
    except PostgresUnavailable as error:
        missing_service(f"PostgreSQL ({error})")
    except RuntimeError as error:
        pytest.fail(str(error))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for one test: a SQLite file, or, when parametrized indirectly with
    "postgres" (`BOTH_DATABASES`, which parametrizes `database_url`), a new database on the
    session's PostgreSQL server."""
    if database_kind(request) == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    server_url: str = request.getfixturevalue("postgres_url")
    url = create_postgres_database(server_url)
    try:
        yield url
    finally:
        drop_postgres_database(server_url, url)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, empty_database_url: str) -> str:
    """A database for one test, migrated to this version's schema (as the release phase leaves it):
    a SQLite file, or with "postgres" (`BOTH_DATABASES`) a new PostgreSQL database."""
    if empty_database_url.startswith("sqlite:///"):
        migrated_sqlite_file(Path(empty_database_url.removeprefix("sqlite:///")))
    else:
        migrated(empty_database_url).dispose()
    return empty_database_url


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """configure_logging() changes process-wide state: put it back afterwards. The bot's own
    handler, if an earlier test installed it, writes to that test's captured stderr: it is set
    aside, so the test's configure_logging() makes one on this test's stderr."""
    root, urllib3 = logging.getLogger(), logging.getLogger("urllib3")
    handlers, levels = list(root.handlers), (root.level, urllib3.level)
    formatters = [handler.formatter for handler in handlers]
    earlier = [handler for handler in handlers if getattr(handler, "_desk_bot", False)]
    for handler in earlier:
        root.removeHandler(handler)
    yield
    for handler in earlier:
        root.addHandler(handler)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler, formatter in zip(handlers, formatters, strict=True):
        handler.setFormatter(formatter)
    root.setLevel(levels[0])
    urllib3.setLevel(levels[1])
