"""The bot's SQL database (DATABASE_URL): creating tables safely when several processes boot at once.

Digests and language changes each own their tables (bot/digests/store.py,
bot/management/store.py); both are created through `create_tables`.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)


def create_tables(engine: Engine, metadata: sa.MetaData, what: str) -> None:
    """Create `metadata`'s tables if missing. Another process may be creating them at the same
    moment: its CREATE then makes ours fail, after which the tables exist and a second pass passes."""
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                metadata.create_all(conn, checkfirst=True)
            return
        except DBAPIError:
            if attempt == 2:
                raise
            log.info("%s tables were being created concurrently; checking again", what)
