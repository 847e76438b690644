"""Alembic environment: always runs on a connection handed in by ``quantum_router.db.migrate``."""

from alembic import context

from quantum_router.db.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
