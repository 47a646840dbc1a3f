"""Spec expressions compiled to Polars, with run parameters bound as typed literals; KPIs and column formulas.

``where``, ``having``, ``derive``, ``aggregate``, column formulas and KPI values are SQL expressions in the
dialect of ``reportctl.data.dialect``. ``:name`` reads a run parameter: it becomes a reserved column
(``__param_name``) holding ``pl.lit(value)``, added before the step and dropped after it, so a value's text
never becomes part of an expression. As in SQL, over no rows ``count`` is 0 and other aggregates are null.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from reportctl.data import dialect
from reportctl.data.dialect import PARAM_PREFIX, describe_polars_error, unknown_column
from reportctl.data.sqltext import Token, closing_paren, is_call, next_significant, quote_identifier, tokenize
from reportctl.errors import ReportctlError, did_you_mean, one_of

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "CompiledExpression",
    "ExpressionError",
    "bind_sql",
    "check_formulas",
    "check_kpi",
    "compile_aggregate",
    "compile_expression",
    "describe_polars_error",
    "evaluate_kpi",
    "formula_columns",
    "types_unknown",
    "unknown_column",
    "with_parameters",
]


class ExpressionError(ReportctlError):
    """An expression cannot be compiled or evaluated; the message says what is wrong and what is valid."""


@contextmanager
def _user_errors() -> Iterator[None]:
    """The dialect reports mistakes as ValueError; callers of this module get ExpressionError."""
    try:
        yield
    except ValueError as exc:
        raise ExpressionError(str(exc)) from None


@dataclass(frozen=True)
class CompiledExpression:
    """A parsed expression and the run-parameter values it reads, as literal columns to add before it runs."""

    text: str
    expr: pl.Expr
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def input_columns(self) -> list[str]:
        """The columns of the input frame the expression reads (parameter columns excluded)."""
        names = dict.fromkeys(self.expr.meta.root_names())
        return [name for name in names if not name.startswith(PARAM_PREFIX)]


def compile_expression(text: str, params: Mapping[str, Any], *, aggregates: bool = True) -> CompiledExpression:
    """Compile a row-wise expression (where, derive, having, formula); ``aggregates=False`` forbids them."""
    with _user_errors():
        sql, used = dialect.rewrite(text, params, aggregate_context=False)
        calls = dialect.aggregate_calls(text)
        if calls and not aggregates:
            raise ValueError(
                f"'{text}' uses {', '.join(calls)}() where only columns of the aggregated rows can be used; "
                "add it to 'aggregate' and refer to it by name"
            )
        return CompiledExpression(text, dialect.parse(text, sql, aggregate_context=False), used)


def compile_aggregate(text: str, params: Mapping[str, Any]) -> CompiledExpression:
    """Compile an aggregate, one value per group: ``p95(latency_ms)``, ``sum(errors) / sum(requests)``."""
    with _user_errors():
        sql, used = dialect.rewrite(text, params, aggregate_context=True)
        if not dialect.aggregate_calls(text):
            raise ValueError(f"'{text}' is not an aggregate; wrap columns in one of {dialect.aggregate_names()}")
        return CompiledExpression(text, dialect.parse(text, sql, aggregate_context=True), used)


def with_parameters(
    frame: pl.LazyFrame,
    compiled: Iterable[CompiledExpression],
    step: Callable[[pl.LazyFrame], pl.LazyFrame],
) -> pl.LazyFrame:
    """Run ``step`` on ``frame`` with the parameter columns the expressions read, dropping them afterwards.

    A datetime parameter is cast to the type of the Datetime columns its expression reads (when they agree),
    so a tz-aware period compares with UTC, other-zone and naive columns alike; naive values count as UTC.
    """
    import polars as pl

    expressions = list(compiled)
    values: dict[str, Any] = {}
    for item in expressions:
        values.update(item.params)
    if not values:
        return step(frame)
    schema = frame.collect_schema() if any(isinstance(v, datetime) for v in values.values()) else None
    literals = []
    for column, value in values.items():
        literal = pl.lit(value)
        if schema is not None and isinstance(value, datetime):
            types = {
                schema[name]
                for item in expressions
                if column in item.params
                for name in item.input_columns
                if name in schema and isinstance(schema[name], pl.Datetime)
            }
            if len(types) == 1:
                literal = literal.cast(types.pop())
        literals.append(literal.alias(column))
    return step(frame.with_columns(literals)).drop(list(values), strict=False)


def bind_sql(sql: str, params: Mapping[str, Any], *, timestamps: Literal["naive", "utc", "zoned"] | None = None) -> str:
    """``sql`` with each ``:name`` replaced by a typed literal of the parameter's value (see ``sql_literal``).

    Polars SQL has no bind parameters; each literal is written from the value's Python type (strings
    quote-doubled, dates and datetimes cast from ISO text, finite numbers only), never from user-supplied SQL.
    ``timestamps`` matches datetimes to the tables' columns: "naive" writes UTC wall-clock TIMESTAMPs, "utc"
    writes TIMESTAMPTZ (naive values read as UTC), "zoned" writes a quoted ISO-8601 instant with its offset, which
    Polars casts to the compared column's own zone (it has no typed literal for zones other than UTC), None writes
    each value as it is.
    """
    from reportctl.data.sqltext import sql_literal

    parts = []
    for token in tokenize(sql):
        if token.kind != "param":
            parts.append(token.text)
            continue
        with _user_errors():
            name = dialect.known_parameter(token, params)
        value = params[name]
        if isinstance(value, datetime) and timestamps == "zoned":
            zoned = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            parts.append("'" + zoned.isoformat(sep=" ") + "'")
            continue
        if isinstance(value, datetime) and timestamps is not None:
            aware = value.tzinfo is not None and value.utcoffset() is not None
            instant = value.astimezone(UTC) if aware else value.replace(tzinfo=UTC)
            value = instant.replace(tzinfo=None) if timestamps == "naive" else instant
        try:
            parts.append(sql_literal(value))
        except ValueError as exc:
            raise ExpressionError(f"parameter ':{name}' cannot be used in SQL: {exc}") from None
    return "".join(parts)


@dataclass(frozen=True)
class _KpiPart:
    dataset: str
    compiled: CompiledExpression
    column: str


@dataclass(frozen=True)
class _KpiPlan:
    parts: list[_KpiPart]
    outer: CompiledExpression


def evaluate_kpi(text: str, datasets: Mapping[str, pl.DataFrame], params: Mapping[str, Any]) -> Any:
    """The value of a KPI such as ``max(by_service.p95_latency)``, ``sum(orders.amount) / count(orders)``.

    Each aggregate call reads one dataset (``count(ds)`` counts its rows); a bare ``ds.column`` outside any
    aggregate is that column's first value (meant for one-row datasets; null when empty). Arithmetic,
    parameters and scalar functions may combine them. Returns a Python value.
    """
    import polars as pl

    plan = _plan_kpi(text, list(datasets), params)
    try:
        columns = []
        for part in plan.parts:
            frame = datasets[part.dataset].lazy()
            _require_columns(part.compiled, frame.collect_schema().names(), f"dataset '{part.dataset}': ")
            value = part.compiled.expr.alias(part.column)
            columns.append(with_parameters(frame, [part.compiled], _selecting(value)))
        # One row holding each aggregate (a placeholder when the KPI has none) for the expression over them.
        row = pl.concat(pl.collect_all(columns), how="horizontal") if columns else pl.DataFrame({"__kpi": [0]})
        result = with_parameters(row.lazy(), [plan.outer], _selecting(plan.outer.expr.alias("value")))
        return result.collect().item()
    except pl.exceptions.PolarsError as exc:
        raise ExpressionError(f"cannot evaluate '{text}': {describe_polars_error(exc)}") from None


def types_unknown(schema: pl.Schema, columns: Iterable[str]) -> bool:
    """Whether a column among ``columns`` has no known type: ``Null``, as validate gives the columns of a SQL
    source that it knows by name only; a type error over such a column is not the spec's mistake."""
    import polars as pl

    return any(isinstance(schema.get(column), pl.Null) for column in columns)


