"""The expression dialect of specs: Polars SQL plus a few aliases, percentiles and ``:name`` parameters.

``mean`` = ``avg``; ``std`` = ``stddev`` and ``var`` = ``variance`` (sample); ``n_unique(x)`` =
``count(DISTINCT x)`` (non-null values); ``pNN(x)`` = ``quantile_cont(x, 0.NN)``: linear interpolation between
the closest ranks, numpy's default; ``pNN_nearest(x)`` = ``quantile_disc(x, 0.NN)``: the nearest rank, a value
that occurs in the data (the smallest whose cumulative share reaches 0.NN). ``p0``..``p99``, ``p999`` and
``p9999`` exist. Functions here raise
ValueError with a message for the user; ``reportctl.data.expressions`` turns it into ``ExpressionError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from reportctl.data.sqltext import Token, closing_paren, is_call, next_significant, quote_identifier, tokenize
from reportctl.errors import did_you_mean, one_of

if TYPE_CHECKING:
    import polars as pl

PARAM_PREFIX = "__param_"
AGGREGATE_FUNCTIONS = frozenset(
    (
        *("avg", "count", "first", "last", "max", "mean", "median", "min", "n_unique", "std", "stddev"),
        *("sum", "var", "variance", "quantile_cont", "quantile_disc"),
    )
)
_RENAMED = {"mean": "avg", "std": "stddev", "var": "variance", "n_unique": "count"}
_PERCENTILE = re.compile(r"p(\d{1,2}|99\d+)(_nearest)?", re.IGNORECASE)
_LOOKS_LIKE_PERCENTILE = re.compile(r"p\d+(_\w*)?", re.IGNORECASE)
_SCALAR_FUNCTIONS = [
    *("abs", "ceil", "coalesce", "concat", "date", "date_part", "date_trunc", "floor", "greatest", "ifnull"),
    *("least", "length", "ln", "log10", "lower", "ltrim", "nullif", "power", "replace", "round", "rtrim"),
    *("sqrt", "starts_with", "strftime", "strptime", "substr", "trim", "upper"),
]
_POSITION = re.compile(r" at Line: \d+, Column: \d+$")
_MISSING_COLUMN = re.compile(r'unable to find column "(.*?)"; valid columns: \[(.*)\]')


def aggregate_names() -> str:
    """The aggregate functions, for messages."""
    functions = one_of(AGGREGATE_FUNCTIONS - {"quantile_cont", "quantile_disc"})
    return functions + ", p50, p90, p95, p99 (any pNN; pNN_nearest for the nearest rank)"


def describe_polars_error(exc: BaseException) -> str:
    """One line for a Polars error: an unknown column with the columns there are, else the first line."""
    text = str(exc).strip()
    missing = _MISSING_COLUMN.search(text)
    if missing:
        name = missing.group(1)
        listed = re.findall(r'"((?:[^"\\]|\\.)*)"', missing.group(2))
        columns = [c for c in listed if not c.startswith(PARAM_PREFIX)]
        return unknown_column(name, columns)
    return text.splitlines()[0] if text else type(exc).__name__


def unknown_column(name: str, columns: Iterable[str]) -> str:
    """The message for a column that does not exist, with a suggestion and the columns that do."""
    columns = list(columns)
    listed = ", ".join(columns) if columns else "(none)"
    return f"unknown column '{name}'{did_you_mean(name, columns)}; columns are: {listed}"


def known_parameter(token: Token, params: Mapping[str, Any]) -> str:
    """The name a ``:name`` token reads; an unknown one is an error listing the parameters there are."""
    name = token.text[1:]
    if name not in params:
        known = ", ".join(f":{p}" for p in sorted(params)) or "(none)"
        hint = did_you_mean(name, params)
        raise ValueError(f"unknown parameter ':{name}'{hint}; parameters are: {known}")
    return name


def aggregate_calls(text: str) -> list[str]:
    """The aggregate functions ``text`` calls, as written."""
    tokens = tokenize(text)
    return [t.text for i, t in enumerate(tokens) if is_call(tokens, i) and is_aggregate(t.text)]


def is_aggregate(name: str) -> bool:
    """Whether ``name`` is an aggregate function of the dialect (pNN included)."""
    return name.lower() in AGGREGATE_FUNCTIONS or _PERCENTILE.fullmatch(name) is not None


def rewrite(text: str, params: Mapping[str, Any], *, aggregate_context: bool) -> tuple[str, dict[str, Any]]:
    """Rename function aliases, expand pNN, and replace ``:name`` with its reserved column.

    In an aggregate, a parameter outside any aggregate call is read as ``first(column)``: one value per group
    rather than the group's whole column.
    """
    tokens = tokenize(text)
    inserts: dict[int, str] = {}  # token index -> text put before that token
    replaced: dict[int, str] = {}
    aggregate_ends: list[int] = []
    used: dict[str, Any] = {}
    for i, token in enumerate(tokens):
        while aggregate_ends and aggregate_ends[-1] < i:
            aggregate_ends.pop()
        if token.kind == "param":
            name = known_parameter(token, params)
            column = PARAM_PREFIX + name
            used[column] = params[name]
            reference = quote_identifier(column)
            replaced[i] = reference if aggregate_ends or not aggregate_context else f"first({reference})"
        elif is_call(tokens, i):
            lower = token.text.lower()
            open_index = next_significant(tokens, i)
            assert open_index is not None
            close_index = closing_paren(tokens, open_index)
            percentile = _PERCENTILE.fullmatch(token.text)
            if percentile:
                replaced[i] = "quantile_disc" if percentile.group(2) else "quantile_cont"
                if close_index is not None:
                    inserts[close_index] = f", {_fraction(percentile.group(1))}"
            elif _LOOKS_LIKE_PERCENTILE.fullmatch(token.text):
                raise ValueError(_unknown_function(token.text, aggregate=True))
            elif lower in _RENAMED:
                replaced[i] = _RENAMED[lower]
                if lower == "n_unique":
                    inserts[open_index + 1] = "DISTINCT "
            if is_aggregate(token.text) and close_index is not None:
                aggregate_ends.append(close_index)
    parts = [inserts.get(i, "") + replaced.get(i, token.text) for i, token in enumerate(tokens)]
    parts.append(inserts.get(len(tokens), ""))
    return "".join(parts), used


PERCENTILE_METHODS = {
    "linear": "by linear interpolation between the closest ranks",
    "nearest": "the nearest rank (a value that occurs in the data)",
}


def percentile_method(expression: str) -> tuple[str, str] | None:
    """("p95", "linear") when ``expression`` is one percentile call such as ``p95(latency_ms)``, else None."""
    call = r"\s*(p(?:\d{1,2}|99\d+))(_nearest)?\s*\((?:[^()]|\([^()]*\))*\)\s*"
    match = re.fullmatch(call, expression, re.IGNORECASE)
    if match is None:
        return None
    return match.group(1).lower(), "nearest" if match.group(2) else "linear"


def _fraction(digits: str) -> str:
    return repr(int(digits) / 100) if len(digits) <= 2 else "0." + digits


def _unknown_function(name: str, *, aggregate: bool) -> str:
    if aggregate or _LOOKS_LIKE_PERCENTILE.fullmatch(name):
        return f"unknown function '{name}'; try one of {aggregate_names()}"
    candidates = [*AGGREGATE_FUNCTIONS, *_SCALAR_FUNCTIONS]
    return f"unknown function '{name}'{did_you_mean(name.lower(), candidates)}"


def parse(text: str, sql: str, *, aggregate_context: bool) -> pl.Expr:
    """``pl.sql_expr`` of the rewritten ``sql``; a failure is one line about the user's ``text``.

    Sums, means and variances are reduced in a canonical order (``reportctl.data.canonical``), so their
    floating-point results do not depend on thread scheduling; mistakes are reported on the SQL as written.
    """
    import polars as pl

    from reportctl.data.canonical import canonical_aggregates

    try:
        pl.sql_expr(sql)
        return pl.sql_expr(canonical_aggregates(sql))
    except pl.exceptions.PolarsError as exc:
        reason = describe_polars_error(exc)
    unsupported = re.fullmatch(r"unsupported function '(.*)'", reason)
    if unsupported:
        raise ValueError(_unknown_function(unsupported.group(1), aggregate=aggregate_context))
    if reason.startswith("unable to parse"):
        reason = _parser_reason(sql) or "not a valid SQL expression"
    reason = _POSITION.sub("", reason.removeprefix("sql parser error: "))
    raise ValueError(f"cannot parse '{' '.join(text.split())}': {reason}")


def _parser_reason(sql: str) -> str | None:
    """The SQL parser's own complaint, which ``pl.sql_expr`` hides; only parsed, over no columns."""
    import polars as pl

    try:
        pl.SQLContext(frames={"__expression": pl.LazyFrame()}).execute(f"SELECT (\n{sql}\n) FROM __expression")
    except pl.exceptions.PolarsError as exc:
        line = describe_polars_error(exc)
        if line.startswith("sql parser error: "):
            # The last line is ours: an error there means the expression ended too early.
            last = sql.count("\n") + 3
            return re.sub(rf"found: \S+ at Line: {last}, Column: \d+$", "found: the end of the expression", line)
    return None
