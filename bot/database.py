"""The bot's SQL database (DATABASE_URL): creating tables safely when several processes boot at once,
the shared claim protocol, and the secret-free `DatabaseUnavailable`.

Digests and language changes each own their tables (bot/digests/store.py,
bot/management/store.py); both are created through `create_tables`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

log = logging.getLogger(__name__)


def create_tables(engine: Engine, metadata: sa.MetaData, what: str) -> None:
    """Create `metadata`'s tables if missing. Another process may be creating them at the same
    moment: its CREATE then makes ours fail, after which the tables exist and a second pass passes."""
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                metadata.create_all(conn, checkfirst=True)
            return
        except DBAPIError:
            if attempt == 2:
                raise
            log.info("%s tables were being created concurrently; checking again", what)


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
