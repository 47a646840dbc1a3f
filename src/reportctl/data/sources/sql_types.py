"""How values cross the database driver, for the ``sql`` source: parameter values as SQLite keeps them, and the
Polars type of each column of an empty result, read from the cursor's description.

A result with rows is typed by Polars from its values; only an empty one (and ``validate --connect``'s probe)
needs the driver's own type codes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import polars as pl

Backend = Literal["sqlite", "postgresql", "mysql"]


def sqlite_value(value: Any, timezone: str) -> Any:
    """Dates and datetimes as SQLite keeps them, as text (Python 3.12 deprecates sqlite3's implicit adapters).

    SQLite has no time zones, so a datetime is written as wall-clock time in the report's zone, and a midnight
    as the plain date: as text, '2026-01-01' >= '2026-01-01' and '2026-01-31 23:00:00' < '2026-02-01' both
    hold, so a period compares correctly with date columns and datetime columns alike.
    """
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
        if value.time() == datetime.min.time():
            return value.date().isoformat()
        return value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def dtype_from_description(column: Sequence[Any], backend: Backend) -> pl.DataType:
    """The Polars type of one DB-API cursor description entry; ``pl.Null`` where the driver does not say (SQLite
    never does) or names a type without a Polars match."""
    import polars as pl

    type_code, scale = column[1], column[5] if len(column) > 5 else None
    if backend == "postgresql":
        import psycopg

        info = psycopg.postgres.types.get(type_code) if isinstance(type_code, int) else None
        name = info.name if info else ""
    elif backend == "mysql":
        name = _MYSQL_TYPES.get(type_code, "") if isinstance(type_code, int) else ""
    else:
        return pl.Null()
    if name == "numeric":
        return pl.Decimal(38, scale) if isinstance(scale, int) and 0 <= scale <= 38 else pl.Float64()
    types: Mapping[str, pl.DataType] = {
        "int2": pl.Int64(),
        "int4": pl.Int64(),
        "int8": pl.Int64(),
        "float4": pl.Float64(),
        "float8": pl.Float64(),
        "text": pl.String(),
        "varchar": pl.String(),
        "bpchar": pl.String(),
        "name": pl.String(),
        "bool": pl.Boolean(),
        "date": pl.Date(),
        "timestamp": pl.Datetime("us"),
        "timestamptz": pl.Datetime("us", "UTC"),
        "interval": pl.Duration("us"),
    }
    return types.get(name, pl.Null())


# pymysql FIELD_TYPE codes, named as PostgreSQL names the matching types.
_MYSQL_TYPES = {
    1: "int2",
    2: "int2",
    3: "int4",
    8: "int8",
    9: "int4",
    13: "int4",
    4: "float4",
    5: "float8",
    0: "numeric",
    246: "numeric",
    10: "date",
    7: "timestamp",
    12: "timestamp",
    11: "interval",
    15: "varchar",
    253: "varchar",
    254: "varchar",
}
