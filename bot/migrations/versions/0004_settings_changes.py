"""A change request can carry chatbot settings: what the modal was filled with, and what was asked.

`language_change_requests` gains two nullable text columns (JSON), used by requests whose action
is `settings` (bot/management/settings_editor.py): `read_values`, the settings as Desk had them
when the modal opened, and `new_values`, what the admin asked for at the review. The reconciler
compares them with what Desk has when the process that applied the change died before recording
it. Requests of `add` and `remove` leave them empty.

Revision ID: 0004_settings_changes
Revises: 0003_adopt_single_app_tables
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_settings_changes"
down_revision = "0003_adopt_single_app_tables"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("language_change_requests") as batch:
        batch.add_column(sa.Column("read_values", sa.Text(), nullable=True))
        batch.add_column(sa.Column("new_values", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("language_change_requests") as batch:
        batch.drop_column("new_values")
        batch.drop_column("read_values")