def check_kpi(text: str, schemas: Mapping[str, pl.Schema | None], params: Mapping[str, Any]) -> list[str]:
    """Problems with a KPI value, without data: names always, columns and types where schemas are known."""
    import polars as pl

    try:
        plan = _plan_kpi(text, list(schemas), params)
        known = {name: schema for name, schema in schemas.items() if schema is not None}
        if all(part.dataset in known for part in plan.parts):
            for part in plan.parts:
                _require_columns(part.compiled, known[part.dataset].names(), f"dataset '{part.dataset}': ")
            if not any(types_unknown(known[p.dataset], p.compiled.input_columns) for p in plan.parts):
                evaluate_kpi(text, {name: pl.DataFrame(schema=schema) for name, schema in known.items()}, params)
    except ExpressionError as exc:
        return [str(exc)]
    return []


def formula_columns(frame: pl.DataFrame, formulas: Mapping[str, str], params: Mapping[str, Any]) -> pl.DataFrame:
    """``frame`` with a column added per formula, in order (a formula may use the columns added before it)."""
    import polars as pl

    lazy, problems = _add_formulas(frame.lazy(), formulas, params)
    if problems:
        name, message = problems[0]
        raise ExpressionError(f"formula of column '{name}': {message}")
    try:
        return lazy.collect()
    except pl.exceptions.PolarsError as exc:
        raise ExpressionError(f"cannot compute formula columns: {describe_polars_error(exc)}") from None


