"""Reaching the state database and bringing its schema to the newest migration, safely from many processes at once.

Migrations run inside one transaction that first takes a lock: ``BEGIN IMMEDIATE`` on SQLite (the database write
lock) and a transaction-scoped advisory lock on PostgreSQL. A second process waits for the first, then finds the
schema at head and does nothing.
"""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from reportctl.config import Project

MIGRATIONS = Path(__file__).parent
STATE_URL_ENV = "REPORTCTL_STATE_URL"
BUSY_TIMEOUT_SECONDS = 30
# any fixed 64-bit key; all reportctl processes sharing one PostgreSQL database agree on it
_MIGRATION_LOCK = 0x7265706F7274_01


def state_url(project: Project) -> str:
    """Where the project's state lives: REPORTCTL_STATE_URL, else ``state.url``, else ``.reportctl/state.db``."""
    from reportctl.secrets import resolve_secrets

    configured = os.environ.get(STATE_URL_ENV) or project.config.state.url
    if not configured:
        return f"sqlite:///{project.root / '.reportctl' / 'state.db'}"
    url = resolve_secrets(configured)
    prefix = "sqlite:///"
    path = url.removeprefix(prefix)
    # a relative SQLite path in reportctl.yaml means relative to the project, not to the working folder
    if url.startswith(prefix) and path and not path.startswith(("/", ":memory:")) and "://" not in path:
        return prefix + str(project.root / path)
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite state store URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return None
    return Path(database)


def database_url(url: str) -> URL:
    """The SQLAlchemy URL; a bare ``postgresql://`` uses psycopg 3, the driver reportctl ships with."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_state_engine(url: URL) -> Engine:
    """An engine for the store: SQLite gets WAL, a busy timeout, foreign keys and explicit ``BEGIN``."""
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # the driver's own transaction handling would start transactions late and commit DDL on its own
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # writers take the lock up front, so two writers queue on busy_timeout instead of failing mid-transaction
        connection.exec_driver_sql(str(connection.get_execution_options().get("sqlite_begin", "BEGIN")))

    return engine


def _use_wal(cursor: Any) -> None:
    """Put the database in WAL mode (it stays so, in the file) unless it is already.

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once, without waiting out the
    busy timeout, when another process is creating the same database at that moment: so retry briefly.
    """
    import sqlite3

    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def write_options(engine: Engine) -> dict[str, Any]:
    """Execution options for a connection that will write: on SQLite it takes the write lock at BEGIN."""
    return {"sqlite_begin": "BEGIN IMMEDIATE"} if engine.dialect.name == "sqlite" else {}


_REVISION = re.compile(r'^revision: str = "([^"]+)"$', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision: [^=]+= (?:"([^"]+)"|None)$', re.MULTILINE)


@functools.cache
def head_revisions() -> frozenset[str]:
    """The newest migration(s) shipped with this reportctl, read from the version files.

    Every command that records a run opens the store; reading two lines per file instead of importing Alembic
    keeps that at a few milliseconds when the schema is current (Alembic takes 0.14 s to import).
    """
    revisions, parents = set(), set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        text_ = script.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text_), _DOWN_REVISION.search(text_)
        if revision is None or down is None:
            raise RuntimeError(f"migration {script.name} has no revision/down_revision line")
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    return frozenset(revisions - parents)


def current_revisions(connection: Connection) -> frozenset[str]:
    """The migration(s) the database is at; empty for a new database."""
    from sqlalchemy import inspect

    if not inspect(connection).has_table("alembic_version"):
        return frozenset()
    return frozenset(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def upgrade_to_head(engine: Engine) -> bool:
    """Bring the schema to head unless it is there already; True when this call ran migrations."""
    head = head_revisions()
    with engine.connect() as connection:
        if current_revisions(connection) == head:
            return False
    from alembic import command

    with engine.connect() as connection:
        connection.execution_options(**write_options(engine))
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            if current_revisions(connection) == head:
                return False
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    return True


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def describe_failure(exc: DBAPIError) -> str:
    """The driver's reason in a few words: 'connection refused', 'unable to open database file'."""
    message = str(exc.orig) if exc.orig is not None else str(exc)
    first = next((line.strip() for line in message.splitlines() if line.strip()), type(exc).__name__)
    # psycopg: 'connection failed: connection to server at "h", port 5432 failed: Connection refused'
    reason = first.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
    return reason[:1].lower() + reason[1:]
