"""A change request can come from a Workflow Builder step ("Request a language change").

`language_change_requests` gains `step_execution` (the step's function_execution_id, which the
request's end completes), `step_completed_at` (set by the one process that completed it: the
claim that makes the completion happen once), and `reason` (the requester's words, shown to the
admins). Requests made in Slack or on the command line leave them empty; no row changes.

Revision ID: 0006_step_requests
Revises: 0005_approvals
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_step_requests"
down_revision = "0005_approvals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("language_change_requests") as batch:
        batch.add_column(sa.Column("step_execution", sa.String(64), nullable=True))
        batch.add_column(sa.Column("step_completed_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("language_change_requests") as batch:
        batch.drop_column("reason")
        batch.drop_column("step_completed_at")
        batch.drop_column("step_execution")
