"""Alembic migrations of the history store (env.py, versions/)."""
