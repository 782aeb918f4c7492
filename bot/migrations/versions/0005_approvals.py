"""Two-person approval: a change request can wait for a second admin, one per app at a time.

`language_change_requests` gains where its request for approval was posted (`approval_channel`,
`approval_ts`: the message every end state updates in place) and a partial unique index on `app`
over the rows in state `awaiting`: the app's lock, held by the one request waiting for approval,
refused to a second by the database whatever the races between processes. New states (awaiting,
rejected, expired) fit the existing column; no row changes.

Revision ID: 0005_approvals
Revises: 0004_settings_changes
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_approvals"
down_revision = "0004_settings_changes"
branch_labels = None
depends_on = None

AWAITING = sa.text("state = 'awaiting'")


def upgrade() -> None:
    with op.batch_alter_table("language_change_requests") as batch:
        batch.add_column(sa.Column("approval_channel", sa.String(32), nullable=True))
        batch.add_column(sa.Column("approval_ts", sa.String(32), nullable=True))
    op.create_index(
        "language_change_requests_one_awaiting", "language_change_requests", ["app"], unique=True,
        sqlite_where=AWAITING, postgresql_where=AWAITING,
    )


def downgrade() -> None:
    op.drop_index("language_change_requests_one_awaiting", table_name="language_change_requests")
    with op.batch_alter_table("language_change_requests") as batch:
        batch.drop_column("approval_ts")
        batch.drop_column("approval_channel")