def check_formulas(schema: pl.Schema, formulas: Mapping[str, str], params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(column, message) for each formula that would fail over a frame of ``schema``; no data needed.

    A formula over a column of unknown type (see ``types_unknown``) is checked for its names only.
    """
    import polars as pl

    return _add_formulas(pl.LazyFrame(schema=schema), formulas, params, checking=True)[1]


def _add_formulas(
    lazy: pl.LazyFrame, formulas: Mapping[str, str], params: Mapping[str, Any], *, checking: bool = False
) -> tuple[pl.LazyFrame, list[tuple[str, str]]]:
    import polars as pl

    problems = []
    for name, formula in formulas.items():
        compiled = None
        try:
            compiled = compile_expression(formula, params)
            _require_columns(compiled, lazy.collect_schema().names())
            added = with_parameters(lazy, [compiled], _adding(compiled.expr.alias(name)))
            added.collect_schema()
            lazy = added
        except ExpressionError as exc:
            problems.append((name, str(exc)))
        except pl.exceptions.PolarsError as exc:
            if checking and compiled and types_unknown(lazy.collect_schema(), compiled.input_columns):
                lazy = lazy.with_columns(pl.lit(None).alias(name))
            else:
                problems.append((name, describe_polars_error(exc)))
    return lazy, problems


def _selecting(expr: pl.Expr) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
    return lambda frame: frame.select(expr)


def _adding(expr: pl.Expr) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
    return lambda frame: frame.with_columns(expr)


def _require_columns(compiled: CompiledExpression, columns: list[str], prefix: str = "") -> None:
    for name in compiled.input_columns:
        if name not in columns:
            raise ExpressionError(prefix + unknown_column(name, columns))


def _plan_kpi(text: str, datasets: list[str], params: Mapping[str, Any]) -> _KpiPlan:
    """Split a KPI into per-dataset aggregates (each a column of one row) and the expression over them."""
    tokens = tokenize(text)
    parts: list[_KpiPart] = []
    outer: list[str] = []
    i = 0
    while i < len(tokens):
        if is_call(tokens, i) and dialect.is_aggregate(tokens[i].text):
            open_index = next_significant(tokens, i)
            assert open_index is not None
            end = closing_paren(tokens, open_index)
            if end is None:
                raise ExpressionError(f"cannot parse '{text}': '(' is never closed")
            dataset, call = _unqualify(tokens[i : end + 1], datasets)
        elif (reference := _qualified(tokens, i)) is not None:
            dataset, column = reference
            _known_dataset(dataset, datasets)
            call, end = f"first({quote_identifier(column)})", i + 2
        else:
            if tokens[i].identifier in datasets and not is_call(tokens, i):
                name = tokens[i].identifier
                raise ExpressionError(f"'{name}' is a dataset; use count({name}) or e.g. max({name}.<col>)")
            outer.append(tokens[i].text)
            i += 1
            continue
        column = f"__kpi_{len(parts)}"
        parts.append(_KpiPart(dataset, compile_aggregate(call, params), column))
        outer.append(quote_identifier(column))
        i = end + 1
    return _KpiPlan(parts, compile_expression("".join(outer), params))


def _qualified(tokens: list[Token], i: int) -> tuple[str, str] | None:
    if i + 2 < len(tokens) and tokens[i + 1].text == ".":
        dataset, column = tokens[i].identifier, tokens[i + 2].identifier
        if dataset is not None and column is not None:
            return dataset, column
    return None


def _known_dataset(name: str, datasets: list[str]) -> None:
    if name not in datasets:
        listed = one_of(datasets) or "(none)"
        hint = did_you_mean(name, datasets)
        raise ExpressionError(f"unknown dataset '{name}'{hint}; datasets are: {listed}")


def _unqualify(call: list[Token], datasets: list[str]) -> tuple[str, str]:
    """The dataset an aggregate call reads, and the call with ``ds.column`` written as plain columns."""
    text = "".join(t.text for t in call)
    significant = [t for t in call if t.significant]
    if len(significant) == 4 and significant[2].identifier in datasets:
        name = significant[2].identifier
        assert name is not None
        if call[0].text.lower() != "count":
            raise ExpressionError(f"'{text}' needs a column: {call[0].text}({name}.<column>)")
        return name, "count(*)"
    found: list[str] = []
    parts: list[str] = []
    i = 0
    while i < len(call):
        reference = _qualified(call, i)
        if reference is None:
            parts.append(call[i].text)
            i += 1
            continue
        _known_dataset(reference[0], datasets)
        found.append(reference[0])
        parts.append(quote_identifier(reference[1]))
        i += 3
    names = sorted(set(found))
    if not names:
        raise ExpressionError(f"'{text}' names no dataset; write e.g. count(orders) or max(orders.amount)")
    if len(names) > 1:
        raise ExpressionError(
            f"'{text}' reads several datasets ({', '.join(names)}); aggregate each on its own, e.g. sum(a.x) / sum(b.y)"
        )
    return names[0], "".join(parts)
