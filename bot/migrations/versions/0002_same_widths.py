"""The same width for the same thing in every table.

A Desk app's name and a Slack channel ID are 64 characters (watch and language changes had 32),
a claim's owner 100 (watch had 80), a message timestamp 40 (digests had 32). Only widening:
every value stored fits.

SQLite does not enforce a VARCHAR's length, but its tables are rebuilt too (batch mode copies the
rows), so both databases end with the same declared schema.

Revision ID: 0002_same_widths
Revises: 0001_initial
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_same_widths"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

# table: [(column, old width, new width, nullable)]
WIDENED = {
    "watch_subscriptions": [("channel_id", 32, 64, False), ("app", 32, 64, False)],
    "watch_state": [("app", 32, 64, False)],
    "watch_polls": [("app", 32, 64, False), ("owner", 80, 100, False)],
    "watch_events": [("app", 32, 64, False)],
    "watch_alerts": [("channel_id", 32, 64, False), ("app", 32, 64, False), ("owner", 80, 100, True)],
    "language_change_requests": [("app", 32, 64, False)],
    "language_changes": [("app", 32, 64, False)],
    "digest_app_posts": [("ts", 32, 40, True)],
}


def upgrade() -> None:
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table) as batch:
            for name, old, new, nullable in columns:
                batch.alter_column(
                    name, type_=sa.String(new), existing_type=sa.String(old), existing_nullable=nullable
                )
