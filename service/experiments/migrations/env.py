"""Alembic's entry point: upgrade on the connection ``service.experiments.store`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from service.experiments.schema import metadata

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
