"""Digest storage in SQL (SQLAlchemy Core): subscriptions, snapshots and per-period posting records.

Everything is keyed by (channel, app): one channel may follow several Desk apps, each
with its own schedule, its own "what changed" snapshot and its own posting records.
SQLite by default, PostgreSQL (psycopg 3) when DATABASE_URL says so. Tables are
created on first use, tolerating several processes creating them at once.

The posting record of a (channel, app, period) is also its *claim*: a process may post
a period's digest only after winning one of these single-statement writes. The
database serialises them (PostgreSQL re-checks the WHERE after waiting for a row
lock; SQLite has one writer at a time), so exactly one concurrent caller changes
the row, which it sees as a row coming back from `RETURNING channel_id`:

    -- a period nobody has touched
    INSERT INTO digest_app_posts (channel_id, app, period, state, owner, claimed_at, attempts, ...)
    VALUES (:c, :a, :p, 'claimed', :me, :now, 1, ...)
    ON CONFLICT (channel_id, app, period) DO NOTHING RETURNING channel_id
    -- a period whose earlier post definitely failed (released)
    UPDATE digest_app_posts SET state='claimed', owner=:me, claimed_at=:now, attempts=attempts+1
    WHERE channel_id=:c AND app=:a AND period=:p AND state='released' RETURNING channel_id
    -- a claim left by a crashed process (older than the lease): the winner must then
    -- check the channel's history before posting (see service.py)
    UPDATE digest_app_posts SET owner=:me, claimed_at=:now, attempts=attempts+1
    WHERE channel_id=:c AND app=:a AND period=:p AND state='claimed' AND claimed_at < :now - :lease
    RETURNING channel_id

A read comes first (posted, or claimed within the lease: nothing to write), so the
minute-by-minute ticks of many processes cost one SELECT per due channel.

Before several apps, the tables were keyed by channel alone (`digest_subscriptions`,
`digest_snapshots`, `digest_posts`). SQLite cannot change a primary key, so the keyed-by-app
tables are new ones, and `ensure_tables` adopts the old rows into the default app once
(see `_adopt`). The old tables are never dropped nor written to except by the bridge:
while they exist, the default app's claims are also taken in the old `digest_posts`,
so a process of the previous version still running during a rolling deploy cannot post
the same period again (see `claim`). The same holds for rows stored under the app name
`default` (a single unnamed app) once DESK_APPS names the apps.

Times are stored as Unix seconds (double precision): the same comparisons on both
databases, no time-zone conversion by drivers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError

from bot.config import DEFAULT_APP_NAME, ConfigError
from bot.database import Claim, ClaimState, claim_row, unavailable, upsert_insert
from bot.desk.models import LanguageList

log = logging.getLogger(__name__)

LEGACY_APP = DEFAULT_APP_NAME  # the app of rows from before DESK_APPS (a single unnamed app)
APP_LENGTH = 64

metadata = sa.MetaData()

subscriptions = sa.Table(
    "digest_app_subscriptions",
    metadata,
    sa.Column("channel_id", sa.String(64), primary_key=True),
    sa.Column("app", sa.String(APP_LENGTH), primary_key=True),  # the Desk app's name (DESK_APPS)
    sa.Column("schedule", sa.String(200), nullable=False),  # canonical grammar, zone included
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("hint", sa.String(500)),  # shown by `/desk-languages digest`, e.g. "invite the bot"
    sa.Column("disabled_reason", sa.String(500)),
    # Occurrences before this moment are never caught up (a new subscription at 10:00
    # for "daily 09:00" starts tomorrow, it does not post at once).
    sa.Column("effective_at", sa.Double, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),  # when the channel first followed this app
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(64)),  # Slack user who set up the current schedule (None: seeded, adopted)
)

snapshots = sa.Table(
    "digest_app_snapshots",
    metadata,
    sa.Column("channel_id", sa.String(64), primary_key=True),
    sa.Column("app", sa.String(APP_LENGTH), primary_key=True),
    sa.Column("languages", sa.Text, nullable=False),  # LanguageList.to_json() of what was shown
    sa.Column("period", sa.String(64), nullable=False),
    sa.Column("shown_at", sa.Double, nullable=False),
)

posts = sa.Table(
    "digest_app_posts",
    metadata,
    sa.Column("channel_id", sa.String(64), primary_key=True),
    sa.Column("app", sa.String(APP_LENGTH), primary_key=True),
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

# One row per adoption done (`legacy-tables`, `app:default`), so each runs once per database:
# a subscription the default app stops later is not brought back by the next boot.
migrations = sa.Table(
    "digest_migrations",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("detail", sa.String(200)),
    sa.Column("done_at", sa.Double, nullable=False),
)

# The tables of the version before several apps, keyed by channel only: read to adopt their
# rows, and `digest_posts` bridged while it exists. Never created, never dropped here.
legacy_metadata = sa.MetaData()

legacy_subscriptions = sa.Table(
    "digest_subscriptions",
    legacy_metadata,
    sa.Column("channel_id", sa.String(64), primary_key=True),
    *(sa.Column(c.name, c.type) for c in subscriptions.c if c.name not in ("channel_id", "app", "created_by")),
)

legacy_snapshots = sa.Table(
    "digest_snapshots",
    legacy_metadata,
    sa.Column("channel_id", sa.String(64), primary_key=True),
    *(sa.Column(c.name, c.type) for c in snapshots.c if c.name not in ("channel_id", "app")),
)

legacy_posts = sa.Table(
    "digest_posts",
    legacy_metadata,
    sa.Column("channel_id", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(64), primary_key=True),
    *(sa.Column(c.name, c.type) for c in posts.c if c.name not in ("channel_id", "app", "period")),
)

ADOPTED = ((legacy_subscriptions, subscriptions), (legacy_snapshots, snapshots), (legacy_posts, posts))

# A posting record's state and a claim's outcome are the shared claim's (bot/database.py).
PostState = ClaimState


@dataclass(frozen=True)
class Subscription:
    channel_id: str
    app: str
    schedule: str
    enabled: bool
    hint: str | None
    disabled_reason: str | None
    effective_at: float
    created_at: float
    updated_at: float
    created_by: str | None = None


@dataclass(frozen=True)
class PostRecord:
    channel_id: str
    app: str
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


@dataclass(frozen=True)
class _Posts:
    """Where a posting record lives: the keyed-by-app table for `app`, or (app None) the
    legacy `digest_posts`, which has no app column."""

    table: sa.Table
    app: str | None

    def where(self, channel_id: str, period: str) -> Any:
        c = self.table.c
        key = (c.channel_id == channel_id) & (c.period == period)
        return key & (c.app == self.app) if self.app is not None else key

    def key(self, channel_id: str, period: str) -> dict[str, str]:
        values = {"channel_id": channel_id, "period": period}
        if self.app is not None:
            values["app"] = self.app
        return values

    @property
    def columns(self) -> list[sa.Column[Any]]:
        return [self.table.c[name] for name in ("channel_id", "app", "period") if name in self.table.c]

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
    """Every read and write the digest service makes. Each write is its own short transaction.

    `apps` are the configured Desk apps' names, the default (first) one included: legacy rows
    are adopted into `apps[0]`, and rows stored under `default` too unless it is configured.
    """

    def __init__(self, engine: Engine, apps: Sequence[str] = (LEGACY_APP,)) -> None:
        if not apps:
            raise ValueError("a digest store needs the name of at least one Desk app")
        self.engine = engine
        self.apps = tuple(apps)
        self.default_app = self.apps[0]
        # The default app's other identities, whose claims it also takes (see `claim`). Set by ensure_tables.
        self._aliases: tuple[_Posts, ...] = ()
        self._ready = False
        self._ready_lock = threading.Lock()
        self._insert = upsert_insert(engine)

    @classmethod
    def from_url(cls, database_url: str, apps: Sequence[str] = (LEGACY_APP,)) -> DigestStore:
        return cls(create_db_engine(database_url), apps)

    # --- plumbing ---------------------------------------------------------------------

    def ensure_tables(self) -> None:
        """Create the tables if missing, then adopt the rows of earlier versions (`_adopt`).
        Another process may be doing the same at the same moment: its CREATE then makes ours
        fail, after which the tables exist and a second pass passes; the adoption is idempotent."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            # Each failed pass means another process created a table meanwhile (SQLite runs each
            # CREATE on its own), so one pass per table plus one always gets there.
            attempts = len(metadata.tables) + 2
            for attempt in range(attempts):
                try:
                    with self._connection(begin=True) as conn:
                        metadata.create_all(conn, checkfirst=True)
                    with self._connection(begin=True) as conn:
                        self._aliases = self._adopt(conn)
                    break
                except DBAPIError:
                    if attempt == attempts - 1:
                        raise
                    log.info("digest tables were being created concurrently; checking again")
            self._ready = True

    def _adopt(self, conn: Connection) -> tuple[_Posts, ...]:
        """Make earlier rows the default app's, once per database, and say which claims to bridge.

        1. The tables keyed by channel only (before several apps): their rows are copied with
           app = the default app, the first time a process of this version boots.
        2. Rows stored under `default` (one unnamed app) when `default` is no longer a configured
           app: copied to the default app, once.
        Copies ignore rows already there (ON CONFLICT DO NOTHING), so two processes booting at once
        do no harm; a row in `digest_migrations`, inserted in the same transaction, makes each
        happen once, so a digest stopped later is not brought back by the next boot. The sources
        are kept, for processes of the earlier version still running and for a rollback.
        """
        now = time.time()
        present = set(sa.inspect(conn).get_table_names())
        aliases: list[_Posts] = []
        legacy = [(old, new) for old, new in ADOPTED if old.name in present]
        if legacy and self._first(conn, "legacy-tables", now):
            for old, new in legacy:
                app = sa.cast(sa.literal(self.default_app), sa.String(APP_LENGTH)).label("app")
                self._copy(conn, new, sa.select(*old.c, app), [*old.c.keys(), "app"])
            log.info("digest rows of the earlier version (one Desk app) adopted by the app %r", self.default_app)
        if legacy_posts.name in present:
            aliases.append(_Posts(legacy_posts, None))
        if LEGACY_APP not in self.apps:
            named = sa.select(subscriptions.c.app).where(subscriptions.c.app == LEGACY_APP).limit(1)
            earlier = sa.select(posts.c.app).where(posts.c.app == LEGACY_APP).limit(1)
            if conn.execute(named).first() or conn.execute(earlier).first():
                if self._first(conn, f"app:{LEGACY_APP}", now):
                    adopter = sa.cast(sa.literal(self.default_app), sa.String(APP_LENGTH)).label("app")
                    for table in (subscriptions, snapshots, posts):
                        chosen = [adopter if c.name == "app" else c for c in table.c]
                        select = sa.select(*chosen).where(table.c.app == LEGACY_APP)
                        self._copy(conn, table, select, table.c.keys())
                    log.info("digest rows of the app %r adopted by the app %r", LEGACY_APP, self.default_app)
                aliases.append(_Posts(posts, LEGACY_APP))
        return tuple(aliases)

    def _first(self, conn: Connection, name: str, now: float) -> bool:
        """Record the adoption `name`; True only for the one caller that recorded it."""
        stmt = (
            self._insert(migrations)
            .values(name=name, detail=f"adopted by {self.default_app}"[:200], done_at=now)
            .on_conflict_do_nothing(index_elements=[migrations.c.name])
            .returning(migrations.c.name)
        )
        return conn.execute(stmt).first() is not None

    def _copy(self, conn: Connection, table: sa.Table, select: Any, names: list[str]) -> None:
        # SQLite needs a WHERE in INSERT … SELECT … ON CONFLICT (else ON reads as a join's).
        if select.whereclause is None:
            select = select.where(sa.true())
        conn.execute(self._insert(table).from_select(names, select).on_conflict_do_nothing())

    def bridged(self) -> list[str]:
        """Whose claims the default app also takes: `digest_posts` and/or `app:default` (for tests, logs)."""
        self.ensure_tables()
        return [alias.table.name if alias.app is None else f"app:{alias.app}" for alias in self._aliases]

    @contextmanager
    def _connection(self, *, begin: bool) -> Iterator[Connection]:
        """A connection (in a transaction if `begin`); DatabaseUnavailable when there is none."""
        failure = None
        try:
            conn = self.engine.connect()
        except DBAPIError as error:  # refused, unknown host, timeout, authentication, TLS…
            failure = unavailable(self.engine.url, error)
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

    @staticmethod
    def _subscription_key(channel_id: str, app: str) -> Any:
        return (subscriptions.c.channel_id == channel_id) & (subscriptions.c.app == app)

    def get_subscription(self, channel_id: str, app: str) -> Subscription | None:
        row = self._read(
            lambda c: c.execute(sa.select(subscriptions).where(self._subscription_key(channel_id, app))).first()
        )
        return Subscription(**row._mapping) if row else None

    def enabled_subscriptions(self) -> list[Subscription]:
        """Every app's enabled subscriptions (the apps not configured included: the caller decides)."""
        rows = self._read(
            lambda c: c.execute(
                sa.select(subscriptions)
                .where(subscriptions.c.enabled.is_(True))
                .order_by(subscriptions.c.channel_id, subscriptions.c.app)
            ).all()
        )
        return [Subscription(**row._mapping) for row in rows]

    def subscriptions(self, app: str) -> list[Subscription]:
        """Every channel's subscription to `app`, paused ones included, by channel."""
        rows = self._read(
            lambda c: c.execute(
                sa.select(subscriptions).where(subscriptions.c.app == app).order_by(subscriptions.c.channel_id)
            ).all()
        )
        return [Subscription(**row._mapping) for row in rows]

    def put_subscription(
        self, channel_id: str, app: str, schedule: str, now: float, created_by: str | None = None
    ) -> None:
        """Create or replace a channel's subscription to `app` (enabled, hints cleared). A replacement
        keeps `created_at`, and `created_by` unless a user is given."""
        changes: dict[str, Any] = {
            "schedule": schedule,
            "enabled": True,
            "hint": None,
            "disabled_reason": None,
            "effective_at": now,
            "updated_at": now,
        }
        stmt = self._insert(subscriptions).values(
            channel_id=channel_id, app=app, created_at=now, created_by=created_by, **changes
        )
        if created_by is not None:
            changes["created_by"] = created_by
        stmt = stmt.on_conflict_do_update(
            index_elements=[subscriptions.c.channel_id, subscriptions.c.app], set_=changes
        )
        self._write(lambda c: c.execute(stmt))

    def delete_subscription(self, channel_id: str, app: str) -> bool:
        where = self._subscription_key(channel_id, app)
        result = self._write(lambda c: c.execute(sa.delete(subscriptions).where(where)))
        return bool(result.rowcount)

    def set_hint(self, channel_id: str, app: str, hint: str) -> None:
        self._update_subscription(channel_id, app, hint=hint)

    def clear_hint(self, channel_id: str, app: str) -> None:
        where = self._subscription_key(channel_id, app) & subscriptions.c.hint.is_not(None)
        self._write(lambda c: c.execute(sa.update(subscriptions).where(where).values(hint=None)))

    def disable(self, channel_id: str, app: str, reason: str, now: float) -> None:
        self._update_subscription(channel_id, app, enabled=False, disabled_reason=reason, updated_at=now)

    def _update_subscription(self, channel_id: str, app: str, **values: Any) -> None:
        where = self._subscription_key(channel_id, app)
        self._write(lambda c: c.execute(sa.update(subscriptions).where(where).values(**values)))

    # --- snapshots ------------------------------------------------------------------------

    def get_snapshot(self, channel_id: str, app: str) -> LanguageList | None:
        where = (snapshots.c.channel_id == channel_id) & (snapshots.c.app == app)
        text = self._read(lambda c: c.execute(sa.select(snapshots.c.languages).where(where)).scalar())
        return LanguageList.from_json(text) if text else None

    def put_snapshot(self, channel_id: str, app: str, shown: LanguageList, period: str, now: float) -> None:
        values = {"languages": shown.to_json(), "period": period, "shown_at": now}
        stmt = self._insert(snapshots).values(channel_id=channel_id, app=app, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[snapshots.c.channel_id, snapshots.c.app], set_=values)
        self._write(lambda c: c.execute(stmt))

    # --- posting records and claims ------------------------------------------------------

    def claim(
        self,
        channel_id: str,
        app: str,
        period: str,
        owner: str,
        *,
        now: float,
        lease: float,
        scheduled_for: float | None,
    ) -> Claim:
        """Try to become the one process that posts (channel, app, period). See the module docstring.

        The default app's claim is also taken where a process of an earlier version would take it
        (the legacy `digest_posts`, the app name `default`), while those exist: there, an earlier
        post is adopted (DONE), a live claim means BUSY (ours is released, the next tick looks
        again), a stale one makes ours a TAKEOVER (check the history first)."""
        mine = _Posts(posts, app)
        won = self._claim(mine, channel_id, period, owner, now=now, lease=lease, scheduled_for=scheduled_for)
        if won in (Claim.DONE, Claim.BUSY) or app != self.default_app:
            return won
        for alias in self._aliases:
            take = partial(self._claim, alias, channel_id, period, owner,
                           now=now, lease=lease, scheduled_for=scheduled_for)
            theirs = self._on_alias(alias, take)
            if theirs is Claim.DONE:
                return self._adopt_record(alias, channel_id, app, period, owner, now)
            if theirs is Claim.BUSY:
                self.release(channel_id, app, period, owner, "being posted by a process of an earlier version")
                return Claim.BUSY
            if theirs is Claim.TAKEOVER:
                won = Claim.TAKEOVER
        return won

    def _claim(
        self, where: _Posts, channel_id: str, period: str, owner: str, *, now: float, lease: float,
        scheduled_for: float | None,
    ) -> Claim:
        def seen() -> tuple[str, float | None] | None:
            record = self._get_post(where, channel_id, period)
            return (record.state.value, record.claimed_at) if record is not None else None

        return claim_row(
            won=self._won,
            seen=seen,
            insert=self._insert,
            table=where.table,
            key=where.where(channel_id, period),
            new_row={**where.key(channel_id, period), "scheduled_for": scheduled_for},
            index_elements=where.columns,
            owner=owner,
            now=now,
            lease=lease,
        )

    def _adopt_record(self, alias: _Posts, channel_id: str, app: str, period: str, owner: str, now: float) -> Claim:
        """Another identity of the default app already settled the period: record the same."""
        theirs = self._on_alias(alias, lambda: self._get_post(alias, channel_id, period))
        if theirs is None:  # its table went away meanwhile: let the next tick decide
            self.release(channel_id, app, period, owner, "could not read the earlier version's record")
            return Claim.BUSY
        if theirs.state is PostState.POSTED:
            self._set_post(
                channel_id, app, period, owner=owner,
                state=PostState.POSTED.value, ts=theirs.ts, posted_at=theirs.posted_at or now, shown=theirs.shown,
                error=None,
            )
            if theirs.shown:
                self.put_snapshot(channel_id, app, LanguageList.from_json(theirs.shown), period, now)
        else:
            self.skip(channel_id, app, period, owner, theirs.error or "skipped by a process of an earlier version")
        return Claim.DONE

    def _on_alias(self, alias: _Posts, work: Callable[[], Any]) -> Any:
        """Run `work` on a bridged table; if it was the legacy table and it has been dropped
        meanwhile, stop bridging it (None) instead of failing every digest."""
        try:
            return work()
        except DBAPIError:
            if alias.app is not None:
                raise
            with self._connection(begin=False) as conn:
                gone = not sa.inspect(conn).has_table(alias.table.name)
            if not gone:
                raise
        log.warning("the table %s was dropped; digests no longer bridge claims to it", alias.table.name)
        self._aliases = tuple(a for a in self._aliases if a is not alias)
        return None

    def _won(self, statement: Any) -> bool:
        """Did this conditional write change a row? RETURNING says so on both databases
        (psycopg 3 reports rowcount -1 for INSERT … ON CONFLICT under SQLAlchemy)."""
        return self._write(lambda c: c.execute(statement).first()) is not None

    def mark_posted(self, channel_id: str, app: str, period: str, ts: str, now: float) -> None:
        # Not conditional on the owner: if a slow post of ours lost its lease, the message
        # still exists and this record should say so.
        self._set_post(channel_id, app, period, state=PostState.POSTED.value, ts=ts, posted_at=now, error=None)

    def release(self, channel_id: str, app: str, period: str, owner: str, error: str) -> None:
        """Give the claim back after a definite failure, so the next tick can retry."""
        self._set_post(channel_id, app, period, owner=owner, state=PostState.RELEASED.value, error=error[:500])

    def skip(self, channel_id: str, app: str, period: str, owner: str, reason: str) -> None:
        self._set_post(channel_id, app, period, owner=owner, state=PostState.SKIPPED.value, error=reason[:500])

    def set_shown(self, channel_id: str, app: str, period: str, owner: str, shown: LanguageList) -> None:
        self._set_post(channel_id, app, period, owner=owner, shown=shown.to_json())

    def note_error(self, channel_id: str, app: str, period: str, owner: str, error: str) -> None:
        """Record why an attempt is in doubt, keeping the claim (it stays until its lease expires)."""
        self._set_post(channel_id, app, period, owner=owner, error=error[:500])

    def _set_post(self, channel_id: str, app: str, period: str, *, owner: str | None = None, **values: Any) -> None:
        """Change the record of (channel, app, period), and, for the default app, the same record of
        each bridged identity, so processes of an earlier version see what happened."""
        targets = [_Posts(posts, app), *(self._aliases if app == self.default_app else ())]
        for target in targets:
            where = target.where(channel_id, period)
            if owner is not None:  # only the current holder may change a claim's fate
                where = where & (target.table.c.owner == owner) & (target.table.c.state == PostState.CLAIMED.value)
            statement = sa.update(target.table).where(where).values(**values)
            if target.table is posts:
                self._execute(statement)
            else:
                self._on_alias(target, partial(self._execute, statement))

    def _execute(self, statement: Any) -> Any:
        return self._write(lambda c: c.execute(statement))

    def get_post(self, channel_id: str, app: str, period: str) -> PostRecord | None:
        return self._get_post(_Posts(posts, app), channel_id, period)

    def get_legacy_post(self, channel_id: str, period: str) -> PostRecord | None:
        """The record in the legacy `digest_posts` (as the default app's), or None (no row, no table)."""
        self.ensure_tables()
        alias = next((a for a in self._aliases if a.app is None), None)
        return self._get_post(alias, channel_id, period) if alias else None

    def _get_post(self, where: _Posts, channel_id: str, period: str) -> PostRecord | None:
        row = self._read(lambda c: c.execute(sa.select(where.table).where(where.where(channel_id, period))).first())
        return self._record(row) if row else None

    def get_posts(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], PostRecord]:
        """The records of several (channel, app, period) in one query (a tick's first look)."""
        if not keys:
            return {}
        wanted = sa.tuple_(posts.c.channel_id, posts.c.app, posts.c.period).in_(keys)
        rows = self._read(lambda c: c.execute(sa.select(posts).where(wanted)).all())
        records = [self._record(row) for row in rows]
        return {(r.channel_id, r.app, r.period): r for r in records}

    def latest_post(self, channel_id: str, app: str) -> PostRecord | None:
        """The most recent posting record of (channel, app), whatever its state."""
        when = sa.func.coalesce(posts.c.posted_at, posts.c.claimed_at)
        where = (posts.c.channel_id == channel_id) & (posts.c.app == app)
        row = self._read(
            lambda c: c.execute(sa.select(posts).where(where).order_by(when.desc()).limit(1)).first()
        )
        return self._record(row) if row else None

    def all_posts(self) -> list[PostRecord]:
        rows = self._read(
            lambda c: c.execute(sa.select(posts).order_by(posts.c.channel_id, posts.c.app, posts.c.period)).all()
        )
        return [self._record(row) for row in rows]

    def _record(self, row: Any) -> PostRecord:
        values = dict(row._mapping)
        values["state"] = PostState(values["state"])
        values.setdefault("app", self.default_app)  # a legacy row, keyed by channel only
        return PostRecord(**values)
