"""Excel cell values and number formats for the xlsx writer: columns to lists, formats to Excel codes.

Dates, datetimes, times and durations become Excel serial numbers (days since 1899-12-30) computed by polars over
whole columns, shown through a date or duration number format; readers see real dates, never text. Aware
datetimes are moved to the report's time zone first and written as wall-clock time, since Excel has no zones.

Number formats from column formats (``N`` decimals)::

    number:N UNIT   #,##0.00" UNIT"        integer UNIT   #,##0" UNIT"        percent:N   #,##0.0%
    currency:EUR    "€"#,##0.00            currency:CHF   "CHF "#,##0.00       bytes       #,##0" B"
    date            yyyy-mm-dd             datetime       yyyy-mm-dd hh:mm     duration    [h]:mm:ss
    date:%d %b %Y   dd mmm yyyy            text           @                    (time col)  hh:mm:ss
    (float column)  #,##0.00## (as many optional places as its smallest value needs)
    (bool column)   "Yes";"Yes";"No" over 1 and 0

Excel's codes are locale-neutral: "," and "." in them show as the viewer's group and decimal separators. The
report's locale decides where the currency symbol and the percent sign go (de_DE: ``#,##0.00" €"``); symbols
come from ``reportctl.formats`` (CLDR) as quoted literals, which every spreadsheet reads the same way.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from reportctl.document import Period
from reportctl.formats import (
    AUTO,
    DEFAULT_LOCALE,
    ColumnFormat,
    currency_affixes,
    currency_digits,
    default_format_for,
    is_missing,
    number_symbols,
)

if TYPE_CHECKING:
    import polars as pl

EXCEL_EPOCH_OFFSET = 25569
"""The Excel serial number of 1970-01-01."""
DAY_MICROSECONDS = 86_400_000_000
_STRFTIME_TO_EXCEL = {
    "%Y": "yyyy",
    "%y": "yy",
    "%m": "mm",
    "%d": "dd",
    "%e": "d",
    "%b": "mmm",
    "%B": "mmmm",
    "%a": "ddd",
    "%A": "dddd",
    "%H": "hh",
    "%M": "mm",
    "%S": "ss",
    "%I": "hh",
    "%p": "AM/PM",
}
_LITERAL_SAFE = re.compile(r"[ \-/:.,]")
_DATE_STYLES: dict[str | None, Literal["full", "long", "medium", "short"]] = {
    "full": "full",
    "long": "long",
    "medium": "medium",
    "short": "short",
}


BOOLEAN_FORMAT = '"Yes";"Yes";"No"'
"""Booleans are written as 1 and 0 shown as Yes and No, as every other writer shows them."""


def column_format(spec: ColumnFormat, series: pl.Series) -> ColumnFormat:
    """The format a column is shown with: its own, or the default for its type (and values) when it has none."""
    return default_format_for(series.dtype, series) if spec == AUTO else spec


def number_format(spec: ColumnFormat, dtype: pl.DataType | None = None, locale: str = DEFAULT_LOCALE) -> str:
    """The Excel number format code for a column format in ``locale`` (``dtype`` settles "auto", booleans and
    time-of-day columns)."""
    import polars as pl

    if dtype is not None and dtype == pl.Time:
        return "hh:mm:ss"
    if dtype is not None and dtype == pl.Boolean and spec.kind in ("auto", "text"):
        return BOOLEAN_FORMAT
    if spec.kind == "auto":
        spec = default_format_for(dtype) if dtype is not None else ColumnFormat("number", decimals=2)
    kind, decimals = spec.kind, spec.decimals or 0
    optional = "#" * max(0, (spec.most_decimals or 0) - decimals) if kind == "number" else ""
    fraction = "." + "0" * decimals + optional if decimals or optional else ""
    if kind in ("number", "integer"):
        code = "#,##0" + (fraction if kind == "number" else "")
        return code + (_quoted(" " + spec.unit) if spec.unit else "")
    if kind == "percent":
        prefix, suffix = number_symbols(locale).percent
        return _quoted(prefix) + f"#,##0{fraction}" + _quoted(suffix.replace("%", "")) + "%"
    if kind == "currency":
        code = spec.currency or "USD"
        prefix, suffix = currency_affixes(code, locale)
        places = spec.decimals if spec.decimals is not None else currency_digits(code)
        return _quoted(prefix) + "#,##0" + ("." + "0" * places if places else "") + _quoted(suffix)
    if kind == "date" and spec.pattern in _DATE_STYLES:
        return _excel_date_style(_DATE_STYLES[spec.pattern], locale) or "yyyy-mm-dd"
    if kind == "bytes":
        return '#,##0" B"'
    if kind == "date":
        return (spec.pattern and _excel_pattern(spec.pattern)) or "yyyy-mm-dd"
    if kind == "datetime":
        return (spec.pattern and _excel_pattern(spec.pattern)) or "yyyy-mm-dd hh:mm"
    if kind == "duration":
        return "[h]:mm:ss"
    return "@"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "") + '"' if text else ""


_LDML_TO_EXCEL = {
    "y": "yyyy", "yy": "yy", "yyyy": "yyyy", "M": "m", "MM": "mm", "MMM": "mmm", "MMMM": "mmmm",
    "L": "m", "LL": "mm", "LLL": "mmm", "LLLL": "mmmm", "d": "d", "dd": "dd",
    "E": "ddd", "EE": "ddd", "EEE": "ddd", "EEEE": "dddd",
}  # fmt: skip


def _excel_date_style(style: Literal["full", "long", "medium", "short"], locale: str) -> str | None:
    """The locale's date style (CLDR) as an Excel date code, or None when it uses a field Excel cannot show."""
    from babel.dates import get_date_format

    pattern = str(get_date_format(style, locale=locale).pattern)
    parts: list[str] = []
    for token in re.finditer(r"'(?P<quoted>[^']*)'|(?P<field>([A-Za-z])\3*)|(?P<other>.)", pattern):
        if token.group("field"):
            code = _LDML_TO_EXCEL.get(token.group("field"))
            if code is None:
                return None
            parts.append(code)
        else:
            text = token.group("quoted") if token.group("quoted") is not None else token.group("other")
            parts.append("".join(ch if _LITERAL_SAFE.fullmatch(ch) else "\\" + ch for ch in text))
    return "".join(parts)


