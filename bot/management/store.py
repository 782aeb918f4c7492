"""Language changes in SQL (SQLAlchemy Core): confirmations waiting for a click, and the audit trail.

A confirmation is single-use across every process: the click that wins this one statement
is the only one that may call Desk (the database serialises concurrent updates of a row;
exactly one sees its row come back):

    UPDATE language_change_requests SET state='applying', decided_by=:user, decided_at=:now
    WHERE id=:id AND state='pending' AND expires_at > :now RETURNING id

Every attempt that reaches Desk is recorded in `language_changes` (who confirmed, app, action,
tag, result, time; who asked is the request's `requested_by`), whatever the result. The row's
outcome and its audit entry are written in one transaction, only while the row is still
`applying` (`settle`): so a write is recorded once, whether by the process that made it or, after
a crash or a lost database, by the reconciler of any process (`unsettled`). Times are Unix seconds.

Under two-person approval (DESK_APPROVALS=2) a confirmed request first waits (`hold`: state
`awaiting`, at most one per app by a partial unique index, the app's lock) until a second admin
approves it (`decide` from `awaiting` to `applying`, the same single-winner statement) or it ends
without a write (`end`: rejected, cancelled, superseded or expired, with its audit entry in the
same transaction).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from bot.database import SqlStore, app_column, metadata, user_column

requests_table = sa.Table(
    "language_change_requests",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    app_column(nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # add | remove
    sa.Column("tag", sa.String(64), nullable=False),
    user_column("requested_by", nullable=False),
    sa.Column("requested_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # RequestState
    user_column("decided_by"),
    sa.Column("decided_at", sa.Double),
    sa.Column("outcome", sa.String(16)),  # the write's status, once it has one
    # `settings` requests only (JSON, bot/management/settings_form.py): the values the modal was
    # filled with, and those asked for at the review (migration 0004)
    sa.Column("read_values", sa.Text),
    sa.Column("new_values", sa.Text),
    # Two-person approval (migration 0005): where the request waiting for a second admin was posted
    # (DESK_AUDIT_CHANNEL), so every end state updates that one message in place.
    sa.Column("approval_channel", sa.String(32)),
    sa.Column("approval_ts", sa.String(32)),
    # A request from a Workflow Builder step (migration 0006): the execution its end completes, when
    # it was completed (the claim: once across processes), and the requester's reason.
    sa.Column("step_execution", sa.String(64)),
    sa.Column("step_completed_at", sa.Double),
    sa.Column("reason", sa.String(500)),
)
# The lock of an app under two-person approval (Atlantis' lock): at most one request of an app
# waits for approval at a time, across processes, whatever races; the database says no to a second.
sa.Index(
    "language_change_requests_one_awaiting",
    requests_table.c.app,
    unique=True,
    sqlite_where=requests_table.c.state == "awaiting",
    postgresql_where=requests_table.c.state == "awaiting",
)

audit_table = sa.Table(
    "language_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Double, nullable=False),
    user_column("who", nullable=False),  # a Slack user ID, or cli:<os user>
    app_column(nullable=False),
    sa.Column("sdkappid", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("tag", sa.String(64), nullable=False),
    # applied | not-applied | not-seen | unknown; a request for approval that wrote nothing:
    # rejected | expired | cancelled | superseded
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("detail", sa.String(300)),  # Desk's code and meaning when not applied (never a secret)
    sa.Column("request_id", sa.String(32)),
)
sa.Index("language_changes_by_app", audit_table.c.app, audit_table.c.at)


SETTINGS_ACTION = "settings"  # a request to change one language's chatbot settings
# Audit results of a write that reached Desk and may have changed it (the others: not-applied, and
# the end states of a request for approval that wrote nothing: rejected, expired, cancelled, superseded).
WRITE_MAY_HAVE_APPLIED = frozenset({"applied", "not-seen", "unknown"})


class RequestState(StrEnum):
    PENDING = "pending"  # waiting for Confirm or Cancel
    APPLYING = "applying"  # confirmed: Desk is being called (or was, by a process that died)
    DONE = "done"  # the write has an outcome (recorded in the audit)
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"  # the list read at the click no longer allowed it: nothing was sent
    AWAITING = "awaiting"  # confirmed by its requester, waiting for a second admin (the app's lock)
    REJECTED = "rejected"  # a second admin said no: nothing was sent
    EXPIRED = "expired"  # nobody approved within DESK_APPROVAL_TTL: nothing was sent


ENDED = (RequestState.DONE, RequestState.REJECTED, RequestState.EXPIRED, RequestState.CANCELLED,
         RequestState.SUPERSEDED)


class AppLocked(Exception):
    """Another request of the app is waiting for approval (`holder`)."""

    def __init__(self, holder: ChangeRequest | None) -> None:
        super().__init__("another request of this app is waiting for approval")
        self.holder = holder


@dataclass(frozen=True)
class ChangeRequest:
    id: str
    app: str
    action: str
    tag: str
    requested_by: str
    requested_at: float
    expires_at: float
    state: RequestState
    decided_by: str | None
    decided_at: float | None
    outcome: str | None
    read_values: str | None = None  # `settings` requests: JSON of what the modal was filled with
    new_values: str | None = None  # … and of what was asked for at the review
    approval_channel: str | None = None  # where the request for approval was posted, if it was
    approval_ts: str | None = None
    step_execution: str | None = None  # a Workflow Builder step's function_execution_id
    step_completed_at: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    at: float
    who: str
    app: str
    sdkappid: int
    action: str
    tag: str
    result: str
    detail: str | None
    requested_by: str | None = None  # who asked (the request's); None for the command line's changes


def _request(row: Any) -> ChangeRequest:
    return ChangeRequest(
        id=row.id,
        app=row.app,
        action=row.action,
        tag=row.tag,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        expires_at=row.expires_at,
        state=RequestState(row.state),
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        outcome=row.outcome,
        read_values=row.read_values,
        new_values=row.new_values,
        approval_channel=row.approval_channel,
        approval_ts=row.approval_ts,
        step_execution=row.step_execution,
        step_completed_at=row.step_completed_at,
        reason=row.reason,
    )


class ChangeStore(SqlStore):
    """Confirmations and the audit trail, in the bot's database (DATABASE_URL)."""

    # --- confirmations ---------------------------------------------------------------------------

    def create_request(
        self, *, app: str, action: str, tag: str, user: str, now: float, ttl: float, read_values: str | None = None,
        step_execution: str | None = None, reason: str | None = None, channel: str | None = None,
    ) -> str:
        """A pending request; from a Workflow Builder step, with its execution, reason and the channel
        its request for approval goes to."""
        request_id = secrets.token_urlsafe(16)[:22]
        with self.connection(begin=True) as conn:
            conn.execute(
                sa.insert(requests_table).values(
                    id=request_id, app=app, action=action, tag=tag, requested_by=user,
                    requested_at=now, expires_at=now + ttl, state=RequestState.PENDING.value,
                    read_values=read_values, step_execution=step_execution,
                    reason=reason[:500] if reason else None, approval_channel=channel,
                )
            )
        return request_id

    def propose(self, request_id: str, *, user: str, new_values: str, now: float) -> bool:
        """Set what a pending `settings` request asks for (the review; again after Back): True when
        it did, False when the request was decided, expired, or is someone else's."""
        table = requests_table
        statement = (
            sa.update(table)
            .where(
                (table.c.id == request_id[:32])
                & (table.c.state == RequestState.PENDING.value)
                & (table.c.expires_at > now)
                & (table.c.requested_by == user)
            )
            .values(new_values=new_values)
            .returning(table.c.id)
        )
        with self.connection(begin=True) as conn:
            return conn.execute(statement).first() is not None

    def get_request(self, request_id: str) -> ChangeRequest | None:
        with self.connection(begin=False) as conn:
            row = conn.execute(sa.select(requests_table).where(requests_table.c.id == request_id[:32])).first()
        return _request(row) if row is not None else None

    def decide(
        self, request_id: str, *, to: RequestState, user: str, now: float,
        from_state: RequestState = RequestState.PENDING,
    ) -> bool:
        """Move an unexpired request from `from_state` to `to` (APPLYING, CANCELLED, SUPERSEDED):
        True for the one caller that did it, across processes; False when it was used, cancelled or
        expired already. An approval is `from_state=AWAITING, to=APPLYING`."""
        table = requests_table
        statement = (
            sa.update(table)
            .where(
                (table.c.id == request_id[:32])
                & (table.c.state == from_state.value)
                & (table.c.expires_at > now)
            )
            .values(state=to.value, decided_by=user, decided_at=now)
            .returning(table.c.id)
        )
        with self.connection(begin=True) as conn:
            return conn.execute(statement).first() is not None

    # --- two-person approval -------------------------------------------------------------------------

    def hold(self, request_id: str, *, now: float, ttl: float) -> bool:
        """Make a pending request the one of its app waiting for approval, for `ttl` seconds: True
        when it is; False when it was used, cancelled or expired already. Raises AppLocked when
        another request of the app waits (the partial unique index decides, across processes)."""
        table = requests_table
        statement = (
            sa.update(table)
            .where(
                (table.c.id == request_id[:32])
                & (table.c.state == RequestState.PENDING.value)
                & (table.c.expires_at > now)
            )
            .values(state=RequestState.AWAITING.value, expires_at=now + ttl, decided_at=now)
            .returning(table.c.app)
        )
        try:
            with self.connection(begin=True) as conn:
                return conn.execute(statement).first() is not None
        except sa.exc.IntegrityError:
            request = self.get_request(request_id)
            raise AppLocked(self.awaiting(request.app) if request is not None else None) from None

    def awaiting(self, app: str) -> ChangeRequest | None:
        """The request of `app` waiting for approval (expired or not), if any: who holds the lock."""
        table = requests_table
        query = sa.select(table).where((table.c.app == app) & (table.c.state == RequestState.AWAITING.value))
        with self.connection(begin=False) as conn:
            row = conn.execute(query).first()
        return _request(row) if row is not None else None

    def set_approval_message(self, request_id: str, *, channel: str, ts: str) -> None:
        statement = (
            sa.update(requests_table)
            .where(requests_table.c.id == request_id[:32])
            .values(approval_channel=channel[:32], approval_ts=ts[:32])
        )
        with self.connection(begin=True) as conn:
            conn.execute(statement)

    def end(self, request_id: str, *, to: RequestState, entry: AuditEntry, now: float, expired: bool = False) -> bool:
        """End a request waiting for approval without a write (REJECTED, CANCELLED, SUPERSEDED; EXPIRED
        with `expired`, only once its time is up; the others only before) and record its audit entry,
        in one transaction: True for the one caller that did it, across processes (it updates the
        request's message). Frees the app's lock."""
        table = requests_table
        timely = table.c.expires_at <= now if expired else table.c.expires_at > now
        statement = (
            sa.update(table)
            .where((table.c.id == request_id[:32]) & (table.c.state == RequestState.AWAITING.value) & timely)
            .values(state=to.value, decided_by=entry.who, decided_at=now, outcome=entry.result)
            .returning(table.c.id)
        )
        with self.connection(begin=True) as conn:
            if conn.execute(statement).first() is None:
                return False
            conn.execute(_audit_insert(entry, request_id))
        return True

    def due_to_expire(self, *, now: float) -> list[ChangeRequest]:
        """Requests waiting for approval whose time is up (the ticker expires them)."""
        table = requests_table
        query = (
            sa.select(table)
            .where((table.c.state == RequestState.AWAITING.value) & (table.c.expires_at <= now))
            .order_by(table.c.expires_at)
            .limit(50)
        )
        with self.connection(begin=False) as conn:
            return [_request(row) for row in conn.execute(query)]

    def claim_step(self, request_id: str, *, now: float) -> ChangeRequest | None:
        """The ended request of a Workflow Builder step, for the one caller (across processes) that
        completes its step; None when it is not a step's, has not ended, or was completed already."""
        table = requests_table
        statement = (
            sa.update(table)
            .where(
                (table.c.id == request_id[:32]) & table.c.step_execution.is_not(None)
                & table.c.step_completed_at.is_(None) & table.c.state.in_([s.value for s in ENDED])
            )
            .values(step_completed_at=now)
            .returning(table.c.id)
        )
        with self.connection(begin=True) as conn:
            if conn.execute(statement).first() is None:
                return None
        return self.get_request(request_id)

    def release_step(self, request_id: str) -> None:
        """Undo `claim_step` when Slack did not take the completion: the reconciler tries again."""
        statement = sa.update(requests_table).where(requests_table.c.id == request_id[:32]).values(
            step_completed_at=None)
        with self.connection(begin=True) as conn:
            conn.execute(statement)

    def steps_to_complete(self) -> list[ChangeRequest]:
        """Ended requests of steps nobody completed (the process that ended one died first, or Slack
        did not take the completion), the most recently decided first: rows Slack keeps refusing
        cannot fill every batch ahead of the requests that ended after them."""
        table = requests_table
        query = (
            sa.select(table)
            .where(table.c.step_execution.is_not(None) & table.c.step_completed_at.is_(None)
                   & table.c.state.in_([s.value for s in ENDED]))
            .order_by(table.c.decided_at.desc(), table.c.id)
            .limit(50)
        )
        with self.connection(begin=False) as conn:
            return [_request(row) for row in conn.execute(query)]

    def unposted(self, *, held_before: float) -> list[ChangeRequest]:
        """Requests waiting for approval since before `held_before` whose message was never recorded
        (the database failed right after the post): nobody can approve them, and they hold their app's
        lock until they are withdrawn."""
        table = requests_table
        query = (
            sa.select(table)
            .where((table.c.state == RequestState.AWAITING.value) & table.c.approval_ts.is_(None)
                   & (table.c.decided_at < held_before))
            .order_by(table.c.decided_at)
            .limit(50)
        )
        with self.connection(begin=False) as conn:
            return [_request(row) for row in conn.execute(query)]

    # --- outcomes ------------------------------------------------------------------------------------

    def settle(self, request_id: str, entry: AuditEntry) -> bool:
        """Record the outcome of the write a request made and its audit entry, in one transaction,
        if nobody has: True for the one caller that did (it posts the audit line), across processes."""
        statement = (
            sa.update(requests_table)
            .where((requests_table.c.id == request_id) & (requests_table.c.state == RequestState.APPLYING.value))
            .values(state=RequestState.DONE.value, outcome=entry.result)
            .returning(requests_table.c.id)
        )
        with self.connection(begin=True) as conn:
            if conn.execute(statement).first() is None:
                return False
            conn.execute(_audit_insert(entry, request_id))
        return True

    def unsettled(self, *, decided_before: float) -> list[ChangeRequest]:
        """Requests confirmed before `decided_before` whose write has no recorded outcome: the
        process that made it died, or could not reach the database afterwards."""
        table = requests_table
        query = (
            sa.select(table)
            .where((table.c.state == RequestState.APPLYING.value) & (table.c.decided_at < decided_before))
            .order_by(table.c.decided_at)
            .limit(50)
        )
        with self.connection(begin=False) as conn:
            return [_request(row) for row in conn.execute(query)]

    # --- the audit trail -----------------------------------------------------------------------------

    def record(self, entry: AuditEntry) -> None:
        """An audit entry of a write no request made (the command line's)."""
        with self.connection(begin=True) as conn:
            conn.execute(_audit_insert(entry, None))

    def history(self, app: str, limit: int = 20) -> list[AuditEntry]:
        """The app's newest audit entries, each with who asked (from its request) beside who confirmed."""
        table = audit_table
        query = (
            sa.select(table, requests_table.c.requested_by)
            .select_from(table.outerjoin(requests_table, requests_table.c.id == table.c.request_id))
            .where(table.c.app == app)
            .order_by(table.c.at.desc(), table.c.id.desc())
            .limit(limit)
        )
        with self.connection(begin=False) as conn:
            rows = conn.execute(query).all()
        return [
            AuditEntry(r.at, r.who, r.app, r.sdkappid, r.action, r.tag, r.result, r.detail, r.requested_by)
            for r in rows
        ]

    def who_changed(self, app: str, action: str, tag: str, since: float) -> str | None:
        """Who made a change through the bot: the newest audit entry of that app, action and tag since
        `since` whose write was not refused (an unknown or not-seen outcome may have applied later)."""
        for entry in self.history(app, limit=50):
            if entry.at < since:
                return None
            if entry.action == action and entry.tag == tag and entry.result in WRITE_MAY_HAVE_APPLIED:
                return entry.who
        return None


def _audit_insert(entry: AuditEntry, request_id: str | None) -> Any:
    return sa.insert(audit_table).values(
        at=entry.at, who=entry.who, app=entry.app, sdkappid=entry.sdkappid, action=entry.action,
        tag=entry.tag, result=entry.result, detail=(entry.detail or "")[:300] or None, request_id=request_id,
    )
