"""The ``sql`` source: a query on SQLite, PostgreSQL or MySQL/MariaDB, parameters bound by the driver.

Connecting, timeouts, the driver's messages made one line without the password, and the result as a frame;
how values and column types cross the driver is in ``sql_types``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote, quote_plus, unquote

from pydantic import ConfigDict, Field, field_validator

from reportctl.data.sources.base import (
    CacheOption,
    ColumnType,
    SourceContext,
    UncheckedColumns,
    apply_column_types,
    cache_field,
    column_dtypes,
)
from reportctl.data.sources.file import confinement_problem
from reportctl.data.sources.sql_types import Backend, dtype_from_description, sqlite_value
from reportctl.data.sqltext import quote_identifier
from reportctl.data.sqltree import ResultColumns, SqlDialect, query_parameters, result_columns
from reportctl.errors import SourceError, did_you_mean, first_line
from reportctl.extras import missing_extra
from reportctl.secrets import SecretError, mask_url_passwords, redact, resolve_secrets
from reportctl.spec.models import SourceOptions
from reportctl.spec.types import PositiveDuration

if TYPE_CHECKING:
    import polars as pl
    from sqlalchemy.engine import URL, Engine

_BACKENDS: dict[str, Backend] = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb+pymysql": "mysql",
}
_DRIVERS: dict[Backend, str] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
}
_DIALECTS: dict[Backend, SqlDialect] = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}
_DEFAULT_PORTS: dict[Backend, int] = {"sqlite": 0, "postgresql": 5432, "mysql": 3306}
_INSTALL_HINTS: dict[Backend, str] = {
    "sqlite": "",
    "postgresql": "the PostgreSQL driver psycopg is not installed; pip install 'reportctl[postgres]'",
    "mysql": "the MySQL/MariaDB driver pymysql is not installed; pip install 'reportctl[mysql]'",
}
_SUPPORTED = "use sqlite, postgresql, mysql or mariadb"
_DRIVER_MODULES: dict[Backend, str] = {"postgresql": "psycopg", "mysql": "pymysql"}
_BACKEND_NAMES: dict[Backend, str] = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB"}
_PSYCOPG_CONNECT_PREFIX = re.compile(
    r'^connection failed: connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed: '
)
_OS_ERROR_TEXT = re.compile(r"\(\[Errno -?\d+\] (?P<text>[^)]*)\)")


class SqlOptions(SourceOptions):
    """Options of the ``sql`` source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sql"] = Field(description="Runs a query on SQLite, PostgreSQL or MySQL/MariaDB.")
    url: str = Field(
        description="A SQLAlchemy URL such as sqlite:///data/app.db or "
        "postgresql://report@db/sales?sslmode=require; ${secret:NAME} is resolved only when the query runs."
    )
    query: str = Field(description="The SELECT to run; :name binds the parameter 'name' through the driver.")
    timeout: PositiveDuration = Field(
        default=timedelta(seconds=60),
        description="Limit for connecting and for the query, where the driver can.",
    )
    schema_overrides: dict[str, ColumnType] = Field(
        default_factory=dict,
        description="Column types instead of the driver's: int, float, str, bool, date, datetime. SQLite keeps "
        "dates as text and reports no types at all for an empty result, so declare them here.",
    )
    cache: CacheOption = cache_field()

    @field_validator("url")
    @classmethod
    def _supported_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme and "${" not in scheme and scheme.lower() not in _BACKENDS:
            raise ValueError(f"unsupported database '{scheme}'; {_SUPPORTED}")
        backend = _BACKENDS.get(scheme.lower())
        if backend in _DRIVER_MODULES:
            problem = missing_extra(_DRIVER_MODULES[backend], f"a {_BACKEND_NAMES[backend]} source")
            if problem:
                raise ValueError(problem)
        return value


