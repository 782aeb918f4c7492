"""Alembic's entry point: run the pending migrations on the connection `bot.database.migrate` passes,
in one transaction, after taking the migration lock inside it.

The lock comes before Alembic reads the current revision, so of two processes migrating at once
the second waits for the first's commit, then reads the new revision and has nothing to do:
PostgreSQL takes a transaction-scoped advisory lock; SQLite's BEGIN IMMEDIATE takes the write lock
(the engine waits up to its busy timeout). PostgreSQL's DDL is transactional, so a failed migration
leaves nothing half done; SQLite's is too once BEGIN is ours (Python's driver would not begin a
transaction before DDL on its own).
"""

from __future__ import annotations

from alembic import context

from bot.database import MIGRATION_LOCK_KEY

connection = context.config.attributes["connection"]
if connection is None:
    raise RuntimeError("run migrations with `python -m bot migrate` (bot.database.migrate), not the alembic command")

# render_as_batch: SQLite changes a column by copying its table (op.batch_alter_table does).
context.configure(connection=connection, target_metadata=None, render_as_batch=True, transactional_ddl=True)

with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    elif connection.dialect.name == "sqlite" and not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    # Read under the lock: what this run started from (a second process waiting here finds the head).
    context.config.attributes["before"] = context.get_context().get_current_revision()
    context.run_migrations()
