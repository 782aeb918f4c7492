"""Watch storage in SQL (SQLAlchemy Core): who watches, each app's last seen list, the claimed
poll slots, the changes seen (events) and the per-channel alert records (claims).

    watch_subscriptions (channel_id, app)       who set it up, when; enabled, why not
    watch_state         (app)                   the last good list seen (JSON) and since which slot;
                                                consecutive failed polls, since when, the last error;
                                                the outage alerted, if any
    watch_polls         (app, slot)             the one process that polls an app in an interval slot
                                                (kept a day: `prune`)
    watch_events        (app, change_id)        a change (or outage, recovery) and its alert text
    watch_alerts        (channel_id, app, change_id)  the claim and record of one channel's alert
                                                (events and alerts are kept a week: `prune`)

A poll slot is won with one `INSERT … ON CONFLICT DO NOTHING RETURNING`; an alert with the shared
claim (`bot.database.claim_row`), like digests' posting records; a new list replaces the last one
only if nobody replaced it meanwhile (`advance_list`, with its event). Times are Unix seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bot.database import (
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

subscriptions = sa.Table(
    "watch_subscriptions",
    metadata,
    channel_column(primary_key=True),
    app_column(primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),
    user_column("created_by"),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("disabled_reason", sa.String(200)),
)

state_table = sa.Table(
    "watch_state",
    metadata,
    app_column(primary_key=True),
    sa.Column("list_json", sa.Text),  # the last good list seen at a poll
    sa.Column("list_since", sa.BigInteger),  # the slot in which that list was first seen
    sa.Column("failures", sa.Integer, nullable=False, default=0),  # consecutive failed polls
    sa.Column("failing_since", sa.Double),
    sa.Column("error_code", sa.String(40)),
    sa.Column("error_hint", sa.String(400)),
    sa.Column("outage_id", sa.String(80)),  # the outage alerted and not yet recovered
    sa.Column("updated_at", sa.Double, nullable=False),
)

polls = sa.Table(
    "watch_polls",
    metadata,
    app_column(primary_key=True),
    sa.Column("slot", sa.BigInteger, primary_key=True),
    sa.Column("owner", sa.String(OWNER_LENGTH), nullable=False),
    sa.Column("claimed_at", sa.Double, nullable=False),
)

events = sa.Table(
    "watch_events",
    metadata,
    app_column(primary_key=True),
    sa.Column("change_id", sa.String(120), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # change | outage | recovery
    sa.Column("message", sa.Text, nullable=False),  # JSON: text and blocks
    sa.Column("created_at", sa.Double, nullable=False),
)
sa.Index("watch_events_by_time", events.c.created_at)

alerts = sa.Table(
    "watch_alerts",
    metadata,
    channel_column(primary_key=True),
    app_column(primary_key=True),
    sa.Column("change_id", sa.String(120), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # ClaimState
    sa.Column("owner", sa.String(OWNER_LENGTH)),
    sa.Column("claimed_at", sa.Double),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("ts", sa.String(TS_LENGTH)),
    sa.Column("posted_at", sa.Double),
    sa.Column("error", sa.String(ERROR_LENGTH)),
)


@dataclass(frozen=True)
class Watch:
    channel_id: str
    app: str
    created_at: float
    created_by: str | None
    enabled: bool
    disabled_reason: str | None


@dataclass(frozen=True)
class AppState:
    app: str
    list_json: str | None = None
    list_since: int | None = None
    failures: int = 0
    failing_since: float | None = None
    error_code: str | None = None
    error_hint: str | None = None
    outage_id: str | None = None


@dataclass(frozen=True)
class Event:
    app: str
    change_id: str
    kind: str
    message: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class AlertRecord:
    channel_id: str
    app: str
    change_id: str
    state: ClaimState
    owner: str | None
    claimed_at: float | None
    attempts: int
    ts: str | None
    error: str | None


class WatchStore(SqlStore):
    """Every read and write of `watch`. Each write is its own short transaction."""

    # --- subscriptions ------------------------------------------------------------------------

    def get_watch(self, channel_id: str, app: str) -> Watch | None:
        rows = self.rows(sa.select(subscriptions).where(
            (subscriptions.c.channel_id == channel_id) & (subscriptions.c.app == app)))
        return _watch(rows[0]) if rows else None

    def watches(self, app: str | None = None, *, enabled_only: bool = True) -> list[Watch]:
        query = sa.select(subscriptions)
        if app is not None:
            query = query.where(subscriptions.c.app == app)
        if enabled_only:
            query = query.where(subscriptions.c.enabled.is_(True))
        return [_watch(row) for row in self.rows(query.order_by(subscriptions.c.created_at))]

    def put_watch(self, channel_id: str, app: str, user: str | None, now: float) -> None:
        values = dict(created_at=now, created_by=user, enabled=True, disabled_reason=None)
        statement = self._insert(subscriptions).values(channel_id=channel_id, app=app, **values)
        self.write(statement.on_conflict_do_update(
            index_elements=[subscriptions.c.channel_id, subscriptions.c.app], set_=values))

    def delete_watch(self, channel_id: str, app: str) -> bool:
        result = self.write(sa.delete(subscriptions).where(
            (subscriptions.c.channel_id == channel_id) & (subscriptions.c.app == app)))
        return bool(result.rowcount)

    def disable(self, channel_id: str, app: str, reason: str) -> bool:
        """Stop watching (the bot was removed from the channel). True for the one caller that did it."""
        key = (subscriptions.c.channel_id == channel_id) & (subscriptions.c.app == app)
        statement = (
            sa.update(subscriptions).where(key & subscriptions.c.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason[:200]).returning(subscriptions.c.channel_id)
        )
        return self.won(statement)

    # --- polls and per-app state ----------------------------------------------------------------

    def claim_poll(self, app: str, slot: int, owner: str, now: float) -> bool:
        """The one process that polls `app` in `slot`: one conditional insert, won by exactly one caller."""
        statement = (
            self._insert(polls).values(app=app, slot=slot, owner=owner, claimed_at=now)
            .on_conflict_do_nothing(index_elements=[polls.c.app, polls.c.slot]).returning(polls.c.app)
        )
        return self.won(statement)

    def poll_count(self, app: str) -> int:
        return len(self.rows(sa.select(polls.c.slot).where(polls.c.app == app)))

    def get_state(self, app: str) -> AppState:
        rows = self.rows(sa.select(state_table).where(state_table.c.app == app))
        if not rows:
            return AppState(app)
        r = rows[0]
        return AppState(r.app, r.list_json, r.list_since, r.failures, r.failing_since, r.error_code,
                        r.error_hint, r.outage_id)

    def advance_list(self, app: str, seen: AppState, list_json: str, list_since: int, now: float,
                     event: tuple[str, str, dict[str, Any]] | None = None) -> bool:
        """Replace the last good list `seen` (read before) with a newer one, and record `event`
        (change_id, kind, message) with it, in one transaction. False when another process changed
        the list since `seen` was read (compare and set): the caller reads again and compares anew,
        so two processes seeing the same new list record its change once."""
        where = state_table.c.app == app
        where &= (state_table.c.list_json.is_(None) if seen.list_json is None
                  else state_table.c.list_json == seen.list_json)
        where &= (state_table.c.list_since.is_(None) if seen.list_since is None
                  else state_table.c.list_since == seen.list_since)
        with self.connection(begin=True) as conn:
            conn.execute(self._insert(state_table).values(app=app, failures=0, updated_at=now)
                         .on_conflict_do_nothing(index_elements=[state_table.c.app]))
            won = conn.execute(
                sa.update(state_table).where(where)
                .values(list_json=list_json, list_since=list_since, updated_at=now).returning(state_table.c.app)
            ).first() is not None
            if won and event is not None:
                change_id, kind, message = event
                conn.execute(self._event(app, change_id, kind, message, now))
        return won

    def put_failures(self, state: AppState, now: float) -> None:
        """The failure half of an app's state (the list half is `advance_list`'s alone)."""
        values = dict(failures=state.failures, failing_since=state.failing_since, error_code=state.error_code,
                      error_hint=(state.error_hint or "")[:400] or None, outage_id=state.outage_id, updated_at=now)
        statement = self._insert(state_table).values(app=state.app, **values)
        self.write(statement.on_conflict_do_update(index_elements=[state_table.c.app], set_=values))

    # --- events and alerts ----------------------------------------------------------------------

    def add_event(self, app: str, change_id: str, kind: str, message: dict[str, Any], now: float) -> bool:
        """Record a change once (a poller that crashed before saving the state finds it there)."""
        return self.won(self._event(app, change_id, kind, message, now))

    def _event(self, app: str, change_id: str, kind: str, message: dict[str, Any], now: float) -> Any:
        return (
            self._insert(events).values(app=app, change_id=change_id, kind=kind, message=json.dumps(message),
                                        created_at=now)
            .on_conflict_do_nothing(index_elements=[events.c.app, events.c.change_id]).returning(events.c.app)
        )

    def prune(self, *, events_before: float, polls_before: float) -> int:
        """Forget events and their alert records older than `events_before` (long past delivery), and
        poll slots claimed before `polls_before`. Idempotent, so any process may run it at any time."""
        with self.connection(begin=True) as conn:
            removed = conn.execute(sa.delete(alerts).where(alerts.c.claimed_at < events_before)).rowcount
            removed += conn.execute(sa.delete(events).where(events.c.created_at < events_before)).rowcount
            removed += conn.execute(sa.delete(polls).where(polls.c.claimed_at < polls_before)).rowcount
        return int(removed)

    def events_since(self, oldest: float) -> list[Event]:
        query = sa.select(events).where(events.c.created_at >= oldest).order_by(events.c.created_at)
        return [Event(r.app, r.change_id, r.kind, json.loads(r.message), r.created_at) for r in self.rows(query)]

    def get_alerts(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], AlertRecord]:
        wanted = set(keys)
        if not wanted:
            return {}
        change_ids = {change for _, _, change in wanted}
        rows = self.rows(sa.select(alerts).where(alerts.c.change_id.in_(change_ids)))
        found = {(r.channel_id, r.app, r.change_id): _alert(r) for r in rows}
        return {key: record for key, record in found.items() if key in wanted}

    def get_alert(self, channel_id: str, app: str, change_id: str) -> AlertRecord | None:
        return self.get_alerts([(channel_id, app, change_id)]).get((channel_id, app, change_id))

    def all_alerts(self) -> list[AlertRecord]:
        return [_alert(r) for r in self.rows(sa.select(alerts))]

    def _key(self, channel_id: str, app: str, change_id: str) -> Any:
        return (alerts.c.channel_id == channel_id) & (alerts.c.app == app) & (alerts.c.change_id == change_id)

    def claim(
        self, channel_id: str, app: str, change_id: str, owner: str, *, now: float, lease: float,
        scheduled_for: float | None = None,
    ) -> Claim:
        """`scheduled_for` is not stored: an alert is due when its event was made (`watch_events`)."""

        def seen() -> tuple[str, float | None] | None:
            record = self.get_alert(channel_id, app, change_id)
            return (record.state.value, record.claimed_at) if record is not None else None

        return claim_row(
            won=self.won, seen=seen, insert=self._insert, table=alerts, key=self._key(channel_id, app, change_id),
            new_row={"channel_id": channel_id, "app": app, "change_id": change_id},
            index_elements=[alerts.c.channel_id, alerts.c.app, alerts.c.change_id],
            owner=owner, now=now, lease=lease,
        )

    def _set(self, channel_id: str, app: str, change_id: str, owner: str | None, **values: Any) -> None:
        where = self._key(channel_id, app, change_id)
        if owner is not None:  # only the current holder may change a claim's fate
            where = where & (alerts.c.owner == owner) & (alerts.c.state == ClaimState.CLAIMED.value)
        self.write(sa.update(alerts).where(where).values(**values))

    def mark_posted(self, channel_id: str, app: str, change_id: str, ts: str, now: float) -> None:
        self._set(channel_id, app, change_id, None, state=ClaimState.POSTED.value, ts=ts, posted_at=now, error=None)

    def release(self, channel_id: str, app: str, change_id: str, owner: str, error: str) -> None:
        self._set(channel_id, app, change_id, owner, state=ClaimState.RELEASED.value, error=error[:ERROR_LENGTH])

    def skip(self, channel_id: str, app: str, change_id: str, owner: str, reason: str) -> None:
        self._set(channel_id, app, change_id, owner, state=ClaimState.SKIPPED.value, error=reason[:ERROR_LENGTH])

    def note_error(self, channel_id: str, app: str, change_id: str, owner: str, error: str) -> None:
        self._set(channel_id, app, change_id, owner, error=error[:ERROR_LENGTH])


def _watch(row: Any) -> Watch:
    return Watch(row.channel_id, row.app, row.created_at, row.created_by, bool(row.enabled), row.disabled_reason)


def _alert(row: Any) -> AlertRecord:
    return AlertRecord(row.channel_id, row.app, row.change_id, ClaimState(row.state), row.owner, row.claimed_at,
                       row.attempts, row.ts, row.error)
