"""What a source plugin is, and what it is given to do its work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BeforeValidator, Field

from reportctl.spec.models import SourceOptions
from reportctl.spec.types import PositiveDuration, StrictModel

if TYPE_CHECKING:
    import polars as pl


ColumnType = Literal["int", "float", "str", "bool", "date", "datetime"]
"""The column types a source's ``schema_overrides`` may name."""


def column_dtypes(overrides: Mapping[str, ColumnType]) -> dict[str, pl.DataType]:
    """``schema_overrides`` as polars types."""
    import polars as pl

    types: dict[str, pl.DataType] = {
        "int": pl.Int64(),
        "float": pl.Float64(),
        "str": pl.String(),
        "bool": pl.Boolean(),
        "date": pl.Date(),
        "datetime": pl.Datetime("us"),
    }
    return {column: types[name] for column, name in overrides.items()}


def apply_column_types(frame: pl.DataFrame, overrides: Mapping[str, ColumnType]) -> pl.DataFrame:
    """``frame`` with the overridden columns converted; text is parsed as ISO dates and datetimes.

    Raises ValueError naming the column and the first value that does not convert.
    """
    import polars as pl

    missing = [c for c in overrides if c not in frame.columns]
    if missing:
        raise ValueError(f"schema_overrides names column '{missing[0]}', which the result does not have")

    def convert(column: str, dtype: pl.DataType, strict: bool) -> pl.Expr:
        expression = pl.col(column)
        if frame.schema[column] == pl.String() and dtype == pl.Date():
            return expression.str.to_date(strict=strict)
        if frame.schema[column] == pl.String() and dtype == pl.Datetime("us"):
            return expression.str.to_datetime(time_unit="us", strict=strict)
        return expression.cast(dtype, strict=strict)

    converted = frame
    for column, dtype in column_dtypes(overrides).items():
        try:
            converted = converted.with_columns(convert(column, dtype, strict=True))
        except pl.exceptions.PolarsError:
            lenient = frame.select(convert(column, dtype, strict=False).is_null() & pl.col(column).is_not_null())
            bad = frame[column].filter(lenient.to_series())
            shown = repr(bad[0]) if len(bad) else "a value"
            raise ValueError(
                f"schema_overrides: column '{column}' has {shown}, which is not a {overrides[column]}"
            ) from None
    return converted


@dataclass(frozen=True)
class SourceContext:
    """Everything a source may depend on besides its own options.

    ``parameters`` holds the bind values of this run by name (a period parameter ``p`` contributes ``p_start``
    and ``p_end``, and when it is the spec's only period also ``start`` and ``end``).
    """

    project_root: Path
    run_time: datetime
    timezone: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    allowed_paths: tuple[Path, ...] = ()


class Source(Protocol):
    """A plugin that reads one table. Register it under the entry-point group ``reportctl.sources``."""

    PLUGIN_NAME: ClassVar[str]
    Options: ClassVar[type[SourceOptions]]

    def __init__(self, name: str, options: Any, context: SourceContext) -> None: ...

    def describe(self) -> str:
        """A short description for messages, e.g. 'sql postgresql://app@db/test'; never contains a secret."""
        ...

    def known_schema(self) -> pl.Schema | None:
        """The columns and types without reading the data, or None when they cannot be known cheaply."""
        ...

    def fetch(self) -> pl.LazyFrame:
        """The data; raises ``SourceError`` naming this source and the cause."""
        ...


@dataclass(frozen=True)
class UncheckedColumns:
    """Why ``validate`` cannot know a source's columns without asking it, said once as a note."""

    option: str
    """The option the columns depend on, where the note is placed: 'query', 'url'."""
    reason: str
    connect: str
    """What ``validate --connect`` does about it: 'asks the database'."""


@runtime_checkable
class ProbedSource(Protocol):
    """A source whose columns ``validate --connect`` can ask of it, and whose unknown columns validate notes.

    Optional beside ``Source``: a plugin without these methods is checked by ``known_schema`` alone.
    """

    def probe_schema(self) -> pl.Schema:
        """The columns and types as the live source gives them, reading as little data as it can."""
        ...

    def unchecked_columns(self) -> UncheckedColumns | None:
        """When ``known_schema`` is None: why, for the note; None when there is nothing to say."""
        ...


class SourceCache(StrictModel):
    """Whether and how long a source's result is reused from the project's query cache."""

    enabled: bool = Field(default=True, description="false: always query.")
    ttl: PositiveDuration | None = Field(
        default=None, description="How long a result is reused, e.g. 10m; default the project's cache.ttl (5m)."
    )


def _cache_setting(value: Any) -> Any:
    """``cache: true`` / ``cache: false`` as the settings they mean; a mapping is validated as it is."""
    if isinstance(value, bool):
        return {"enabled": value}
    if not isinstance(value, dict | SourceCache):
        raise ValueError(f"expected true, false or a mapping such as {{ttl: 10m}}, got {value!r}")
    return value


CacheOption = Annotated[SourceCache, BeforeValidator(_cache_setting, json_schema_input_type=bool | SourceCache)]
"""The ``cache`` option of a source the query cache serves (sql, http): true, false or {ttl: 10m}."""


def cache_field() -> Any:
    """The ``cache`` option's field: on with the project's TTL unless the source says otherwise."""
    return Field(
        default_factory=SourceCache,
        description="Reuse this source's result from the project's query cache: true (the project's TTL), false "
        "(always query), or {ttl: 10m}.",
    )


@runtime_checkable
class CachedSource(Protocol):
    """A source whose results the query cache keeps; its options have ``cache`` (``cache_field``) and ``timeout``.

    Optional beside ``Source``.
    """

    def fetch(self) -> pl.LazyFrame: ...

    def cache_identity(self) -> dict[str, Any]:
        """What its result depends on: options (secrets as written) and the values of the parameters it binds."""
        ...
