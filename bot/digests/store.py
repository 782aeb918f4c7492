"""Digest storage in SQL (SQLAlchemy Core): subscriptions, snapshots and per-period posting records.

SQLite by default, PostgreSQL (psycopg 3) when DATABASE_URL says so. Tables are
created on first use, tolerating several processes creating them at once.

The posting record of a (channel, period) is also its *claim*: a process may post
a period's digest only after winning one of these single-statement writes. The
database serialises them (PostgreSQL re-checks the WHERE after waiting for a row
lock; SQLite has one writer at a time), so exactly one concurrent caller changes
the row, which it sees as a row coming back from `RETURNING channel_id`:

    -- a period nobody has touched
    INSERT INTO digest_posts (channel_id, period, state, owner, claimed_at, attempts, ...)
    VALUES (:c, :p, 'claimed', :me, :now, 1, ...) ON CONFLICT (channel_id, period) DO NOTHING RETURNING channel_id
    -- a period whose earlier post definitely failed (released)
    UPDATE digest_posts SET state='claimed', owner=:me, claimed_at=:now, attempts=attempts+1
    WHERE channel_id=:c AND period=:p AND state='released' RETURNING channel_id
    -- a claim left by a crashed process (older than the lease): the winner must then
    -- check the channel's history before posting (see service.py)
    UPDATE digest_posts SET owner=:me, claimed_at=:now, attempts=attempts+1
    WHERE channel_id=:c AND period=:p AND state='claimed' AND claimed_at < :now - :lease
    RETURNING channel_id

A read comes first (posted, or claimed within the lease: nothing to write), so the
minute-by-minute ticks of many processes cost one SELECT per due channel.

Times are stored as Unix seconds (double precision): the same comparisons on both
databases, no time-zone conversion by drivers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from bot.config import ConfigError
from bot.desk.models import LanguageList

log = logging.getLogger(__name__)

metadata = sa.MetaData()

subscriptions = sa.Table(
    "digest_subscriptions",
    metadata,
    sa.Column("channel_id", sa.String(64), primary_key=True),
    sa.Column("schedule", sa.String(200), nullable=False),  # canonical grammar, zone included
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("hint", sa.String(500)),  # shown by `/desk-languages digest`, e.g. "invite the bot"
    sa.Column("disabled_reason", sa.String(500)),
    # Occurrences before this moment are never caught up (a new subscription at 10:00
    # for "daily 09:00" starts tomorrow, it does not post at once).
    sa.Column("effective_at", sa.Double, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

snapshots = sa.Table(
    "digest_snapshots",
    metadata,
    sa.Column("channel_id", sa.String(64), primary_key=True),
    sa.Column("languages", sa.Text, nullable=False),  # LanguageList.to_json() of what was shown
    sa.Column("period", sa.String(64), nullable=False),
    sa.Column("shown_at", sa.Double, nullable=False),
)

posts = sa.Table(
    "digest_posts",
    metadata,
    sa.Column("channel_id", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # PostState
    sa.Column("owner", sa.String(100)),
    sa.Column("claimed_at", sa.Double),
    sa.Column("scheduled_for", sa.Double),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("ts", sa.String(32)),
    sa.Column("posted_at", sa.Double),
    sa.Column("error", sa.String(500)),
    # The list about to be posted, so a process that finds a crashed claim's message
    # in the channel can still record what the channel was shown.
    sa.Column("shown", sa.Text),
)


class DatabaseUnavailable(Exception):
    """The digest database could not be reached. The message names DATABASE_URL and its host only:
    drivers' connection errors can repeat the URL, password included, so none is kept (not even as
    the exception's cause)."""


# What a ticker treats as "the database is down" (one line per outage, retried), not as a bug.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DatabaseUnavailable, SQLAlchemyError)

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


def _unavailable(url: URL, error: BaseException) -> DatabaseUnavailable:
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


class PostState(StrEnum):
    CLAIMED = "claimed"  # a process is posting (or crashed while posting)
    POSTED = "posted"  # done; `ts` is the Slack message
    RELEASED = "released"  # the last attempt definitely failed; anyone may claim again
    SKIPPED = "skipped"  # given up for this period (could not verify a crashed claim)


class Claim(StrEnum):
    NEW = "new"  # first claim of the period
    RETRY = "retry"  # reclaimed after a definite failure
    TAKEOVER = "takeover"  # reclaimed from a stale claim: verify history before posting
    BUSY = "busy"  # someone else holds a live claim
    DONE = "done"  # already posted or skipped


@dataclass(frozen=True)
class Subscription:
    channel_id: str
    schedule: str
    enabled: bool
    hint: str | None
    disabled_reason: str | None
    effective_at: float
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class PostRecord:
    channel_id: str
    period: str
    state: PostState
    owner: str | None
    claimed_at: float | None
    scheduled_for: float | None
    attempts: int
    ts: str | None
    posted_at: float | None
    error: str | None
    shown: str | None


def create_db_engine(database_url: str) -> Engine:
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


