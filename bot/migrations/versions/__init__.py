"""One Alembic script per schema change (see bot/migrations/__init__.py)."""
