"""Language changes in SQL (SQLAlchemy Core): confirmations waiting for a click, and the audit trail.

A confirmation is single-use across every process: the click that wins this one statement
is the only one that may call Desk (the database serialises concurrent updates of a row;
exactly one sees its row come back):

    UPDATE language_change_requests SET state='applying', decided_by=:user, decided_at=:now
    WHERE id=:id AND state='pending' AND expires_at > :now RETURNING id

Every attempt that reaches Desk is recorded in `language_changes` (who, app, action, tag,
result, time), whatever the result. Times are Unix seconds.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.database import create_tables

metadata = sa.MetaData()

requests_table = sa.Table(
    "language_change_requests",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("app", sa.String(32), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # add | remove
    sa.Column("tag", sa.String(64), nullable=False),
    sa.Column("requested_by", sa.String(64), nullable=False),
    sa.Column("requested_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # RequestState
    sa.Column("decided_by", sa.String(64)),
    sa.Column("decided_at", sa.Double),
    sa.Column("outcome", sa.String(16)),  # the write's status, once it has one
)

audit_table = sa.Table(
    "language_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("who", sa.String(64), nullable=False),  # a Slack user ID, or cli:<os user>
    sa.Column("app", sa.String(32), nullable=False),
    sa.Column("sdkappid", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("tag", sa.String(64), nullable=False),
    sa.Column("result", sa.String(16), nullable=False),  # applied | not-applied | not-seen | unknown
    sa.Column("detail", sa.String(300)),  # Desk's code and meaning when not applied (never a secret)
    sa.Column("request_id", sa.String(32)),
)
sa.Index("language_changes_by_app", audit_table.c.app, audit_table.c.at)


class RequestState(StrEnum):
    PENDING = "pending"  # waiting for Confirm or Cancel
    APPLYING = "applying"  # confirmed: Desk is being called (or was, by a process that died)
    DONE = "done"  # the write has an outcome (recorded in the audit)
    CANCELLED = "cancelled"


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
    )


class ChangeStore:
    """Confirmations and the audit trail, in the bot's database (DATABASE_URL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ready = False
        self._ready_lock = threading.Lock()

    def ensure_tables(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                create_tables(self.engine, metadata, "language change")
                self._ready = True

    # --- confirmations ---------------------------------------------------------------------------

    def create_request(self, *, app: str, action: str, tag: str, user: str, now: float, ttl: float) -> str:
        self.ensure_tables()
        request_id = secrets.token_urlsafe(16)[:22]
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(requests_table).values(
                    id=request_id, app=app, action=action, tag=tag, requested_by=user,
                    requested_at=now, expires_at=now + ttl, state=RequestState.PENDING.value,
                )
            )
        return request_id

    def get_request(self, request_id: str) -> ChangeRequest | None:
        self.ensure_tables()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(requests_table).where(requests_table.c.id == request_id[:32])).first()
        return _request(row) if row is not None else None

    def decide(self, request_id: str, *, to: RequestState, user: str, now: float) -> bool:
        """Move a pending, unexpired request to `to` (APPLYING or CANCELLED): True for the one caller
        that did it, across processes; False when it was used, cancelled or expired already."""
        self.ensure_tables()
        table = requests_table
        statement = (
            sa.update(table)
            .where(
                (table.c.id == request_id[:32])
                & (table.c.state == RequestState.PENDING.value)
                & (table.c.expires_at > now)
            )
            .values(state=to.value, decided_by=user, decided_at=now)
            .returning(table.c.id)
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).first() is not None

    def finish(self, request_id: str, outcome: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(requests_table)
                .where(requests_table.c.id == request_id)
                .values(state=RequestState.DONE.value, outcome=outcome)
            )

    # --- the audit trail -----------------------------------------------------------------------------

    def record(self, entry: AuditEntry, request_id: str | None = None) -> None:
        self.ensure_tables()
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(audit_table).values(
                    at=entry.at, who=entry.who, app=entry.app, sdkappid=entry.sdkappid, action=entry.action,
                    tag=entry.tag, result=entry.result, detail=(entry.detail or "")[:300] or None,
                    request_id=request_id,
                )
            )

    def history(self, app: str, limit: int = 20) -> list[AuditEntry]:
        self.ensure_tables()
        table = audit_table
        query = sa.select(table).where(table.c.app == app).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AuditEntry(r.at, r.who, r.app, r.sdkappid, r.action, r.tag, r.result, r.detail) for r in rows
        ]
