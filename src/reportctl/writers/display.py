"""What every writer shows the same way: parameter values, the generation time, table cells and the row-limit note.

Values themselves are formatted by ``reportctl.formats``; this module decides which columns a table shows and the
short texts around them, so PDF, HTML and Markdown read alike.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from reportctl.document import Document, ParameterValue, Period, TableBlock
from reportctl.formats import (
    ColumnFormat,
    default_format_for,
    format_date,
    format_datetime,
    format_number,
    parse_format,
)

NUMERIC_KINDS = frozenset({"number", "integer", "percent", "currency", "bytes", "duration"})
_AUTO = parse_format(None)
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
    schema = table.frame.schema
    if not table.columns:
        return [DisplayColumn(name, name, default_format_for(dtype)) for name, dtype in schema.items()]
    return [
        DisplayColumn(
            c.name,
            c.label,
            parse_format(c.format) if c.format else default_format_for(schema[c.name]),
        )
        for c in table.columns
    ]


def display_cells(table: TableBlock, columns: list[DisplayColumn], limit: int, timezone: str) -> list[list[str]]:
    """The first ``limit`` rows as display text, one list per row."""
    frame = table.frame.head(limit)
    texts = [[column.format.format(value, timezone) for value in frame[column.name].to_list()] for column in columns]
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


def parameter_text(parameter: ParameterValue, timezone: str) -> str:
    """A parameter value for readers; a period as its first and last day joined by an en dash."""
    value = parameter.value
    if isinstance(value, Period):
        return f"{format_date(value.start, tz=timezone)} \N{EN DASH} {format_date(value.last_day)}"
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return ", ".join(_AUTO.format(item, timezone) for item in items)
    if isinstance(value, float):
        # as the reader gave it: a column's two decimals would show an objective of 0.995 as 1.00
        return f"{value:,.12g}"
    return _AUTO.format(value, timezone)


def generated_text(document: Document) -> str:
    """When the report was generated, in its own time zone: "2026-11-28 09:00 CET"."""
    return format_datetime(document.info.generated_at, tz=document.info.timezone)
