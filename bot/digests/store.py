"""Digest storage in SQL (SQLAlchemy Core): subscriptions, snapshots and per-period posting records.

Everything is keyed by (channel, app): one channel may follow several Desk apps, each
with its own schedule, its own "what changed" snapshot and its own posting records.
SQLite by default, PostgreSQL (psycopg 3) when DATABASE_URL says so. The tables are made
and changed by the migrations (bot/migrations/, `python -m bot migrate`), not here.

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

The single-app version's tables (keyed by channel alone) were adopted into these by a migration
(bot/migrations/versions/0003_adopt_single_app_tables.py). Rows stored under the app name
`default` (a single unnamed app) become the default app's once DESK_APPS names the apps
(`adopt_unnamed_app`, run by the composition root).

Times are stored as Unix seconds (double precision): the same comparisons on both
databases, no time-zone conversion by drivers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.config import DEFAULT_APP_NAME
from bot.database import (
    APP_NAME_LENGTH,
    ERROR_LENGTH,
    OWNER_LENGTH,
    TS_LENGTH,
    Claim,
    ClaimState,
    SqlStore,
    app_column,
    channel_column,
    claim_row,
    metadata,
    user_column,
)
from bot.desk.models import LanguageList

log = logging.getLogger(__name__)

LEGACY_APP = DEFAULT_APP_NAME  # the app of rows from before DESK_APPS (a single unnamed app)

subscriptions = sa.Table(
    "digest_app_subscriptions",
    metadata,
    channel_column(primary_key=True),
    app_column(primary_key=True),  # the Desk app's name (DESK_APPS)
    sa.Column("schedule", sa.String(200), nullable=False),  # canonical grammar, zone included
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("hint", sa.String(500)),  # shown by `/desk-languages digest`, e.g. "invite the bot"
    sa.Column("disabled_reason", sa.String(500)),
    # Occurrences before this moment are never caught up (a new subscription at 10:00
    # for "daily 09:00" starts tomorrow, it does not post at once).
    sa.Column("effective_at", sa.Double, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),  # when the channel first followed this app
    sa.Column("updated_at", sa.Double, nullable=False),
    user_column("created_by"),  # Slack user who set up the current schedule (None: seeded, adopted)
)

snapshots = sa.Table(
    "digest_app_snapshots",
    metadata,
    channel_column(primary_key=True),
    app_column(primary_key=True),
    sa.Column("languages", sa.Text, nullable=False),  # LanguageList.to_json() of what was shown
    sa.Column("period", sa.String(64), nullable=False),
    sa.Column("shown_at", sa.Double, nullable=False),
)

posts = sa.Table(
    "digest_app_posts",
    metadata,
    channel_column(primary_key=True),
    app_column(primary_key=True),
    sa.Column("period", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # PostState
    sa.Column("owner", sa.String(OWNER_LENGTH)),
    sa.Column("claimed_at", sa.Double),
    sa.Column("scheduled_for", sa.Double),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("ts", sa.String(TS_LENGTH)),
    sa.Column("posted_at", sa.Double),
    sa.Column("error", sa.String(ERROR_LENGTH)),
    # The list about to be posted, so a process that finds a crashed claim's message
    # in the channel can still record what the channel was shown.
    sa.Column("shown", sa.Text),
)

# One row per adoption done (`legacy-tables` by its migration, `app:default`), so each runs once per database:
# a subscription the default app stops later is not brought back by the next boot.
migrations = sa.Table(
    "digest_migrations",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("detail", sa.String(200)),
    sa.Column("done_at", sa.Double, nullable=False),
)

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


class DigestStore(SqlStore):
    """Every read and write the digest service makes. Each write is its own short transaction.

    `apps` are the configured Desk apps' names, the default (first) one included: rows stored under
    `default` are adopted into `apps[0]` unless `default` is configured (`adopt_unnamed_app`).
    """

    def __init__(self, engine: Engine, apps: Sequence[str] = (LEGACY_APP,)) -> None:
        if not apps:
            raise ValueError("a digest store needs the name of at least one Desk app")
        super().__init__(engine)
        self.apps = tuple(apps)
        self.default_app = self.apps[0]

    # --- plumbing ---------------------------------------------------------------------

    def adopt_unnamed_app(self) -> bool:
        """Rows stored under `default` (one unnamed app, before DESK_APPS named the apps) become the
        default app's, once per database, when `default` is no longer a configured app. Copies ignore
        rows already there (ON CONFLICT DO NOTHING) and a row in `digest_migrations`, inserted in the
        same transaction, makes it happen once, so two processes booting at once do no harm and a
        digest stopped later is not brought back. The rows under `default` are kept (a rollback).
        True for the one caller that adopted them."""
        if LEGACY_APP in self.apps:
            return False
        with self.connection(begin=True) as conn:
            named = sa.select(subscriptions.c.app).where(subscriptions.c.app == LEGACY_APP).limit(1)
            earlier = sa.select(posts.c.app).where(posts.c.app == LEGACY_APP).limit(1)
            if not (conn.execute(named).first() or conn.execute(earlier).first()):
                return False
            if not self._first(conn, f"app:{LEGACY_APP}", time.time()):
                return False
            adopter = sa.cast(sa.literal(self.default_app), sa.String(APP_NAME_LENGTH)).label("app")
            for table in (subscriptions, snapshots, posts):
                chosen = [adopter if c.name == "app" else c for c in table.c]
                select = sa.select(*chosen).where(table.c.app == LEGACY_APP)
                conn.execute(self._insert(table).from_select(table.c.keys(), select).on_conflict_do_nothing())
        log.info("digest rows of the app %r adopted by the app %r", LEGACY_APP, self.default_app)
        return True

    def _first(self, conn: Connection, name: str, now: float) -> bool:
        """Record the adoption `name`; True only for the one caller that recorded it."""
        stmt = (
            self._insert(migrations)
            .values(name=name, detail=f"adopted by {self.default_app}"[:200], done_at=now)
            .on_conflict_do_nothing(index_elements=[migrations.c.name])
            .returning(migrations.c.name)
        )
        return conn.execute(stmt).first() is not None

    def _read(self, work: Any) -> Any:
        with self.connection(begin=False) as conn:
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
        self.write(stmt)

    def delete_subscription(self, channel_id: str, app: str) -> bool:
        where = self._subscription_key(channel_id, app)
        result = self.write(sa.delete(subscriptions).where(where))
        return bool(result.rowcount)

    def set_hint(self, channel_id: str, app: str, hint: str) -> None:
        self._update_subscription(channel_id, app, hint=hint)

    def clear_hint(self, channel_id: str, app: str) -> None:
        where = self._subscription_key(channel_id, app) & subscriptions.c.hint.is_not(None)
        self.write(sa.update(subscriptions).where(where).values(hint=None))

    def disable(self, channel_id: str, app: str, reason: str, now: float) -> None:
        self._update_subscription(channel_id, app, enabled=False, disabled_reason=reason, updated_at=now)

    def _update_subscription(self, channel_id: str, app: str, **values: Any) -> None:
        where = self._subscription_key(channel_id, app)
        self.write(sa.update(subscriptions).where(where).values(**values))

    # --- snapshots ------------------------------------------------------------------------

    def get_snapshot(self, channel_id: str, app: str) -> LanguageList | None:
        where = (snapshots.c.channel_id == channel_id) & (snapshots.c.app == app)
        text = self._read(lambda c: c.execute(sa.select(snapshots.c.languages).where(where)).scalar())
        return LanguageList.from_json(text) if text else None

    def put_snapshot(self, channel_id: str, app: str, shown: LanguageList, period: str, now: float) -> None:
        values = {"languages": shown.to_json(), "period": period, "shown_at": now}
        stmt = self._insert(snapshots).values(channel_id=channel_id, app=app, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[snapshots.c.channel_id, snapshots.c.app], set_=values)
        self.write(stmt)

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
        """Try to become the one process that posts (channel, app, period). See the module docstring."""

        def seen() -> tuple[str, float | None] | None:
            record = self.get_post(channel_id, app, period)
            return (record.state.value, record.claimed_at) if record is not None else None

        return claim_row(
            won=self.won,
            seen=seen,
            insert=self._insert,
            table=posts,
            key=self._post_key(channel_id, app, period),
            new_row={"channel_id": channel_id, "app": app, "period": period, "scheduled_for": scheduled_for},
            index_elements=[posts.c.channel_id, posts.c.app, posts.c.period],
            owner=owner,
            now=now,
            lease=lease,
        )

    @staticmethod
    def _post_key(channel_id: str, app: str, period: str) -> Any:
        return (posts.c.channel_id == channel_id) & (posts.c.app == app) & (posts.c.period == period)

    def mark_posted(self, channel_id: str, app: str, period: str, ts: str, now: float) -> None:
        # Not conditional on the owner: if a slow post of ours lost its lease, the message
        # still exists and this record should say so.
        self._set_post(channel_id, app, period, state=PostState.POSTED.value, ts=ts, posted_at=now, error=None)

    def release(self, channel_id: str, app: str, period: str, owner: str, error: str) -> None:
        """Give the claim back after a definite failure, so the next tick can retry."""
        self._set_post(channel_id, app, period, owner=owner, state=PostState.RELEASED.value, error=error[:ERROR_LENGTH])

    def skip(self, channel_id: str, app: str, period: str, owner: str, reason: str) -> None:
        self._set_post(channel_id, app, period, owner=owner, state=PostState.SKIPPED.value, error=reason[:ERROR_LENGTH])

    def set_shown(self, channel_id: str, app: str, period: str, owner: str, shown: LanguageList) -> None:
        self._set_post(channel_id, app, period, owner=owner, shown=shown.to_json())

    def note_error(self, channel_id: str, app: str, period: str, owner: str, error: str) -> None:
        """Record why an attempt is in doubt, keeping the claim (it stays until its lease expires)."""
        self._set_post(channel_id, app, period, owner=owner, error=error[:ERROR_LENGTH])

    def _set_post(self, channel_id: str, app: str, period: str, *, owner: str | None = None, **values: Any) -> None:
        where = self._post_key(channel_id, app, period)
        if owner is not None:  # only the current holder may change a claim's fate
            where = where & (posts.c.owner == owner) & (posts.c.state == PostState.CLAIMED.value)
        self.write(sa.update(posts).where(where).values(**values))

    def get_post(self, channel_id: str, app: str, period: str) -> PostRecord | None:
        rows = self.rows(sa.select(posts).where(self._post_key(channel_id, app, period)))
        return self._record(rows[0]) if rows else None

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
        return PostRecord(**values)