class SqlSource:
    """Runs one query; parameter values only ever travel as driver bind values, never inside the SQL text."""

    PLUGIN_NAME: ClassVar[str] = "sql"
    Options: ClassVar[type[SourceOptions]] = SqlOptions

    def __init__(self, name: str, options: SqlOptions, context: SourceContext) -> None:
        self.name = name
        self.options = options
        self.context = context
        # The resolved password, once known, so driver messages that echo it can be cleaned.
        self._password = ""

    def describe(self) -> str:
        return f"sql {display_url(self.options.url)}"

    def known_schema(self) -> pl.Schema | None:
        """The result's column names read from the query; types only where ``schema_overrides`` declares them.

        A column of unknown type is ``pl.Null``, as in a result without rows. None when the names cannot be read
        from the text (``SELECT *`` from a table, an expression without ``AS``): ``result_columns`` says why.
        """
        import polars as pl

        # Parameters as the parser sees them (outside strings and comments), to spare validate SQLAlchemy's import.
        self._bind_values(query_parameters(self.options.query, self._dialect()) or ())
        columns = self.result_columns()
        if columns.names is None:
            return None
        names = self._as_declared(columns)
        self._check_names(list(names))
        missing = [c for c in self.options.schema_overrides if c not in names]
        if missing:
            raise self._error(
                f"schema_overrides names column '{missing[0]}', which the query does not return"
                f"{did_you_mean(missing[0], names)}; it returns: {', '.join(names)}",
                option=f"schema_overrides.{missing[0]}",
            )
        declared = column_dtypes(self.options.schema_overrides)
        return pl.Schema({name: declared.get(name, pl.Null()) for name in names})

    def unchecked_columns(self) -> UncheckedColumns | None:
        """Why the query's columns cannot be read from its text (``SELECT *`` from a table), if they cannot."""
        reason = self.result_columns().unknown_because
        return UncheckedColumns("query", reason, "asks the database") if reason else None

    def result_columns(self) -> ResultColumns:
        """The query's result columns as its text names them, read in the dialect of the URL's database."""
        return result_columns(self.options.query, self._dialect())

    def _dialect(self) -> SqlDialect | None:
        backend = _BACKENDS.get(self.options.url.split("://", 1)[0].lower())  # None for a ${secret:...} URL
        return _DIALECTS[backend] if backend else None

    def _as_declared(self, columns: ResultColumns) -> tuple[str, ...]:
        """The names, SQLite's bare table columns as the file's tables declare them (as written without the file).

        Reads the tables' declarations only, never a row.
        """
        import sqlite3

        names = list(columns.names or ())
        database = _sqlite_database(self.options.url) if columns.declared_case else None
        if database is None:
            return tuple(names)
        try:
            connection = self._sqlite_connector(database)()
        except (SourceError, sqlite3.Error):
            return tuple(names)
        with closing(connection):
            for index, tables in columns.declared_case:
                for table in tables:
                    try:
                        info = connection.execute(f"PRAGMA table_info({quote_identifier(table)})").fetchall()
                    except sqlite3.Error:
                        continue
                    declared = next((row[1] for row in info if str(row[1]).lower() == names[index].lower()), None)
                    if declared is not None:
                        names[index] = declared
                        break
        return tuple(names)

    def probe_schema(self) -> pl.Schema:
        """The result's columns and types as the database reports them, without reading a row.

        The query runs inside ``SELECT * ... WHERE 1 = 0`` with the parameters bound as ``fetch`` binds them;
        types are mapped as for an empty result (SQLite reports none) and ``schema_overrides`` applies.
        """
        query = self.options.query.strip().rstrip(";")
        # The newline ends a trailing '--' comment before the wrapper closes.
        description, _, backend = self._run(f"SELECT * FROM (\n{query}\n) AS reportctl_columns WHERE 1 = 0")
        return self._typed(self._frame([], description, backend)).schema

    def cache_identity(self) -> dict[str, Any]:
        from sqlalchemy import text

        names = list(text(self.options.query).compile().params)
        options = self.options.model_dump(mode="json", exclude={"description", "cache", "timeout"})
        return {**options, "timezone": self.context.timezone, "parameters": self._bind_values(names)}

    def fetch(self) -> pl.LazyFrame:
        description, rows, backend = self._run(self.options.query)
        return self._typed(self._frame(rows, description, backend)).lazy()

    def _run(self, query: str) -> tuple[list[Any], Sequence[Any], Backend]:
        """The cursor description and rows of ``query``, parameters bound by the driver."""
        from sqlalchemy import exc as sa_exc
        from sqlalchemy import text

        statement = text(query)
        parameters = self._bind_values(list(statement.compile().params))
        url, backend = self._url()
        if backend == "sqlite":
            parameters = {name: sqlite_value(value, self.context.timezone) for name, value in parameters.items()}
        engine = self._engine(url, backend)
        try:
            try:
                connection = engine.connect()
            except sa_exc.DBAPIError as exc:
                raise self._error(self._connect_problem(exc, url, backend), option="url") from exc
            with connection:
                try:
                    result = connection.execute(statement, parameters)
                    if not result.returns_rows:
                        raise self._error(
                            "the statement returns no result set; a source needs a SELECT", option="query"
                        )
                    # Read before fetching: an exhausted result lets go of its cursor.
                    description = list(result.cursor.description or ()) if result.cursor else []
                    rows = result.fetchall()
                except sa_exc.DBAPIError as exc:
                    raise self._error(self._query_problem(exc), option="query") from exc
                except sa_exc.SQLAlchemyError as exc:
                    raise self._error(first_line(str(exc), "unknown error"), option="query") from exc
        finally:
            engine.dispose()
        return description, rows, backend

    def _typed(self, frame: pl.DataFrame) -> pl.DataFrame:
        if not self.options.schema_overrides:
            return frame
        try:
            return apply_column_types(frame, self.options.schema_overrides)
        except ValueError as exc:
            raise self._error(str(exc), option="schema_overrides") from None

    def _error(self, cause: str, *, option: str = "") -> SourceError:
        if self._password:
            for form in {self._password, quote(self._password, safe=""), quote_plus(self._password)}:
                cause = cause.replace(form, "***")
        return SourceError(self.name, self.describe(), redact(cause), option=option)

    def _check_names(self, columns: list[str]) -> None:
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates:
            raise self._error(
                f"the query returns column {', '.join(duplicates)} more than once; name each one with AS",
                option="query",
            )

    def _bind_values(self, names: Iterable[str]) -> dict[str, Any]:
        """The values of the parameters the query names, and only those."""
        values = {}
        for name in names:
            if name not in self.context.parameters:
                known = ", ".join(sorted(self.context.parameters)) or "none"
                hint = did_you_mean(name, self.context.parameters)
                raise self._error(
                    f"query uses :{name} but the spec has no parameter {name}{hint} (known: {known})", option="query"
                )
            values[name] = self.context.parameters[name]
        return values

    def _url(self) -> tuple[URL, Backend]:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            resolved = resolve_secrets(self.options.url)
        except SecretError as exc:
            raise self._error(str(exc), option="url") from exc
        try:
            url = make_url(resolved)
        except ArgumentError as exc:
            raise self._error(
                "the url is not a valid SQLAlchemy URL, e.g. postgresql://user@host/db", option="url"
            ) from exc
        self._password = url.password or ""
        backend = _BACKENDS.get(url.drivername.lower())
        if backend is None:
            raise self._error(f"unsupported database '{url.drivername}'; {_SUPPORTED}", option="url")
        return url.set(drivername=_DRIVERS[backend]), backend

    def _engine(self, url: URL, backend: Backend) -> Engine:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        seconds = self.options.timeout.total_seconds()
        try:
            if backend == "sqlite":
                return create_engine("sqlite://", creator=self._sqlite_connector(url.database), poolclass=NullPool)
            if backend == "postgresql":
                given = url.query.get("options", ())
                options = [*([given] if isinstance(given, str) else given)]
                options.append(f"-c statement_timeout={max(1, int(seconds * 1000))}")
                # libpq refuses connect timeouts under two seconds.
                connect_args: dict[str, Any] = {
                    "connect_timeout": max(2, round(seconds)),
                    "options": " ".join(options),
                }
                url = url.difference_update_query(["options"])
            else:
                connect_args = {"connect_timeout": seconds, "read_timeout": seconds, "write_timeout": seconds}
            return create_engine(url, connect_args=connect_args, poolclass=NullPool)
        except ImportError as exc:
            raise self._error(_INSTALL_HINTS[backend], option="url") from exc

    def _sqlite_connector(self, database: str | None) -> Any:
        """A function opening the database read-only, interrupting queries that run past the timeout."""
        import sqlite3

        seconds = self.options.timeout.total_seconds()
        if not database or database == ":memory:":
            target, uri = ":memory:", False
        else:
            path = Path(database).expanduser()
            path = path if path.is_absolute() else self.context.project_root / path
            problem = confinement_problem(path, self.context)
            if problem:
                raise self._error(problem, option="url")
            if not path.is_file():
                raise self._error(f"database file not found: {database}", option="url")
            target, uri = f"file:{quote(str(path.resolve()))}?mode=ro", True
        deadline = time.monotonic() + seconds

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(target, uri=uri, timeout=seconds)
            connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            return connection

        return connect

    def _connect_problem(self, exc: Exception, url: URL, backend: Backend) -> str:
        message = _driver_message(exc)
        if backend == "sqlite":
            return f"could not open the database: {message}"
        where = f"{url.host or 'localhost'}:{url.port or _DEFAULT_PORTS[backend]}"
        lowered = message.lower()
        if "connection refused" in lowered:
            reason = "connection refused"
        elif "timed out" in lowered or "timeout expired" in lowered:
            reason = f"timed out after {_seconds(self.options.timeout)}"
        elif "name or service not known" in lowered or "failed to resolve host" in lowered:
            reason = f"unknown host {url.host}"
        else:
            reason = _PSYCOPG_CONNECT_PREFIX.sub("", message).replace("FATAL:  ", "")
            os_error = _OS_ERROR_TEXT.search(reason)
            if os_error:
                reason = os_error["text"].lower()
        return f"could not connect to {where}: {reason}"

    def _query_problem(self, exc: Exception) -> str:
        message = _driver_message(exc)
        lowered = message.lower()
        if "statement timeout" in lowered or "(timed out)" in lowered or lowered == "interrupted":
            return f"the query timed out after {_seconds(self.options.timeout)}"
        return message

    def _frame(self, rows: Sequence[Any], description: Sequence[Any], backend: Backend) -> pl.DataFrame:
        import polars as pl

        columns = [str(column[0]) for column in description]
        self._check_names(columns)
        if not rows:
            # Without rows there is nothing to infer from, so the driver's column types are the best guide.
            return pl.DataFrame(schema={c[0]: dtype_from_description(c, backend) for c in description})
        try:
            frame = pl.DataFrame([tuple(row) for row in rows], schema=columns, orient="row", infer_schema_length=None)
        except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
            raise self._error(
                f"cannot turn the result into a table: {first_line(str(exc), 'unknown error')}", option="query"
            ) from exc
        # Instants read back in the session's zone; UTC keeps them comparable across databases.
        zoned = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone not in (None, "UTC")]
        return frame.with_columns(pl.col(zoned).dt.convert_time_zone("UTC")) if zoned else frame


def display_url(url: str) -> str:
    """``url`` without its password, for messages; a ``${secret:...}`` reference is shown as written."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        shown = mask_url_passwords(url)
    return redact(shown)


def _sqlite_database(url: str) -> str | None:
    """The file of a ``sqlite:///path`` URL, as SQLAlchemy reads it; None for another database or memory."""
    scheme, _, rest = url.partition("://")
    if _BACKENDS.get(scheme.lower()) != "sqlite" or not rest.startswith("/"):
        return None
    database = unquote(rest[1:].split("?", 1)[0])
    return database if database and database != ":memory:" else None


def _driver_message(exc: Exception) -> str:
    """The database's own first line, without SQLAlchemy's statement echo and links."""
    original = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = tuple(getattr(original, "args", ()))
    # pymysql errors carry (code, message).
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        return first_line(args[1], "unknown error")
    return first_line(str(original), "unknown error")


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"
