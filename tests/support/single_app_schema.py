"""The digest tables as the single-app version made them, with rows: the migration tests adopt them."""

from __future__ import annotations

import sqlalchemy as sa

from bot.database import connect
from bot.desk.models import Language, LanguageList

SHOWN = LanguageList.build([Language.of("en", True), Language.of("ja")], 1700000000.0)


def create_single_app_schema(database_url: str) -> sa.Engine:
    """The tables as the version before several apps created them (keyed by channel), with rows."""
    engine = connect(database_url)
    old = sa.MetaData()
    subs = sa.Table(
        "digest_subscriptions", old,
        sa.Column("channel_id", sa.String(64), primary_key=True),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, default=True),
        sa.Column("hint", sa.String(500)),
        sa.Column("disabled_reason", sa.String(500)),
        sa.Column("effective_at", sa.Double, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )  # fmt: skip
    snaps = sa.Table(
        "digest_snapshots", old,
        sa.Column("channel_id", sa.String(64), primary_key=True),
        sa.Column("languages", sa.Text, nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("shown_at", sa.Double, nullable=False),
    )  # fmt: skip
    posted = sa.Table(
        "digest_posts", old,
        sa.Column("channel_id", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(100)),
        sa.Column("claimed_at", sa.Double),
        sa.Column("scheduled_for", sa.Double),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("ts", sa.String(32)),
        sa.Column("posted_at", sa.Double),
        sa.Column("error", sa.String(500)),
        sa.Column("shown", sa.Text),
    )  # fmt: skip
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(subs.insert(), [
            dict(channel_id="C1", schedule="daily 09:00 UTC", enabled=True, hint=None, disabled_reason=None,
                 effective_at=10.0, created_at=10.0, updated_at=10.0),
            dict(channel_id="C2", schedule="weekly mon 09:00 UTC", enabled=False, hint="invite the bot",
                 disabled_reason="Slack says is_archived", effective_at=20.0, created_at=5.0, updated_at=30.0),
        ])  # fmt: skip
        conn.execute(
            snaps.insert().values(channel_id="C1", languages=SHOWN.to_json(), period="2026-03-30", shown_at=40.0)
        )
        conn.execute(posted.insert().values(
            channel_id="C1", period="2026-03-30", state="posted", owner="old", claimed_at=39.0,
            scheduled_for=38.0, attempts=1, ts="1774861200.000100", posted_at=40.0, shown=SHOWN.to_json(),
        ))  # fmt: skip
        conn.execute(posted.insert().values(
            channel_id="C2", period="2026-W14", state="skipped", owner="old", claimed_at=50.0,
            scheduled_for=49.0, attempts=2, error="could not check the channel",
        ))  # fmt: skip
    return engine
