"""The bot's SQL database (DATABASE_URL), owned here: the engine, the schema's migrations, the shared
claim protocol, one small base for every store, and the secret-free `DatabaseUnavailable`.

- `connect(url)` builds the engine (once, in the composition root); `open_database(url)` also makes
  sure its schema is current: SQLite migrates itself, PostgreSQL must have run `python -m bot migrate`
  (Heroku's release phase), else `SchemaBehind` (exit 2, one line).
- `migrate(engine)` runs the Alembic migrations under bot/migrations/ in one transaction, under a
  lock (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE), so two processes migrating at once
  end with one having done it and the other finding nothing to do.
- `SqlStore` is the base of the digest, watch and language-change stores: a connection that cannot
  be made is `DatabaseUnavailable`, the same way everywhere; `app_column`, `channel_column` and
  `user_column` give the same thing the same width in every table.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from bot.config import DEFAULT_APP_NAME, ConfigError

if TYPE_CHECKING:  # Alembic is imported only to migrate, or to explain a schema that is not current
    from alembic.config import Config
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)
# Alembic says which dialect it found on every connection it configures; what it ran is in our own
# line (and `python -m bot migrate`'s output), so only its warnings are kept.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock's key for migrations: any constant of ours ("desk" in ASCII).
MIGRATION_LOCK_KEY = 0x6465736B

# Every table of the bot, on one MetaData: the stores add theirs (bot/digests/store.py,
# bot/watch/store.py, bot/management/store.py); the schema test compares it with the migrations'.
metadata = sa.MetaData()

# One width per kind of value, in every table.
APP_NAME_LENGTH = 64  # a Desk app's name (DESK_APPS), or "default"
CHANNEL_ID_LENGTH = 64  # a Slack channel ID (C…, G…, D…: 9–11 characters today)
USER_ID_LENGTH = 64  # a Slack user ID, or cli:<os user>
OWNER_LENGTH = 100  # a claim's owner: host, process and a random part (bot/slack/posting.py)
TS_LENGTH = 40  # a Slack message timestamp
ERROR_LENGTH = 500  # why a claim failed or was skipped, in our words


def app_column(name: str = "app", **options: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.String(APP_NAME_LENGTH), **options)


def channel_column(name: str = "channel_id", **options: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.String(CHANNEL_ID_LENGTH), **options)


def user_column(name: str, **options: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.String(USER_ID_LENGTH), **options)


# --- the engine ------------------------------------------------------------------------------------


def connect(database_url: str) -> Engine:
    """An engine for DATABASE_URL: SQLite waits for locks instead of failing, PostgreSQL pings."""
    try:
        url = sa.engine.make_url(database_url)
    except (ArgumentError, ValueError):  # their messages repeat pieces of the URL
        url = None
    if url is None:
        raise ConfigError(
            "DATABASE_URL", "could not be read as a URL", "In a password, write @ as %40, : as %3A and / as %2F."
        )
    if url.drivername.startswith("sqlite"):
        memory = database_url in ("sqlite://", "sqlite:///:memory:")
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            poolclass=sa.pool.StaticPool if memory else None,
        )
        if memory:  # one connection is the whole database: threads take turns on it
            _TAKE_TURNS[engine] = threading.RLock()

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                # WAL lets readers run while a process writes a claim.
                cursor.execute("PRAGMA journal_mode=WAL")
            except Exception:  # an optimisation only; the busy timeout still applies
                log.debug("could not switch SQLite to WAL", exc_info=True)
            finally:
                cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=3, max_overflow=2)


_TAKE_TURNS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


@contextmanager
def connection(engine: Engine, *, begin: bool) -> Iterator[Connection]:
    """A connection (in a transaction if `begin`); DatabaseUnavailable when none can be made."""
    turn = _TAKE_TURNS.get(engine)
    if turn is None:
        with _connection(engine, begin=begin) as conn:
            yield conn
        return
    with turn, _connection(engine, begin=begin) as conn:
        yield conn


@contextmanager
def _connection(engine: Engine, *, begin: bool) -> Iterator[Connection]:
    failure = None
    try:
        conn = engine.connect()
    except DBAPIError as error:  # refused, unknown host, timeout, authentication, TLS…
        failure = unavailable(engine.url, error)
    if failure is not None:
        raise failure  # outside the except block: the driver's error is not even its context
    with conn:
        if begin:
            with conn.begin():
                yield conn
        else:
            yield conn


# --- the schema's migrations -----------------------------------------------------------------------


class SchemaBehind(ConfigError):
    """The database's schema is older than this version's (or newer: a rollback)."""


def _alembic_config(conn: Connection | None = None, default_app: str = DEFAULT_APP_NAME) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    config.attributes["default_app"] = default_app  # the app the single-app tables' rows become
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migration scripts, read from bot/migrations/ once per process (they do not change while it runs)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with connection(engine, begin=False) as conn:
        return MigrationContext.configure(conn).get_current_revision()


_REVISION = re.compile(r'^(down_revision|revision) = "([^"]+)"$', re.MULTILINE)


@functools.cache
def head_from_scripts() -> str:
    """This version's schema revision, read from the scripts' own `revision` / `down_revision` lines
    without Alembic, which costs a serving process ~11 MB (it loads every dialect's DDL): a process
    whose database is current never imports it. tests/test_migrations.py checks it is Alembic's head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        for kind, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            (revisions if kind == "revision" else parents).add(value)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"bot/migrations/versions has {len(heads)} heads, not one: {sorted(heads)}")
    return str(heads.pop())


def stored_revision(engine: Engine) -> str | None:
    """The revision Alembic recorded in the database (its alembic_version table), without Alembic."""
    with connection(engine, begin=False) as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return str(rows[0]) if len(rows) == 1 else None


_MIGRATING = threading.Lock()  # Alembic loads env.py as a module: one migration per process at a time


def migrate(engine: Engine, *, default_app: str = DEFAULT_APP_NAME) -> str | None:
    """Bring the schema to this version's (bot/migrations/); the revision it started from (None: an
    empty database, or one made before migrations). Idempotent, and safe with several processes
    at once: bot/migrations/env.py takes the lock inside the transaction, then reads the revision."""
    from alembic import command

    with _MIGRATING, connection(engine, begin=False) as conn:
        config = _alembic_config(conn, default_app)
        command.upgrade(config, "head")
        conn.commit()
    before: str | None = config.attributes.get("before")
    head = head_revision()
    if before != head:
        log.info("database schema migrated from %s to %s", before or "nothing", head)
    return before


def require_current_schema(engine: Engine) -> None:
    """SchemaBehind (one line saying to run `python -m bot migrate`) unless the schema is this version's."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is None:
        problem = "the database has no schema of this version yet (it was never migrated)"
    elif current in {script.revision for script in _scripts().walk_revisions()}:
        problem = f"the database's schema is behind (revision {current}, this version needs {head})"
    else:
        problem = f"the database's schema (revision {current}) is of a newer version than this one ({head})"
    raise SchemaBehind("DATABASE_URL", problem, "Run `python -m bot migrate` (the release phase does, on Heroku)")


def ensure_current_schema(engine: Engine, *, default_app: str = DEFAULT_APP_NAME) -> None:
    """SQLite (the demo, tests, one machine) migrates itself; any other database must have been
    migrated (`python -m bot migrate`), else `SchemaBehind`. A current schema, the common case, is
    recognised without importing Alembic."""
    if stored_revision(engine) == head_from_scripts():
        return
    if engine.dialect.name == "sqlite":
        migrate(engine, default_app=default_app)
    else:
        require_current_schema(engine)


def open_database(database_url: str, *, default_app: str = DEFAULT_APP_NAME) -> Engine:
    """The engine for DATABASE_URL with a current schema (`ensure_current_schema`)."""
    engine = connect(database_url)
    ensure_current_schema(engine, default_app=default_app)
    return engine


# --- the store base --------------------------------------------------------------------------------


class SqlStore:
    """What every store shares: one engine, connections that become `DatabaseUnavailable` when the
    database cannot be reached, each write its own short transaction, and the dialect's upsert."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = upsert_insert(engine)

    def connection(self, *, begin: bool) -> Any:
        return connection(self.engine, begin=begin)

    def write(self, statement: Any) -> Any:
        with connection(self.engine, begin=True) as conn:
            return conn.execute(statement)

    def won(self, statement: Any) -> bool:
        """Did this conditional write change a row? RETURNING says so on both databases
        (psycopg 3 reports rowcount -1 for INSERT … ON CONFLICT under SQLAlchemy)."""
        with connection(self.engine, begin=True) as conn:
            return conn.execute(statement).first() is not None

    def rows(self, query: Any) -> list[Any]:
        with connection(self.engine, begin=False) as conn:
            return list(conn.execute(query).all())



def upsert_insert(engine: Engine) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT, whose ON CONFLICT (DO NOTHING / DO UPDATE) the claims need: both
    SQLite's and PostgreSQL's have it; other databases are refused with what to use."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    if engine.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert
    raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")


class ClaimState(StrEnum):
    """The states of a claim row (digests' posting records, watch alerts)."""

    CLAIMED = "claimed"  # a process is posting (or crashed while posting)
    POSTED = "posted"  # done
    RELEASED = "released"  # the last attempt definitely failed; anyone may claim again
    SKIPPED = "skipped"  # given up (a crashed claim could not be verified)


class Claim(StrEnum):
    NEW = "new"  # first claim of the row
    RETRY = "retry"  # reclaimed after a definite failure
    TAKEOVER = "takeover"  # reclaimed from a stale claim: verify history before posting
    BUSY = "busy"  # someone else holds a live claim
    DONE = "done"  # already posted or skipped


def claim_row(
    *,
    won: Callable[[Any], bool],
    seen: Callable[[], tuple[str, float | None] | None],
    insert: Any,
    table: sa.Table,
    key: Any,
    new_row: dict[str, Any],
    index_elements: Sequence[Any],
    owner: str,
    now: float,
    lease: float,
) -> Claim:
    """Become the one process that posts a row's message, with single conditional statements:

        INSERT … ON CONFLICT DO NOTHING RETURNING …            -- nobody has touched it: NEW
        UPDATE … WHERE key AND state='released' RETURNING …      -- it definitely failed: RETRY
        UPDATE … WHERE key AND state='claimed' AND claimed_at < now - lease RETURNING …  -- TAKEOVER

    The database serialises them, so exactly one concurrent caller sees its row come back.
    `won(statement)` runs a statement and says whether a row came back; `seen()` reads the
    row's (state, claimed_at) first, so the common cases (posted, claimed within the lease)
    cost one read and no write. A TAKEOVER must check the channel before posting.
    `table` needs the columns state, owner, claimed_at and attempts; `new_row` holds the key
    columns and any other values of a new row.
    """
    before = seen()
    if before is not None:
        state, claimed_at = before
        if state in (ClaimState.POSTED, ClaimState.SKIPPED):
            return Claim.DONE
        if state == ClaimState.CLAIMED and (claimed_at or 0) >= now - lease:
            return Claim.BUSY
    first_key = table.c[index_elements[0].name]
    first = (
        insert(table)
        .values(**new_row, state=ClaimState.CLAIMED.value, owner=owner, claimed_at=now, attempts=1)
        .on_conflict_do_nothing(index_elements=list(index_elements))
        .returning(first_key)
    )
    if before is None and won(first):
        return Claim.NEW
    reclaim = dict(state=ClaimState.CLAIMED.value, owner=owner, claimed_at=now, attempts=table.c.attempts + 1)
    retry = sa.update(table).where(key & (table.c.state == ClaimState.RELEASED.value)).values(**reclaim)
    if won(retry.returning(first_key)):
        return Claim.RETRY
    takeover = (
        sa.update(table)
        .where(key & (table.c.state == ClaimState.CLAIMED.value) & (table.c.claimed_at < now - lease))
        .values(**reclaim)
    )
    if won(takeover.returning(first_key)):
        return Claim.TAKEOVER
    after = seen()
    if after is not None and after[0] in (ClaimState.POSTED, ClaimState.SKIPPED):
        return Claim.DONE
    return Claim.BUSY


class DatabaseUnavailable(Exception):
    """The bot's database (DATABASE_URL) could not be reached. The message names DATABASE_URL and its host only:
    drivers' connection errors can repeat the URL, password included, so none is kept (not even as
    the exception's cause)."""


# What a ticker treats as "the database is down" (one line per outage, retried), not as a bug.
DB_DOWN_ERRORS: tuple[type[Exception], ...] = (DatabaseUnavailable, SQLAlchemyError)

# What a driver's connection error says, as a phrase of ours (the error's own text is not shown).
_CONNECT_FAILURES = (
    ("refused", "connection refused"),
    ("timeout", "timed out"),
    ("timed out", "timed out"),
    ("could not translate host name", "unknown host name"),
    ("name or service not known", "unknown host name"),
    ("password authentication failed", "user or password refused"),
    ("no pg_hba.conf entry", "this client is not allowed by the server"),
    ("does not exist", "the database or user does not exist"),
    ("ssl", "TLS failed"),
    ("too many connections", "too many connections"),
)


def unavailable(url: URL, error: BaseException) -> DatabaseUnavailable:
    said = str(getattr(error, "orig", None) or error).lower()
    reason = next((ours for theirs, ours in _CONNECT_FAILURES if theirs in said), type(error).__name__)
    if url.get_backend_name() == "sqlite":
        where = url.database or "memory"
    else:
        host = url.host or "localhost"
        where = f"{host}:{url.port}" if url.port else host
    if "@" in where:  # an unencoded @ in the password moved part of it into the host
        where = "its host"
    return DatabaseUnavailable(
        f"DATABASE_URL: could not connect to the {url.get_backend_name()} database at {where} ({reason}). "
        "Check that the database is running and reachable, and the URL's host, port, user and password."
    )
