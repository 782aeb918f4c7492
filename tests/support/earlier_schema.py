"""The bot's tables as the version before migrations made them (create_all at first use, as of the
release before Alembic), written out so the migration tests can build such a database and upgrade it."""

from __future__ import annotations

import sqlalchemy as sa

earlier = sa.MetaData()

digest_app_posts = sa.Table('digest_app_posts', earlier,
sa.Column('channel_id', sa.String(length=64), nullable=False),
sa.Column('app', sa.String(length=64), nullable=False),
sa.Column('period', sa.String(length=64), nullable=False),
sa.Column('state', sa.String(length=16), nullable=False),
sa.Column('owner', sa.String(length=100), nullable=True),
sa.Column('claimed_at', sa.Double(), nullable=True),
sa.Column('scheduled_for', sa.Double(), nullable=True),
sa.Column('attempts', sa.Integer(), nullable=False),
sa.Column('ts', sa.String(length=32), nullable=True),
sa.Column('posted_at', sa.Double(), nullable=True),
sa.Column('error', sa.String(length=500), nullable=True),
sa.Column('shown', sa.Text(), nullable=True),
sa.PrimaryKeyConstraint('channel_id', 'app', 'period')
)
digest_app_snapshots = sa.Table('digest_app_snapshots', earlier,
sa.Column('channel_id', sa.String(length=64), nullable=False),
sa.Column('app', sa.String(length=64), nullable=False),
sa.Column('languages', sa.Text(), nullable=False),
sa.Column('period', sa.String(length=64), nullable=False),
sa.Column('shown_at', sa.Double(), nullable=False),
sa.PrimaryKeyConstraint('channel_id', 'app')
)
digest_app_subscriptions = sa.Table('digest_app_subscriptions', earlier,
sa.Column('channel_id', sa.String(length=64), nullable=False),
sa.Column('app', sa.String(length=64), nullable=False),
sa.Column('schedule', sa.String(length=200), nullable=False),
sa.Column('enabled', sa.Boolean(), nullable=False),
sa.Column('hint', sa.String(length=500), nullable=True),
sa.Column('disabled_reason', sa.String(length=500), nullable=True),
sa.Column('effective_at', sa.Double(), nullable=False),
sa.Column('created_at', sa.Double(), nullable=False),
sa.Column('updated_at', sa.Double(), nullable=False),
sa.Column('created_by', sa.String(length=64), nullable=True),
sa.PrimaryKeyConstraint('channel_id', 'app')
)
digest_migrations = sa.Table('digest_migrations', earlier,
sa.Column('name', sa.String(length=100), nullable=False),
sa.Column('detail', sa.String(length=200), nullable=True),
sa.Column('done_at', sa.Double(), nullable=False),
sa.PrimaryKeyConstraint('name')
)
language_change_requests = sa.Table('language_change_requests', earlier,
sa.Column('id', sa.String(length=32), nullable=False),
sa.Column('app', sa.String(length=32), nullable=False),
sa.Column('action', sa.String(length=16), nullable=False),
sa.Column('tag', sa.String(length=64), nullable=False),
sa.Column('requested_by', sa.String(length=64), nullable=False),
sa.Column('requested_at', sa.Double(), nullable=False),
sa.Column('expires_at', sa.Double(), nullable=False),
sa.Column('state', sa.String(length=16), nullable=False),
sa.Column('decided_by', sa.String(length=64), nullable=True),
sa.Column('decided_at', sa.Double(), nullable=True),
sa.Column('outcome', sa.String(length=16), nullable=True),
sa.PrimaryKeyConstraint('id')
)
language_changes = sa.Table('language_changes', earlier,
sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
sa.Column('at', sa.Double(), nullable=False),
sa.Column('who', sa.String(length=64), nullable=False),
sa.Column('app', sa.String(length=32), nullable=False),
sa.Column('sdkappid', sa.BigInteger(), nullable=False),
sa.Column('action', sa.String(length=16), nullable=False),
sa.Column('tag', sa.String(length=64), nullable=False),
sa.Column('result', sa.String(length=16), nullable=False),
sa.Column('detail', sa.String(length=300), nullable=True),
sa.Column('request_id', sa.String(length=32), nullable=True),
sa.PrimaryKeyConstraint('id')
)
sa.Index('language_changes_by_app', language_changes.c.app, language_changes.c.at)
watch_alerts = sa.Table('watch_alerts', earlier,
sa.Column('channel_id', sa.String(length=32), nullable=False),
sa.Column('app', sa.String(length=32), nullable=False),
sa.Column('change_id', sa.String(length=120), nullable=False),
sa.Column('state', sa.String(length=16), nullable=False),
sa.Column('owner', sa.String(length=80), nullable=True),
sa.Column('claimed_at', sa.Double(), nullable=True),
sa.Column('attempts', sa.Integer(), nullable=False),
sa.Column('ts', sa.String(length=40), nullable=True),
sa.Column('posted_at', sa.Double(), nullable=True),
sa.Column('error', sa.String(length=500), nullable=True),
sa.PrimaryKeyConstraint('channel_id', 'app', 'change_id')
)
watch_events = sa.Table('watch_events', earlier,
sa.Column('app', sa.String(length=32), nullable=False),
sa.Column('change_id', sa.String(length=120), nullable=False),
sa.Column('kind', sa.String(length=16), nullable=False),
sa.Column('message', sa.Text(), nullable=False),
sa.Column('created_at', sa.Double(), nullable=False),
sa.PrimaryKeyConstraint('app', 'change_id')
)
sa.Index('watch_events_by_time', watch_events.c.created_at)
watch_polls = sa.Table('watch_polls', earlier,
sa.Column('app', sa.String(length=32), nullable=False),
sa.Column('slot', sa.BigInteger(), nullable=False),
sa.Column('owner', sa.String(length=80), nullable=False),
sa.Column('claimed_at', sa.Double(), nullable=False),
sa.PrimaryKeyConstraint('app', 'slot')
)
watch_state = sa.Table('watch_state', earlier,
sa.Column('app', sa.String(length=32), nullable=False),
sa.Column('list_json', sa.Text(), nullable=True),
sa.Column('list_since', sa.BigInteger(), nullable=True),
sa.Column('failures', sa.Integer(), nullable=False),
sa.Column('failing_since', sa.Double(), nullable=True),
sa.Column('error_code', sa.String(length=40), nullable=True),
sa.Column('error_hint', sa.String(length=400), nullable=True),
sa.Column('outage_id', sa.String(length=80), nullable=True),
sa.Column('updated_at', sa.Double(), nullable=False),
sa.PrimaryKeyConstraint('app')
)
watch_subscriptions = sa.Table('watch_subscriptions', earlier,
sa.Column('channel_id', sa.String(length=32), nullable=False),
sa.Column('app', sa.String(length=32), nullable=False),
sa.Column('created_at', sa.Double(), nullable=False),
sa.Column('created_by', sa.String(length=64), nullable=True),
sa.Column('enabled', sa.Boolean(), nullable=False),
sa.Column('disabled_reason', sa.String(length=200), nullable=True),
sa.PrimaryKeyConstraint('channel_id', 'app')
)
