"""Moving a test's state store to a given Alembic revision, and reading the columns its runs table has there."""

from __future__ import annotations

import sqlalchemy as sa

from reportctl.state.migrations import _alembic_config, create_state_engine, database_url


def migrate(url: str, target: str, *, down: bool = False) -> None:
    """Upgrade (or with ``down`` downgrade) the store at ``url`` to the revision ``target``."""
    from alembic import command

    engine = create_state_engine(database_url(url))
    try:
        with engine.connect() as connection, connection.begin():
            config = _alembic_config()
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, target)
    finally:
        engine.dispose()


def run_columns(url: str) -> set[str]:
    """The names of the columns of the store's ``runs`` table."""
    engine = create_state_engine(database_url(url))
    try:
        with engine.connect() as connection:
            return {c["name"] for c in sa.inspect(connection).get_columns("runs")}
    finally:
        engine.dispose()
