"""The format-agnostic report document that every writer receives.

It is built once per run from the computed datasets and the spec's sections; writers only read it. Values are
kept raw (numbers, datetimes) together with their column format, so each writer can emit native types (an Excel
date, a JSON number) and shared text via ``reportctl.formats``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Period:
    """A resolved period parameter: [start, end) in the report's time zone."""

    name: str
    start: datetime
    end: datetime

    @property
    def last_day(self) -> date:
        """The last calendar day inside the period (``end`` itself is excluded), for titles such as 'to 27 Nov'."""
        return (self.end - timedelta(microseconds=1)).date()

    def __str__(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


@dataclass(frozen=True)
class ReportInfo:
    name: str
    title: str
    description: str | None
    run_id: str
    generated_at: datetime
    timezone: str
    spec_path: str
    spec_hash: str
    version: str | None = None
    owner: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ParameterValue:
    name: str
    label: str
    type: str
    value: Any


@dataclass(frozen=True)
class TextBlock:
    id: str
    title: str | None
    markdown: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True)
class KpiValue:
    label: str
    value: Any
    format: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class KpiBlock:
    id: str
    title: str | None
    items: tuple[KpiValue, ...]
    kind: Literal["kpis"] = "kpis"


@dataclass(frozen=True)
class TableColumn:
    name: str
    label: str
    format: str | None = None
    formula: str | None = None
    note: str | None = None
    """What readers should know of the column's values, e.g. how a percentile was computed."""


@dataclass(frozen=True)
class TableBlock:
    """A table; ``frame`` holds every row with its columns in display order, formula columns computed."""

    id: str
    title: str | None
    columns: tuple[TableColumn, ...]
    frame: pl.DataFrame
    max_rows: int | None = None
    empty_message: str = "No data for this period"
    kind: Literal["table"] = "table"


@dataclass(frozen=True)
class ChartBlock:
    id: str
    title: str | None
    chart: str
    frame: pl.DataFrame
    x: str
    y: tuple[str, ...]
    series: str | None = None
    stacked: bool = False
    x_label: str | None = None
    y_label: str | None = None
    format: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    """Readers' names of the chart's columns: the labels tables over the same dataset give them."""
    kind: Literal["chart"] = "chart"


@dataclass(frozen=True)
class SectionFailure:
    """A section rendered as a placeholder (``on_error: placeholder``): its id and the one-line, redacted reason."""

    section: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"section": self.section, "error": self.error}


@dataclass(frozen=True)
class PlaceholderBlock(TextBlock):
    """What a failed section shows instead of its content: text that every writer renders (its ``markdown`` names
    the section and the reason), marked as failed for the writers that record it (JSON)."""

    error: str = ""
    section_type: str = ""

    @property
    def failure(self) -> SectionFailure:
        return SectionFailure(self.id, self.error)


Block = TextBlock | KpiBlock | TableBlock | ChartBlock


@dataclass(frozen=True)
class ChartImage:
    """A chart exported once per run for every writer that embeds pictures; sizes in CSS pixels at 1x."""

    width: int
    height: int
    png: bytes | None = None
    svg: bytes | None = None
    png_scale: int = 2


@dataclass(frozen=True)
class Style:
    """The resolved look of a report: the spec's locale and theme keys over the project's, paths made absolute."""

    locale: str = "en_US"
    accent: str | None = None
    """The theme's accent colour as #rrggbb; None keeps each writer's own."""
    logo: Path | None = None
    font: Path | None = None
    font_bold: Path | None = None
    html_template: Path | None = None


@dataclass(frozen=True)
class Document:
    info: ReportInfo
    parameters: tuple[ParameterValue, ...]
    blocks: tuple[Block, ...]
    chart_images: Mapping[str, ChartImage] = field(default_factory=dict)
    """Exported charts by chart id, present when a writer of this run asked for them (``CHART_IMAGES``)."""
    formats: tuple[str, ...] = ()
    """The output formats of this run, so a writer can point readers to the complete data elsewhere."""
    style: Style = field(default_factory=Style)
    """Locale and theme: how numbers read and what the report looks like."""

    def tables(self) -> list[TableBlock]:
        return [b for b in self.blocks if isinstance(b, TableBlock)]

    def charts(self) -> list[ChartBlock]:
        return [b for b in self.blocks if isinstance(b, ChartBlock)]

    def failures(self) -> list[SectionFailure]:
        """The sections rendered as placeholders, in report order: the run's warnings."""
        return [b.failure for b in self.blocks if isinstance(b, PlaceholderBlock)]
