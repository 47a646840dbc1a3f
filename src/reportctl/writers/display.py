"""What every writer shows the same way: parameter values, the generation time, table cells and the row-limit note.

Values themselves are formatted by ``reportctl.formats``; this module decides which columns a table shows and the
short texts around them, so PDF, HTML and Markdown read alike.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reportctl.document import Document, KpiValue, ParameterValue, Period, TableBlock
from reportctl.formats import (
    DEFAULT_LOCALE,
    ColumnFormat,
    default_format_for,
    format_date,
    format_datetime,
    format_number,
    parse_format,
)

if TYPE_CHECKING:
    import polars as pl

NUMERIC_KINDS = frozenset({"number", "integer", "percent", "currency", "bytes", "duration"})
_AUTO = parse_format(None)
MISSING = "\N{EM DASH}"
"""What a KPI without a value shows in every writer (JSON keeps ``null`` as the value and this as the display)."""
_FULL_DATA = {"xlsx": "Excel", "csv": "CSV", "json": "JSON"}


@dataclass(frozen=True)
class DisplayColumn:
    """A table column as readers see it: label, format, and whether it holds numbers (right-aligned)."""

    name: str
    label: str
    format: ColumnFormat

    @property
    def numeric(self) -> bool:
        return self.format.kind in NUMERIC_KINDS


def display_columns(table: TableBlock) -> list[DisplayColumn]:
    """The columns to show, with their format (the column's own, else the default for its type)."""
    frame = table.frame
    if not table.columns:
        return [DisplayColumn(name, name, column_display_format(None, frame, name)) for name in frame.columns]
    return [DisplayColumn(c.name, c.label, column_display_format(c.format, frame, c.name)) for c in table.columns]


def column_display_format(spec: str | None, frame: pl.DataFrame, name: str) -> ColumnFormat:
    """A column's own format, else the default for its type (for floats, from all its values, so every writer
    and every page shows the column with the same decimals)."""
    if spec:
        return parse_format(spec)
    return default_format_for(frame.schema[name], frame.get_column(name))


def display_cells(
    table: TableBlock, columns: list[DisplayColumn], limit: int, timezone: str, locale: str = DEFAULT_LOCALE
) -> list[list[str]]:
    """The first ``limit`` rows as display text, one list per row."""
    frame = table.frame.head(limit)
    texts = []
    for column in columns:
        text = column.format.formatter(frame.schema[column.name], timezone, locale)
        texts.append([text(value) for value in frame.get_column(column.name).to_list()])
    return [list(row) for row in zip(*texts, strict=True)] if texts else [[] for _ in range(frame.height)]


def rows_note(shown: int, total: int, formats: Collection[str] = ()) -> str | None:
    """The note under a table cut to ``shown`` of ``total`` rows, naming the outputs of this run that hold them all;
    None when every row is shown."""
    if shown >= total:
        return None
    note = f"Showing {format_number(shown)} of {format_number(total)} rows"
    complete = [label for name, label in _FULL_DATA.items() if name in formats]
    if complete:
        outputs = " and ".join([", ".join(complete[:-1]), complete[-1]] if len(complete) > 1 else complete)
        note += f"; full data in the {outputs} output{'s' if len(complete) > 1 else ''}"
    return note + "."


def column_notes(table: TableBlock) -> list[str]:
    """The notes of a table's columns, one line each: "P95 latency: 95th percentile, by linear interpolation ..."."""
    return [f"{column.label}: {column.note}." for column in table.columns if column.note]


def parameter_text(parameter: ParameterValue, timezone: str, locale: str = DEFAULT_LOCALE) -> str:
    """A parameter value for readers; a period as its first and last day joined by an en dash, or its one day."""
    value = parameter.value
    if isinstance(value, Period):
        first, last = format_date(value.start, tz=timezone), format_date(value.last_day)
        return first if first == last else f"{first} \N{EN DASH} {last}"
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return ", ".join(_AUTO.format(item, timezone, locale) for item in items)
    if isinstance(value, float):
        # as the reader gave it: a column's two decimals would show an objective of 0.995 as 1.00
        return format_number(value, 0, locale=locale, most_decimals=12)
    return _AUTO.format(value, timezone, locale)


def kpi_text(item: KpiValue, timezone: str, locale: str = DEFAULT_LOCALE) -> str:
    """A key figure's value as readers see it, in its format; an em dash when it has none (a null or NaN)."""
    return parse_format(item.format).format(item.value, timezone, locale) or MISSING


def generated_text(document: Document) -> str:
    """When the report was generated, in its own time zone: "2026-11-28 09:00 CET"."""
    return format_datetime(document.info.generated_at, tz=document.info.timezone)
