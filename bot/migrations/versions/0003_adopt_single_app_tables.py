"""The single-app version's digest rows become the default app's, once.

The tables keyed by channel only (digest_subscriptions, digest_snapshots, digest_posts) are
copied into the keyed-by-app tables.

The default app is the first of DESK_APPS at migration time (`default` without DESK_APPS). Rows
already there are kept (ON CONFLICT DO NOTHING). The row `legacy-tables` in digest_migrations says
it was done, by this migration or by the earlier version's own adoption at boot, so a digest
stopped since is not brought back. The old tables stay, unused, for a rollback; nothing of this
version reads or writes them (the rolling-deploy bridge to them is gone: see the README's
"Upgrading").

Revision ID: 0003_adopt_single_app_tables
Revises: 0002_same_widths
Create Date: 2026-12-04
"""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql, sqlite

revision = "0003_adopt_single_app_tables"
down_revision = "0002_same_widths"
branch_labels = None
depends_on = None

log = logging.getLogger("bot.migrations")

ADOPTED = (
    ("digest_subscriptions", "digest_app_subscriptions"),
    ("digest_snapshots", "digest_app_snapshots"),
    ("digest_posts", "digest_app_posts"),
)


def upgrade() -> None:
    bind = op.get_bind()
    present = set(sa.inspect(bind).get_table_names())
    legacy = [(old, new) for old, new in ADOPTED if old in present]
    if not legacy:
        return
    insert = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
    tables = sa.MetaData()
    done = sa.Table("digest_migrations", tables, autoload_with=bind)
    app = str(context.config.attributes.get("default_app") or "default")
    first = (
        insert(done)
        .values(name="legacy-tables", detail=f"adopted by {app}"[:200], done_at=time.time())
        .on_conflict_do_nothing(index_elements=[done.c.name])
        .returning(done.c.name)
    )
    if bind.execute(first).first() is None:
        return  # adopted before, by the earlier version at boot
    for old_name, new_name in legacy:
        old = sa.Table(old_name, tables, autoload_with=bind)
        new = sa.Table(new_name, tables, autoload_with=bind)
        names = [c.name for c in old.c if c.name in new.c]
        select = sa.select(*(old.c[name] for name in names), sa.cast(sa.literal(app), sa.String(64)).label("app"))
        # SQLite needs a WHERE in INSERT … SELECT … ON CONFLICT (else ON reads as a join's).
        bind.execute(insert(new).from_select([*names, "app"], select.where(sa.true())).on_conflict_do_nothing())
    log.info("digest rows of the single-app version adopted by the app %r", app)
