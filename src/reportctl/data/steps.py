"""The steps of one dataset as a lazy Polars plan; checking resolves each step so a failure names its field.

Steps run in the order of the spec: from (or sql), join, where, derive, every/group_by/aggregate, having,
sort, limit, select. ``reportctl.data.pipeline`` calls these once per dataset, in dependency order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

from reportctl.data.canonical import canonical_aggregates, orders_its_rows
from reportctl.data.expressions import (
    CompiledExpression,
    ExpressionError,
    bind_sql,
    compile_aggregate,
    compile_expression,
    describe_polars_error,
    types_unknown,
    unknown_column,
    with_parameters,
)
from reportctl.data.sqltree import table_references
from reportctl.errors import DatasetError
from reportctl.spec.models import Dataset, Join

if TYPE_CHECKING:
    import polars as pl

Problem = tuple[str, str]
T = TypeVar("T")


class _Stop(Exception):
    """Ends checking a dataset after a failed step; its problems are already recorded."""


class _TypeUnknown(Exception):
    """A step failed over a type that validate does not know (see ``types_unknown``): not the spec's mistake."""


@dataclass
class _Compiled:
    where: CompiledExpression | None = None
    derive: dict[str, CompiledExpression] = field(default_factory=dict)
    aggregate: dict[str, CompiledExpression] = field(default_factory=dict)
    having: CompiledExpression | None = None
    sql: str | None = None


def build_dataset(
    name: str, dataset: Dataset, frames: Mapping[str, pl.LazyFrame], params: Mapping[str, Any]
) -> pl.LazyFrame:
    """The lazy plan of one dataset over ``frames`` (sources and datasets by name); raises DatasetError."""
    return _DatasetSteps(name, dataset, frames, params, checking=False).run()


def check_dataset(
    name: str, dataset: Dataset, frames: Mapping[str, pl.LazyFrame] | None, params: Mapping[str, Any]
) -> tuple[pl.Schema | None, list[Problem]]:
    """The schema one dataset would have and its problems, over (empty) frames of its inputs.

    With ``frames=None`` (an input's columns cannot be known) only expressions and parameters are checked.
    """
    steps = _DatasetSteps(name, dataset, frames or {}, params, checking=True)
    try:
        steps.compile()
        if frames is None:
            return None, steps.problems
        return steps.run().collect_schema(), steps.problems
    except _Stop:
        return None, steps.problems


