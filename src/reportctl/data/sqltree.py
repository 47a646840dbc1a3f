"""SQL read as a syntax tree (sqlglot): the columns a query returns, the tables it reads.

A source's query is parsed in its database's dialect; ``:name`` parameters parse as placeholders. The result's
column names come from the outermost SELECT (the first branch of a UNION), through CTEs and subqueries where a
``*`` reads them. A ``*`` over a database table, or an expression without ``AS``, cannot be named without asking
the database: the columns are then unknown, with the reason.

A ``sql:`` dataset runs on Polars SQL, which follows PostgreSQL's syntax; its tables (the sources and datasets
it reads) are read in that dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sqlglot import exp

SqlDialect = Literal["sqlite", "postgres", "mysql"]


@dataclass(frozen=True)
class _Parsed:
    """The statements of a text, or (empty statements) why it could not be parsed."""

    statements: tuple[exp.Expression, ...]
    problem: str = ""


@lru_cache(maxsize=256)
def _parse(sql: str, dialect: SqlDialect | None) -> _Parsed:
    """``sql`` parsed once per text and dialect: validate reads a query for its columns, parameters and note."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, SqlglotError

    try:
        return _Parsed(tuple(s for s in sqlglot.parse(sql, read=dialect) if isinstance(s, exp.Expression)))
    except ParseError as exc:
        error = exc.errors[0] if exc.errors else {}
        near = f" near '{error['highlight']}' (line {error['line']}, column {error['col']})" if error else ""
        return _Parsed((), f"could not be parsed{near}")
    except SqlglotError:
        return _Parsed((), "could not be parsed")


@dataclass(frozen=True)
class ResultColumns:
    """The column names a query returns, in order; ``names`` is None when they cannot be known from the text.

    ``declared_case`` lists (index, tables) for SQLite's bare table columns: SQLite names such a column as its
    table declares it (``SELECT id`` from a table declaring ``ID`` gives ``ID``), which only the file knows.
    """

    names: tuple[str, ...] | None
    unknown_because: str = ""
    declared_case: tuple[tuple[int, tuple[str, ...]], ...] = ()


class _Unresolved(Exception):
    """A projection cannot be named statically; the message says why, in the user's words."""


def result_columns(query: str, dialect: SqlDialect | None) -> ResultColumns:
    """The columns ``query`` returns, read in ``dialect`` (None: a generic dialect, e.g. for a secret URL)."""
    from sqlglot import exp

    parsed = _parse(query, dialect)
    if parsed.problem:
        return ResultColumns(None, f"the query {parsed.problem}")
    statements = parsed.statements
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        return ResultColumns(None, "the query is not a single SELECT")
    declared: list[tuple[int, tuple[str, ...]]] = []
    try:
        names = _query_columns(statements[0], {}, dialect, declared if dialect == "sqlite" else None)
        return ResultColumns(tuple(names), declared_case=tuple(declared))
    except _Unresolved as exc:
        return ResultColumns(None, str(exc))


@dataclass(frozen=True)
class TableReferences:
    """The tables a query reads, in the order the text names them, and the names its WITH clauses define.

    ``unreadable`` says why the query could not be parsed; the tables are then unknown (empty).
    """

    tables: tuple[str, ...]
    ctes: frozenset[str]
    unreadable: str = ""


def table_references(sql: str) -> TableReferences:
    """The table names a ``sql:`` dataset reads, so the datasets it reads are built before it.

    Table functions (``read_csv(...)``), subqueries and schema-qualified names are not tables of the report.
    """
    from sqlglot import exp

    parsed = _parse(sql, "postgres")
    if parsed.problem:
        return TableReferences((), frozenset(), f"the SQL {parsed.problem}")
    statements = parsed.statements
    tables = [
        table.this
        for statement in statements
        for table in statement.find_all(exp.Table)
        if isinstance(table.this, exp.Identifier) and not table.args.get("db")
    ]
    tables.sort(key=lambda identifier: int(identifier.meta.get("start", 0)))
    ctes = frozenset(cte.alias for statement in statements for cte in statement.find_all(exp.CTE))
    return TableReferences(tuple(identifier.name for identifier in tables), ctes)


def query_parameters(query: str, dialect: SqlDialect | None) -> tuple[str, ...] | None:
    """The ``:name`` parameters of ``query`` in the order of the text; None when it cannot be parsed."""
    from sqlglot import exp

    parsed = _parse(query, dialect)
    if parsed.problem:
        return None
    names = {p.name for s in parsed.statements for p in s.find_all(exp.Placeholder) if p.this is not None}
    return tuple(sorted(names, key=lambda name: query.find(f":{name}")))


