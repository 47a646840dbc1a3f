"""Alembic environment of the state store: migrations always run on the connection the store hands over.

``StateStore`` calls ``alembic.command.upgrade`` with ``config.attributes["connection"]`` set, inside its own
transaction and lock, so this file never opens a connection or begins a transaction itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from reportctl.state.models import Base


def run_migrations() -> None:
    """Upgrade on the store's connection; offline (SQL script) mode is not supported."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("the state store migrations run only through reportctl.state.open_store")
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
