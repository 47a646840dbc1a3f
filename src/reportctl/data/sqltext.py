"""Just enough SQL tokenizing to find parameters and function calls in expressions; typed SQL literals.

Nothing here evaluates SQL; ``reportctl.data.expressions`` and ``reportctl.data.dialect`` build on it. Whole
queries are read with a real parser in ``reportctl.data.sqltree``.
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