def _query_columns(
    query: exp.Expression | exp.Query,
    ctes: Mapping[str, list[str]],
    dialect: SqlDialect | None,
    declared_case: list[tuple[int, tuple[str, ...]]] | None = None,
) -> list[str]:
    """The output names of a SELECT, UNION or parenthesised query; ``ctes`` are the WITH names in scope.

    ``declared_case`` collects the outermost bare columns of tables (see ``ResultColumns``), when given.
    """
    from sqlglot import exp

    scope = dict(ctes)
    for cte in query.ctes if isinstance(query, exp.Query) else []:
        declared = [_name(column, dialect) for column in cte.args["alias"].columns]
        scope[cte.alias] = declared or _query_columns(cte.this, scope, dialect)
    if isinstance(query, exp.Union | exp.Intersect | exp.Except):
        # a UNION's columns are named by its first branch
        return _query_columns(query.left, scope, dialect, declared_case)
    if isinstance(query, exp.Subquery):
        return _query_columns(query.this, scope, dialect, declared_case)
    if not isinstance(query, exp.Select):
        raise _Unresolved(f"the query is a {query.key.upper()}, not a SELECT")
    names: list[str] = []
    for position, projection in enumerate(query.expressions, start=1):
        if isinstance(projection, exp.Star) or (isinstance(projection, exp.Column) and projection.is_star):
            names.extend(_star_columns(query, projection, scope, dialect))
        elif isinstance(projection, exp.Alias | exp.Column):
            tables = _tables_of(query, projection.table, scope) if isinstance(projection, exp.Column) else ()
            if declared_case is not None and tables:
                declared_case.append((len(names), tables))
            names.append(_output_name(projection, dialect))
        else:  # the database would name it after its text (SQLite, MySQL) or '?column?' (PostgreSQL)
            shown = projection.sql(dialect)
            shown = shown if len(shown) <= 40 else f"{shown[:37]}..."
            raise _Unresolved(f"result column {position} ({shown}) has no name; name it with AS")
    return names


def _star_columns(
    select: exp.Select, star: exp.Expression, ctes: Mapping[str, list[str]], dialect: SqlDialect | None
) -> list[str]:
    """The columns ``*`` or ``t.*`` stands for, when every table it covers is a CTE or a subquery."""
    from sqlglot import exp

    qualifier = star.table if isinstance(star, exp.Column) else ""
    columns: list[str] = []
    for source in _sources(select):
        alias = source.alias_or_name
        if qualifier and _folded(alias) != _folded(qualifier):
            continue
        if isinstance(source, exp.Subquery):
            columns.extend(_query_columns(source.this, ctes, dialect))
        elif isinstance(source, exp.Table) and not source.args.get("db") and _cte(source.name, ctes):
            columns.extend(_cte(source.name, ctes) or [])
        else:
            shown = f"{qualifier}.*" if qualifier else "*"
            raise _Unresolved(
                f"the query selects {shown} from {source.sql(dialect)}, whose columns only the database knows"
            )
    return columns


def _tables_of(select: exp.Select, qualifier: str, ctes: Mapping[str, list[str]]) -> tuple[str, ...]:
    """The database tables (not CTEs or subqueries) a column qualified by ``qualifier`` ('' for none) may be of."""
    from sqlglot import exp

    tables = []
    for source in _sources(select):
        if qualifier and _folded(source.alias_or_name) != _folded(qualifier):
            continue
        is_table = isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier)
        if is_table and not _cte(source.name, ctes):
            tables.append(source.name)
    return tuple(tables)


def _sources(select: exp.Select) -> list[exp.Expression]:
    """What a SELECT reads: its FROM and its JOINs."""
    from sqlglot import exp

    sources: list[exp.Expression] = []
    from_ = select.args.get("from_", select.args.get("from"))  # renamed in sqlglot 26
    if isinstance(from_, exp.From):
        sources.append(from_.this)
    sources.extend(join.this for join in select.args.get("joins") or [])
    return sources


def _cte(name: str, ctes: Mapping[str, list[str]]) -> list[str] | None:
    wanted = _folded(name)
    return next((columns for cte, columns in ctes.items() if _folded(cte) == wanted), None)


def _output_name(projection: exp.Alias | exp.Column, dialect: SqlDialect | None) -> str:
    """The name the database gives an aliased or bare column: PostgreSQL folds unquoted names to lower case."""
    from sqlglot import exp

    identifier = projection.args.get("alias") if isinstance(projection, exp.Alias) else projection.this
    return _name(identifier, dialect) if isinstance(identifier, exp.Identifier) else projection.output_name


def _name(identifier: exp.Expression, dialect: SqlDialect | None) -> str:
    """A result column's name: PostgreSQL folds unquoted names to lower case, SQLite and MySQL do not."""
    from sqlglot import exp

    name = identifier.name
    if not isinstance(identifier, exp.Identifier) or identifier.quoted or name == name.lower():
        return name
    if dialect is None:
        raise _Unresolved(
            f"whether '{name}' comes back as '{name.lower()}' depends on the database, which the URL's secret "
            "hides; write it in lower case or quote it"
        )
    return name.lower() if dialect == "postgres" else name


def _folded(name: str) -> str:
    """A table name as compared with another: unquoted names are case-insensitive in every dialect here."""
    return name.lower()
