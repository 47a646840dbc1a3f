"""Just enough SQL tokenizing to find parameters, function calls and table names; typed SQL literals.

Nothing here evaluates SQL; ``reportctl.data.expressions`` and ``reportctl.data.pipeline`` build on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<string>'(?:[^']|'')*(?:'|\Z))
    |(?P<quoted>"(?:[^"]|"")*(?:"|\Z))
    |(?P<cast>::)
    |(?P<param>:[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<symbol>.)
    """,
    re.VERBOSE | re.DOTALL,
)

# Words after which a FROM list stops; anything else right after a table name is its alias.
_CLAUSE_WORDS = frozenset(
    (
        *("where", "group", "order", "limit", "having", "join", "inner", "left", "right", "full", "outer"),
        *("cross", "natural", "on", "using", "union", "except", "intersect", "window", "qualify", "offset"),
        *("fetch", "semi", "anti", "select", "from", "as"),
    )
)


@dataclass(frozen=True)
class Token:
    """One lexical piece of SQL text; ``kind`` is the name of the pattern that matched it."""

    kind: str
    text: str
    start: int

    @property
    def significant(self) -> bool:
        return self.kind not in ("space", "comment")

    @property
    def identifier(self) -> str | None:
        """The identifier this token names (quotes removed), or None when it is not an identifier."""
        if self.kind == "name":
            return self.text
        if self.kind == "quoted" and len(self.text) >= 2 and self.text.endswith('"'):
            return self.text[1:-1].replace('""', '"')
        return None


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; strings, quoted names and comments stay whole: a ':' inside is inert."""
    tokens = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        tokens.append(Token(kind, match.group(), match.start()))
    return tokens


def next_significant(tokens: Sequence[Token], index: int) -> int | None:
    """The index of the first significant token after ``index``, or None."""
    for i in range(index + 1, len(tokens)):
        if tokens[i].significant:
            return i
    return None


def is_call(tokens: Sequence[Token], index: int) -> bool:
    """Whether the name at ``index`` is a function name, i.e. followed by '('."""
    after = next_significant(tokens, index)
    return tokens[index].kind == "name" and after is not None and tokens[after].text == "("


def closing_paren(tokens: Sequence[Token], open_index: int) -> int | None:
    """The index of the ')' matching the '(' at ``open_index``, or None when it is never closed."""
    depth = 0
    for i in range(open_index, len(tokens)):
        if tokens[i].text == "(":
            depth += 1
        elif tokens[i].text == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableReferences:
    """The tables a query reads (after FROM or JOIN at query level), and the names its WITH clause defines."""

    tables: list[str]
    ctes: set[str]


def table_references(sql: str) -> TableReferences:
    """Find the table names a query reads, so datasets can be built before the SQL that reads them.

    A heuristic, not a parser: FROM inside a function call (``extract(day FROM ts)``) is skipped; table
    functions (``read_csv(...)``) and subqueries are not names.
    """
    tokens = [t for t in tokenize(sql) if t.significant]
    tables: list[str] = []
    ctes: set[str] = set()
    query_level = [True]
    for i, token in enumerate(tokens):
        word = token.text.lower() if token.kind == "name" else ""
        if token.text == "(":
            after = tokens[i + 1].text.lower() if i + 1 < len(tokens) else ""
            query_level.append(after in ("select", "with", "values"))
        elif token.text == ")":
            if len(query_level) > 1:
                query_level.pop()
        elif word == "as" and i > 0 and i + 1 < len(tokens) and tokens[i + 1].text == "(":
            cte = tokens[i - 1].identifier
            if cte is not None:
                ctes.add(cte)
        elif word in ("from", "join") and query_level[-1]:
            tables.extend(_from_list(tokens, i + 1, single=word == "join"))
    return TableReferences(tables, ctes)


def _from_list(tokens: Sequence[Token], index: int, *, single: bool) -> list[str]:
    names = []
    while index < len(tokens):
        name = tokens[index].identifier
        following = tokens[index + 1].text if index + 1 < len(tokens) else ""
        lateral = tokens[index].kind == "name" and name is not None and name.lower() == "lateral"
        if name is None or following in ("(", ".") or lateral:
            break
        names.append(name)
        index += 1
        if single:
            break
        if index < len(tokens) and tokens[index].text.lower() == "as":
            index += 1
        alias = tokens[index].identifier if index < len(tokens) else None
        if alias is not None and not (tokens[index].kind == "name" and alias.lower() in _CLAUSE_WORDS):
            index += 1
        if index < len(tokens) and tokens[index].text == ",":
            index += 1
            continue
        break
    return names


def sql_literal(value: Any) -> str:
    """A typed SQL literal for a Python value, written only from the value's type, never from user text.

    Strings are single-quoted with quotes doubled (Polars SQL reads backslashes literally); tz-aware datetimes
    become UTC ``TIMESTAMPTZ``, naive ones ``TIMESTAMP``. Raises ValueError for values with no safe literal.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"CAST({value} AS BIGINT)"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number")
        return f"({value})"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            return f"CAST('{value.astimezone(UTC).isoformat(sep=' ')}' AS TIMESTAMPTZ)"
        return f"CAST('{value.isoformat(sep=' ')}' AS TIMESTAMP)"
    if isinstance(value, date):
        return f"CAST('{value.isoformat()}' AS DATE)"
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError("a time of day with a time zone has no SQL literal")
        return f"CAST('{value.isoformat()}' AS TIME)"
    if isinstance(value, timedelta):
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        if micros < 0:
            raise ValueError("negative durations have no Polars SQL literal")
        return f"INTERVAL '{micros} microseconds'"
    raise ValueError(f"a value of type {type(value).__name__} has no SQL literal")
