"""Alembic environment: keysafe always passes an open connection in."""

from __future__ import annotations

from alembic import context

from keysafe.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