class _DatasetSteps:
    """One dataset's plan being built; ``checking`` resolves it after every step and records problems."""

    def __init__(
        self,
        name: str,
        dataset: Dataset,
        frames: Mapping[str, pl.LazyFrame],
        params: Mapping[str, Any],
        *,
        checking: bool,
    ) -> None:
        self.name = name
        self.dataset = dataset
        self.frames = frames
        self.params = params
        self.checking = checking
        self.problems: list[Problem] = []
        self._compiled: _Compiled | None = None

    def report(self, where: str, message: str) -> None:
        """Building: raise DatasetError. Checking: record the problem at its field path and go on."""
        if not self.checking:
            raise DatasetError(self.name, f"{where}: {message}")
        self.problems.append((f"datasets.{self.name}.{where}", message))

    def fail(self, where: str, message: str) -> NoReturn:
        """Report, then stop planning this dataset."""
        self.report(where, message)
        raise _Stop

    @contextmanager
    def step(self, where: str, *, types_unknown: bool = False) -> Iterator[None]:
        """Attribute Polars and expression errors raised while planning to the field ``where``.

        With ``types_unknown`` (see ``passes_types``) a Polars error other than a missing column raises
        ``_TypeUnknown`` for the caller to plan the step's columns without their types.
        """
        import polars as pl

        try:
            yield
        except ExpressionError as exc:
            self.fail(where, str(exc))
        except pl.exceptions.ColumnNotFoundError as exc:
            self.fail(where, describe_polars_error(exc))
        except pl.exceptions.PolarsError as exc:
            if types_unknown:
                raise _TypeUnknown from None
            self.fail(where, describe_polars_error(exc))

    def resolve(self, frame: pl.LazyFrame, where: str, *, types_unknown: bool = False) -> None:
        """In check mode, resolve the plan so far; a failure is a problem of ``where``."""
        if self.checking:
            with self.step(where, types_unknown=types_unknown):
                frame.collect_schema()

    def passes_types(self, frame: pl.LazyFrame, columns: list[str]) -> bool:
        """In check mode, whether a column among ``columns`` has no known type, so a type error is passed over."""
        return self.checking and types_unknown(self.schema(frame, ""), columns)

    def schema(self, frame: pl.LazyFrame, where: str) -> pl.Schema:
        """The schema of the plan so far, in both modes; a failure is a problem of ``where``."""
        with self.step(where):
            return frame.collect_schema()

    def require(self, frame: pl.LazyFrame, columns: list[tuple[str, str]]) -> None:
        """In check mode, every (field, column) must name a column of ``frame``."""
        if not self.checking or not columns:
            return
        names = self.schema(frame, columns[0][0]).names()
        missing = [(where, c) for where, c in columns if c not in names]
        for where, column in missing:
            self.report(where, unknown_column(column, names))
        if missing:
            raise _Stop

    def compile(self) -> _Compiled:
        """Compile every expression up front, so all their mistakes are reported at once."""
        if self._compiled is not None:
            return self._compiled
        ds, params = self.dataset, self.params
        compiled = _Compiled()
        if ds.where is not None:
            compiled.where = self._compile("where", _compiler(compile_expression, ds.where, params))
        for name, text in ds.derive.items():
            derived = self._compile(f"derive.{name}", _compiler(compile_expression, text, params))
            if derived is not None:
                compiled.derive[name] = derived
        for name, text in ds.aggregate.items():
            aggregate = self._compile(f"aggregate.{name}", _compiler(compile_aggregate, text, params))
            if aggregate is not None:
                compiled.aggregate[name] = aggregate
        if ds.having is not None:
            having = ds.having
            compiled.having = self._compile("having", lambda: compile_expression(having, params, aggregates=False))
        if ds.sql is not None:
            sql = ds.sql
            compiled.sql = self._compile("sql", lambda: bind_sql(sql, params))
        for i, key in enumerate(ds.sort):
            if not key.removeprefix("-").strip():
                self.report(f"sort[{i}]", f"'{key}' names no column; write 'column' or '-column' (descending)")
        if self.problems:
            raise _Stop
        self._compiled = compiled
        return compiled

    def _compile(self, where: str, compile: Callable[[], T]) -> T | None:
        try:
            return compile()
        except ExpressionError as exc:
            self.report(where, str(exc))
            return None

    def run(self) -> pl.LazyFrame:
        compiled = self.compile()
        ds = self.dataset
        if compiled.sql is not None:
            frame = self._sql(compiled.sql)
        else:
            frame = self.frames[ds.from_ or ""]
            self.resolve(frame, "from")
            for i, join in enumerate(ds.join):
                frame = self._join(frame, i, join)
            if compiled.where is not None:
                frame = self._filter(frame, compiled.where, "where")
            for name, derived in compiled.derive.items():
                frame = self._derive(frame, name, derived)
            frame = self._aggregate(frame, compiled.aggregate)
            if compiled.having is not None:
                frame = self._filter(frame, compiled.having, "having")
        frame = self._sort(frame)
        if ds.limit is not None:
            frame = frame.head(ds.limit)
        if ds.select is not None:
            self.require(frame, [(f"select[{i}]", c) for i, c in enumerate(ds.select)])
            frame = frame.select(ds.select)
            self.resolve(frame, "select")
        return frame

    def _sql(self, sql: str) -> pl.LazyFrame:
        """Run the dataset's SQL over every source and dataset so far; datetimes typed like the tables'."""
        import polars as pl

        text = self.dataset.sql or ""
        tables = [t for t in table_references(text).tables if t in self.frames]
        zones = {
            dtype.time_zone
            for table in tables
            for dtype in self.schema(self.frames[table], "sql").values()
            if isinstance(dtype, pl.Datetime)
        }
        untyped = self.checking and any(
            types_unknown(schema, schema.names()) for schema in (self.schema(self.frames[t], "sql") for t in tables)
        )
        try:
            return self._sql_frame(text, zones, untyped)
        except _TypeUnknown:
            raise _Stop from None  # the columns of a query over columns of unknown type stay unknown

    def _sql_frame(self, text: str, zones: set[str | None], untyped: bool) -> pl.LazyFrame:
        import polars as pl

        with self.step("sql", types_unknown=untyped):
            if zones == {None}:
                sql = bind_sql(text, self.params, timestamps="naive")
            elif zones == {"UTC"}:
                sql = bind_sql(text, self.params, timestamps="utc")
            elif len(zones) == 1:
                sql = bind_sql(text, self.params, timestamps="zoned")
            else:
                sql = bind_sql(text, self.params)
            # sums and means over each group's values sorted, so results depend neither on threads nor on the
            # order in which a GROUP BY or join inside the query hands on its rows
            canonical = canonical_aggregates(sql, by_value=True)
            frame = pl.SQLContext(frames=dict(self.frames), eager=False).execute(canonical, eager=False)
        self.resolve(frame, "sql", types_unknown=untyped)
        if self.checking or orders_its_rows(text):
            return frame  # the order of rows changes no column
        # Without ORDER BY, a GROUP BY, join or DISTINCT gives its rows in a different order from run to run:
        # ordered by every column they are the same rows in the same order each time.
        schema = self.schema(frame, "sql")
        names = [name for name, dtype in schema.items() if not isinstance(dtype, pl.List | pl.Array | pl.Struct)]
        return frame.sort(names, nulls_last=True, maintain_order=True) if names else frame

    def _join(self, frame: pl.LazyFrame, index: int, join: Join) -> pl.LazyFrame:
        where = f"join[{index}]"
        other = self.frames[join.dataset]
        left_keys = join.on or join.left_on or []
        left_field = "on" if join.on else "left_on"
        self.require(frame, [(f"{where}.{left_field}", c) for c in left_keys])
        right_keys = join.on or join.right_on or []
        right_field = "on" if join.on else "right_on"
        self.require(other, [(f"{where}.{right_field}", c) for c in right_keys])
        if self.checking:  # a key of unknown type takes the other side's type
            frame, other = _keys_typed(frame, left_keys, other, right_keys)
        order: Literal["left", "right", "left_right"] = (
            "right" if join.how == "right" else "left_right" if join.how == "full" else "left"
        )
        with self.step(where):
            if join.how == "cross":
                frame = frame.join(other, how="cross", suffix=join.suffix, maintain_order="left")
            else:
                frame = frame.join(
                    other,
                    on=join.on,
                    left_on=join.left_on,
                    right_on=join.right_on,
                    how=join.how,
                    suffix=join.suffix,
                    coalesce=True if join.how == "full" else None,
                    maintain_order=order,
                )
        self.resolve(frame, where)
        return frame

    def _filter(self, frame: pl.LazyFrame, condition: CompiledExpression, where: str) -> pl.LazyFrame:
        self.require(frame, [(where, c) for c in condition.input_columns])
        untyped = self.passes_types(frame, condition.input_columns)
        try:
            with self.step(where, types_unknown=untyped):
                filtered = with_parameters(frame, [condition], lambda f: f.filter(condition.expr))
            self.resolve(filtered, where, types_unknown=untyped)
        except _TypeUnknown:
            return frame  # a filter keeps the columns
        return filtered

    def _derive(self, frame: pl.LazyFrame, name: str, derived: CompiledExpression) -> pl.LazyFrame:
        import polars as pl

        where = f"derive.{name}"
        self.require(frame, [(where, c) for c in derived.input_columns])
        untyped = self.passes_types(frame, derived.input_columns)
        try:
            with self.step(where, types_unknown=untyped):
                added = with_parameters(frame, [derived], lambda f: f.with_columns(derived.expr.alias(name)))
            self.resolve(added, where, types_unknown=untyped)
        except _TypeUnknown:
            return frame.with_columns(pl.lit(None).alias(name))
        return added

    def _aggregate(self, frame: pl.LazyFrame, aggregates: dict[str, CompiledExpression]) -> pl.LazyFrame:
        """Bucket, group and aggregate; rows come ordered by the group keys, then by 'sort' if given.

        ``group_by`` without ``aggregate`` gives the distinct key combinations, as SQL's GROUP BY does.
        """
        ds = self.dataset
        keys = list(ds.group_by)
        self.require(frame, [(f"group_by[{i}]", key) for i, key in enumerate(keys)])
        if ds.every is not None:
            on, frame = self._bucket(frame, ds.every)
            keys = [on, *(key for key in keys if key != on)]
        if not keys and not aggregates:
            return frame
        if self.checking:
            self._check_aggregates(frame, keys, aggregates)
        where = "aggregate" if aggregates else "group_by"
        untyped = self.passes_types(frame, [c for item in aggregates.values() for c in item.input_columns])
        try:
            with self.step(where, types_unknown=untyped):
                if aggregates:
                    exprs = [item.expr.alias(name) for name, item in aggregates.items()]
                    grouped = with_parameters(frame, aggregates.values(), _aggregating(keys, exprs))
                else:
                    grouped = frame.select(keys).unique()
                if keys:
                    # Groups come out in no fixed order: ordered by their keys, 'sort' (which keeps ties in the
                    # order it finds them) gives the same rows in the same order every run.
                    grouped = grouped.sort(keys, nulls_last=True)
            self.resolve(grouped, where, types_unknown=untyped)
        except _TypeUnknown:
            import polars as pl

            return _aggregating(keys, [pl.lit(None).alias(name) for name in aggregates])(frame)
        return grouped

    def _check_aggregates(
        self, frame: pl.LazyFrame, keys: list[str], aggregates: dict[str, CompiledExpression]
    ) -> None:
        """Resolve each aggregate on its own, so a bad one is reported at its own field."""
        import polars as pl

        schema = self.schema(frame, "aggregate")
        failed = False
        for name, item in aggregates.items():
            where = f"aggregate.{name}"
            missing = [c for c in item.input_columns if c not in schema]
            try:
                if missing:
                    raise ExpressionError(unknown_column(missing[0], schema.names()))
                step = _aggregating(keys, [item.expr.alias(name)])
                dtype = with_parameters(frame, [item], step).collect_schema()[name]
                reads_lists = any(isinstance(schema[c], pl.List) for c in item.input_columns)
                if isinstance(dtype, pl.List) and not reads_lists:
                    raise ExpressionError(
                        f"'{item.text}' gives a list per group, not one value; "
                        "every column must be inside an aggregate function, e.g. max(x) + min(x)"
                    )
            except ExpressionError as exc:
                self.report(where, str(exc))
                failed = True
            except pl.exceptions.PolarsError as exc:
                if isinstance(exc, pl.exceptions.ColumnNotFoundError) or not types_unknown(schema, item.input_columns):
                    self.report(where, describe_polars_error(exc))
                    failed = True
        if failed:
            raise _Stop

    def _bucket(self, frame: pl.LazyFrame, every: timedelta) -> tuple[str, pl.LazyFrame]:
        """Truncate the time column to ``every``: 'on', else the first Date/Datetime column, else 'timestamp'.

        The bucket keeps the column's name; empty buckets are absent, as with any group_by.
        """
        import polars as pl

        where = "on" if self.dataset.on else "every"
        schema = self.schema(frame, where)
        # Checking, a column of unknown type (see types_unknown) may be a time column.
        kinds = (pl.Date, pl.Datetime, pl.Null) if self.checking else (pl.Date, pl.Datetime)
        temporal = [name for name, dtype in schema.items() if isinstance(dtype, kinds)]
        if self.dataset.on is None and temporal and isinstance(schema[temporal[0]], pl.Null):
            raise _Stop  # the first time column may be one of unknown type (see types_unknown): columns unknown
        on = self.dataset.on or next(iter(temporal), "timestamp")
        if on not in schema:
            if self.dataset.on is None:
                columns = ", ".join(schema.names())
                self.fail(where, f"no Date or Datetime column to bucket; name one with 'on'; columns are: {columns}")
            self.fail(where, unknown_column(on, schema.names()))
        if on not in temporal:
            self.fail(where, f"column '{on}' is {schema[on]}, not a Date or Datetime; 'every' buckets time")
        with self.step(where):
            frame = frame.with_columns(pl.col(on).dt.truncate(polars_duration(every)))
        self.resolve(frame, where)
        return on, frame

    def _sort(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """Sort by 'sort' keys ('-name' descending), nulls last, ties kept in their order."""
        keys = self.dataset.sort
        if not keys:
            return frame
        names = [key.removeprefix("-").strip() for key in keys]
        self.require(frame, [(f"sort[{i}]", name) for i, name in enumerate(names)])
        descending = [key.startswith("-") for key in keys]
        frame = frame.sort(names, descending=descending, nulls_last=True, maintain_order=True)
        self.resolve(frame, "sort")
        return frame


def _keys_typed(
    left: pl.LazyFrame, left_keys: list[str], right: pl.LazyFrame, right_keys: list[str]
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Both sides of a join, a key of unknown type (see ``types_unknown``) cast to the other side's key type."""
    import polars as pl

    left_schema, right_schema = left.collect_schema(), right.collect_schema()
    for left_key, right_key in zip(left_keys, right_keys, strict=False):
        left_type, right_type = left_schema[left_key], right_schema[right_key]
        if isinstance(left_type, pl.Null) and not isinstance(right_type, pl.Null):
            left = left.with_columns(pl.col(left_key).cast(right_type))
        elif isinstance(right_type, pl.Null) and not isinstance(left_type, pl.Null):
            right = right.with_columns(pl.col(right_key).cast(left_type))
    return left, right


def polars_duration(every: timedelta) -> str:
    """A Polars duration: whole weeks as 'Nw' (buckets start on Monday), whole days 'Nd', else (micro)seconds.

    Polars cannot truncate by a mix of days and sub-daily units, so 1d1h becomes 90000s.
    """
    micros = (every.days * 86_400 + every.seconds) * 1_000_000 + every.microseconds
    if micros % (86_400 * 1_000_000) == 0:
        days = micros // (86_400 * 1_000_000)
        return f"{days // 7}w" if days % 7 == 0 else f"{days}d"
    return f"{micros // 1_000_000}s" if micros % 1_000_000 == 0 else f"{micros}us"


def _aggregating(keys: list[str], exprs: list[pl.Expr]) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
    if keys:
        return lambda frame: frame.group_by(keys).agg(exprs)
    return lambda frame: frame.select(exprs)


def _compiler(compile: Callable[[str, Mapping[str, Any]], T], text: str, params: Mapping[str, Any]) -> Callable[[], T]:
    return lambda: compile(text, params)
