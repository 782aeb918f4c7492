"""The tables as the bot made them before migrations, where missing.

The earlier version created them at first use (create_all): a database it made already has
these tables and is left as it is; an empty one gets them. Later revisions change them.

Revision ID: 0001_initial
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table('digest_app_posts'):
        op.create_table('digest_app_posts',
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
    if not inspector.has_table('digest_app_snapshots'):
        op.create_table('digest_app_snapshots',
            sa.Column('channel_id', sa.String(length=64), nullable=False),
            sa.Column('app', sa.String(length=64), nullable=False),
            sa.Column('languages', sa.Text(), nullable=False),
            sa.Column('period', sa.String(length=64), nullable=False),
            sa.Column('shown_at', sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint('channel_id', 'app')
        )
    if not inspector.has_table('digest_app_subscriptions'):
        op.create_table('digest_app_subscriptions',
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
    if not inspector.has_table('digest_migrations'):
        op.create_table('digest_migrations',
            sa.Column('name', sa.String(length=100), nullable=False),
            sa.Column('detail', sa.String(length=200), nullable=True),
            sa.Column('done_at', sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint('name')
        )
    if not inspector.has_table('language_change_requests'):
        op.create_table('language_change_requests',
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
    if not inspector.has_table('language_changes'):
        op.create_table('language_changes',
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
        op.create_index('language_changes_by_app', 'language_changes', ['app', 'at'], unique=False)
    if not inspector.has_table('watch_alerts'):
        op.create_table('watch_alerts',
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
    if not inspector.has_table('watch_events'):
        op.create_table('watch_events',
            sa.Column('app', sa.String(length=32), nullable=False),
            sa.Column('change_id', sa.String(length=120), nullable=False),
            sa.Column('kind', sa.String(length=16), nullable=False),
            sa.Column('message', sa.Text(), nullable=False),
            sa.Column('created_at', sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint('app', 'change_id')
        )
        op.create_index('watch_events_by_time', 'watch_events', ['created_at'], unique=False)
    if not inspector.has_table('watch_polls'):
        op.create_table('watch_polls',
            sa.Column('app', sa.String(length=32), nullable=False),
            sa.Column('slot', sa.BigInteger(), nullable=False),
            sa.Column('owner', sa.String(length=80), nullable=False),
            sa.Column('claimed_at', sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint('app', 'slot')
        )
    if not inspector.has_table('watch_state'):
        op.create_table('watch_state',
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
    if not inspector.has_table('watch_subscriptions'):
        op.create_table('watch_subscriptions',
            sa.Column('channel_id', sa.String(length=32), nullable=False),
            sa.Column('app', sa.String(length=32), nullable=False),
            sa.Column('created_at', sa.Double(), nullable=False),
            sa.Column('created_by', sa.String(length=64), nullable=True),
            sa.Column('enabled', sa.Boolean(), nullable=False),
            sa.Column('disabled_reason', sa.String(length=200), nullable=True),
            sa.PrimaryKeyConstraint('channel_id', 'app')
        )