class DigestStore:
    """Every read and write the digest service makes. Each write is its own short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ready = False
        self._ready_lock = threading.Lock()
        # Both dialects' INSERT support ON CONFLICT (DO NOTHING / DO UPDATE), which the claim needs.
        if engine.dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql as dialect
        elif engine.dialect.name == "sqlite":
            from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
        else:
            raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")
        self._insert: Callable[[sa.Table], Any] = dialect.insert

    @classmethod
    def from_url(cls, database_url: str) -> DigestStore:
        return cls(create_db_engine(database_url))

    # --- plumbing ---------------------------------------------------------------------

    def ensure_tables(self) -> None:
        """Create the tables if missing. Another process may be creating them at the same moment:
        its CREATE then makes ours fail, after which the tables exist and a second pass passes."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            for attempt in range(3):
                try:
                    with self._connection(begin=True) as conn:
                        metadata.create_all(conn, checkfirst=True)
                    break
                except DBAPIError:
                    if attempt == 2:
                        raise
                    log.info("digest tables were being created concurrently; checking again")
            self._ready = True

    @contextmanager
    def _connection(self, *, begin: bool) -> Iterator[Connection]:
        """A connection (in a transaction if `begin`); DatabaseUnavailable when there is none."""
        failure = None
        try:
            conn = self.engine.connect()
        except DBAPIError as error:  # refused, unknown host, timeout, authentication, TLS…
            failure = _unavailable(self.engine.url, error)
        if failure is not None:
            raise failure  # outside the except block: the driver's error is not even its context
        with conn:
            if begin:
                with conn.begin():
                    yield conn
            else:
                yield conn

    def _write(self, work: Callable[[Connection], Any]) -> Any:
        self.ensure_tables()
        with self._connection(begin=True) as conn:
            return work(conn)

    def _read(self, work: Callable[[Connection], Any]) -> Any:
        self.ensure_tables()
        with self._connection(begin=False) as conn:
            return work(conn)

    # --- subscriptions ------------------------------------------------------------------

    def get_subscription(self, channel_id: str) -> Subscription | None:
        row = self._read(
            lambda c: c.execute(
                sa.select(subscriptions).where(subscriptions.c.channel_id == channel_id)
            ).first()
        )
        return Subscription(**row._mapping) if row else None

    def enabled_subscriptions(self) -> list[Subscription]:
        rows = self._read(
            lambda c: c.execute(
                sa.select(subscriptions)
                .where(subscriptions.c.enabled.is_(True))
                .order_by(subscriptions.c.channel_id)
            ).all()
        )
        return [Subscription(**row._mapping) for row in rows]

    def put_subscription(self, channel_id: str, schedule: str, now: float) -> None:
        """Create or replace a channel's subscription (enabled, hints cleared)."""
        stmt = self._insert(subscriptions).values(
            channel_id=channel_id,
            schedule=schedule,
            enabled=True,
            hint=None,
            disabled_reason=None,
            effective_at=now,
            created_at=now,
            updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[subscriptions.c.channel_id],
            set_={
                "schedule": schedule,
                "enabled": True,
                "hint": None,
                "disabled_reason": None,
                "effective_at": now,
                "updated_at": now,
            },
        )
        self._write(lambda c: c.execute(stmt))

    def delete_subscription(self, channel_id: str) -> bool:
        result = self._write(
            lambda c: c.execute(sa.delete(subscriptions).where(subscriptions.c.channel_id == channel_id))
        )
        return bool(result.rowcount)

    def set_hint(self, channel_id: str, hint: str) -> None:
        self._update_subscription(channel_id, hint=hint)

    def clear_hint(self, channel_id: str) -> None:
        self._write(
            lambda c: c.execute(
                sa.update(subscriptions)
                .where((subscriptions.c.channel_id == channel_id) & subscriptions.c.hint.is_not(None))
                .values(hint=None)
            )
        )

    def disable(self, channel_id: str, reason: str, now: float) -> None:
        self._update_subscription(channel_id, enabled=False, disabled_reason=reason, updated_at=now)

    def _update_subscription(self, channel_id: str, **values: Any) -> None:
        self._write(
            lambda c: c.execute(
                sa.update(subscriptions).where(subscriptions.c.channel_id == channel_id).values(**values)
            )
        )

    # --- snapshots ------------------------------------------------------------------------

    def get_snapshot(self, channel_id: str) -> LanguageList | None:
        text = self._read(
            lambda c: c.execute(
                sa.select(snapshots.c.languages).where(snapshots.c.channel_id == channel_id)
            ).scalar()
        )
        return LanguageList.from_json(text) if text else None

    def put_snapshot(self, channel_id: str, shown: LanguageList, period: str, now: float) -> None:
        values = {"languages": shown.to_json(), "period": period, "shown_at": now}
        stmt = self._insert(snapshots).values(channel_id=channel_id, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[snapshots.c.channel_id], set_=values)
        self._write(lambda c: c.execute(stmt))

    # --- posting records and claims ------------------------------------------------------

    def claim(
        self,
        channel_id: str,
        period: str,
        owner: str,
        *,
        now: float,
        lease: float,
        scheduled_for: float | None,
    ) -> Claim:
        """Try to become the one process that posts (channel, period). See the module docstring."""
        key = (posts.c.channel_id == channel_id) & (posts.c.period == period)
        # Every process ticks every minute: answer the common cases with one read, no write.
        # Only a hint: the conditional writes below decide.
        seen = self.get_post(channel_id, period)
        if seen is not None:
            if seen.state in (PostState.POSTED, PostState.SKIPPED):
                return Claim.DONE
            if seen.state is PostState.CLAIMED and (seen.claimed_at or 0) >= now - lease:
                return Claim.BUSY
        insert = (
            self._insert(posts)
            .values(
                channel_id=channel_id,
                period=period,
                state=PostState.CLAIMED.value,
                owner=owner,
                claimed_at=now,
                scheduled_for=scheduled_for,
                attempts=1,
            )
            .on_conflict_do_nothing(index_elements=[posts.c.channel_id, posts.c.period])
            .returning(posts.c.channel_id)
        )
        if seen is None and self._won(insert):
            return Claim.NEW
        reclaim = dict(
            state=PostState.CLAIMED.value, owner=owner, claimed_at=now, attempts=posts.c.attempts + 1
        )
        retry = sa.update(posts).where(key & (posts.c.state == PostState.RELEASED.value)).values(**reclaim)
        if self._won(retry.returning(posts.c.channel_id)):
            return Claim.RETRY
        takeover = (
            sa.update(posts)
            .where(key & (posts.c.state == PostState.CLAIMED.value) & (posts.c.claimed_at < now - lease))
            .values(**reclaim)
        )
        if self._won(takeover.returning(posts.c.channel_id)):
            return Claim.TAKEOVER
        record = self.get_post(channel_id, period)
        if record is not None and record.state in (PostState.POSTED, PostState.SKIPPED):
            return Claim.DONE
        return Claim.BUSY

    def _won(self, statement: Any) -> bool:
        """Did this conditional write change a row? RETURNING says so on both databases
        (psycopg 3 reports rowcount -1 for INSERT … ON CONFLICT under SQLAlchemy)."""
        return self._write(lambda c: c.execute(statement).first()) is not None

    def mark_posted(self, channel_id: str, period: str, ts: str, now: float) -> None:
        # Not conditional on the owner: if a slow post of ours lost its lease, the message
        # still exists and this record should say so.
        self._set_post(channel_id, period, state=PostState.POSTED.value, ts=ts, posted_at=now, error=None)

    def release(self, channel_id: str, period: str, owner: str, error: str) -> None:
        """Give the claim back after a definite failure, so the next tick can retry."""
        self._set_post(
            channel_id, period, owner=owner, state=PostState.RELEASED.value, error=error[:500]
        )

    def skip(self, channel_id: str, period: str, owner: str, reason: str) -> None:
        self._set_post(channel_id, period, owner=owner, state=PostState.SKIPPED.value, error=reason[:500])

    def set_shown(self, channel_id: str, period: str, owner: str, shown: LanguageList) -> None:
        self._set_post(channel_id, period, owner=owner, shown=shown.to_json())

    def note_error(self, channel_id: str, period: str, owner: str, error: str) -> None:
        """Record why an attempt is in doubt, keeping the claim (it stays until its lease expires)."""
        self._set_post(channel_id, period, owner=owner, error=error[:500])

    def _set_post(self, channel_id: str, period: str, *, owner: str | None = None, **values: Any) -> None:
        where = (posts.c.channel_id == channel_id) & (posts.c.period == period)
        if owner is not None:  # only the current holder may change a claim's fate
            where = where & (posts.c.owner == owner) & (posts.c.state == PostState.CLAIMED.value)
        self._write(lambda c: c.execute(sa.update(posts).where(where).values(**values)))

    def get_post(self, channel_id: str, period: str) -> PostRecord | None:
        row = self._read(
            lambda c: c.execute(
                sa.select(posts).where((posts.c.channel_id == channel_id) & (posts.c.period == period))
            ).first()
        )
        return _post_record(row) if row else None

    def get_posts(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], PostRecord]:
        """The records of several (channel, period) pairs in one query (a tick's first look)."""
        if not keys:
            return {}
        rows = self._read(
            lambda c: c.execute(sa.select(posts).where(sa.tuple_(posts.c.channel_id, posts.c.period).in_(keys))).all()
        )
        records = [_post_record(row) for row in rows]
        return {(r.channel_id, r.period): r for r in records}

    def latest_post(self, channel_id: str) -> PostRecord | None:
        """The channel's most recent posting record, whatever its state."""
        when = sa.func.coalesce(posts.c.posted_at, posts.c.claimed_at)
        row = self._read(
            lambda c: c.execute(
                sa.select(posts).where(posts.c.channel_id == channel_id).order_by(when.desc()).limit(1)
            ).first()
        )
        return _post_record(row) if row else None

    def all_posts(self) -> list[PostRecord]:
        rows = self._read(
            lambda c: c.execute(sa.select(posts).order_by(posts.c.channel_id, posts.c.period)).all()
        )
        return [_post_record(row) for row in rows]


def _post_record(row: Any) -> PostRecord:
    values = dict(row._mapping)
    values["state"] = PostState(values["state"])
    return PostRecord(**values)