def _excel_pattern(pattern: str) -> str | None:
    """A strftime pattern as an Excel date code, or None when it uses a directive Excel cannot show."""
    parts: list[str] = []
    for piece in re.split(r"(%.)", pattern):
        if piece.startswith("%") and len(piece) == 2:
            code = _STRFTIME_TO_EXCEL.get(piece)
            if code is None:
                return None
            parts.append(code)
        elif piece:
            parts.append("".join(ch if _LITERAL_SAFE.fullmatch(ch) else "\\" + ch for ch in piece))
    return "".join(parts)


def column_values(column: pl.Series, spec: ColumnFormat, timezone: str) -> list[Any]:
    """A column as a list of cell values xlsxwriter writes fast: numbers, strings, bools and None for blanks."""
    import polars as pl

    dtype = column.dtype
    frame = column.to_frame("v")
    c = pl.col("v")
    if dtype.is_float() or dtype.is_decimal():
        expr: pl.Expr = pl.when(c.cast(pl.Float64).is_finite()).then(c.cast(pl.Float64))
    elif dtype == pl.Boolean:
        return [None if v is None else int(v) for v in column.to_list()]
    elif dtype.is_numeric() or dtype == pl.String:
        if spec.kind == "duration" and dtype.is_numeric():
            return frame.select(c / 86_400).to_series().to_list()
        return column.to_list()
    elif dtype in (pl.Categorical,) or isinstance(dtype, pl.Enum):
        expr = c.cast(pl.String)
    elif dtype == pl.Date:
        expr = _excel_serial(c.cast(pl.Int32) + EXCEL_EPOCH_OFFSET)
    elif isinstance(dtype, pl.Datetime):
        if dtype.time_zone:
            c = c.dt.convert_time_zone(timezone).dt.replace_time_zone(None)
        expr = _excel_serial(c.dt.epoch("us") / DAY_MICROSECONDS + EXCEL_EPOCH_OFFSET)
    elif isinstance(dtype, pl.Duration):
        micros = c.dt.total_microseconds()
        expr = micros / DAY_MICROSECONDS if spec.kind in ("duration", "auto") else micros / 1_000_000
    elif dtype == pl.Time:
        expr = c.cast(pl.Int64) / (DAY_MICROSECONDS * 1000)
    elif dtype == pl.Null:
        return [None] * column.len()
    else:
        return [None if v is None else str(v) for v in column.to_list()]
    return frame.select(expr).to_series().to_list()


def _excel_serial(serial: pl.Expr) -> pl.Expr:
    """Serials before 1900-03-01 shifted by Excel's phantom 1900-02-29, as Excel counts them."""
    import polars as pl

    return pl.when(serial < 61).then(serial - 1).otherwise(serial)


def scalar_cell(value: Any, timezone: str) -> tuple[Any, str | None]:
    """A single value (parameter, KPI, run info) as a cell value and the number format its type needs."""
    if is_missing(value):
        return None, None
    if isinstance(value, datetime):
        return local_naive(value, timezone), "yyyy-mm-dd hh:mm"
    if isinstance(value, date):
        return value, "yyyy-mm-dd"
    if isinstance(value, time):
        return value.replace(tzinfo=None), "hh:mm:ss"
    if isinstance(value, timedelta):
        return value / timedelta(days=1), "[h]:mm:ss"
    if isinstance(value, Period):
        return str(value), None
    if isinstance(value, bool | int | float | str):
        return value, None
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return ", ".join(str(v) for v in items), None
    return str(value), None


def local_naive(moment: datetime, timezone: str) -> datetime:
    """An aware datetime as wall-clock time in ``timezone`` without tzinfo; naive ones unchanged."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment
    return moment.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def utc_naive(moment: datetime) -> datetime:
    """An aware datetime as naive UTC (naive ones are taken as UTC), as workbook properties expect."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


_FORBIDDEN_IN_SHEET_NAMES = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
MAX_SHEET_NAME = 31


class SheetNames:
    """Unique Excel sheet names: at most 31 characters, none of []:*?/\\, compared case-insensitively."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, wanted: str, fallback: str) -> str:
        """A free name close to ``wanted`` (``fallback`` when it has no usable characters), " (2)" when taken."""
        base = _FORBIDDEN_IN_SHEET_NAMES.sub(" ", wanted)
        base = re.sub(r"\s+", " ", base).strip().strip("'").strip()
        if not base or base.lower() == "history":
            base = _FORBIDDEN_IN_SHEET_NAMES.sub("_", fallback).strip("'") or "Sheet"
        name = base[:MAX_SHEET_NAME].rstrip().rstrip("'")
        number = 1
        while name.lower() in self._taken:
            number += 1
            suffix = f" ({number})"
            name = base[: MAX_SHEET_NAME - len(suffix)].rstrip().rstrip("'") + suffix
        self._taken.add(name.lower())
        return name
