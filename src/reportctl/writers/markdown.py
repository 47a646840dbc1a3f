"""The Markdown writer: ``<report>.md`` in GitHub-flavoured Markdown, for pull-request comments and chat.

Tables are GFM pipe tables of formatted values (``reportctl.formats``), cut to a few rows; charts are image
references to ``<report>.<chart id>.png``, which this writer also writes from the run's exported chart images
unless the file is already there. Same document, byte-identical files.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from reportctl.document import ChartBlock, Document, KpiBlock, TableBlock, TextBlock
from reportctl.writers.base import WriterOptions, writing
from reportctl.writers.display import (
    column_notes,
    display_cells,
    display_columns,
    generated_text,
    kpi_text,
    parameter_text,
    rows_note,
)

# Characters that could start Markdown or HTML syntax inside running text.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~])")
_LINE_START_SPECIAL = re.compile(r"^(\s*)([#>+=-]|\d+[.)])")


class MarkdownOptions(WriterOptions):
    """Options of the ``md`` output: ``max_rows`` caps tables whose spec sets no ``max_rows``."""

    format: Literal["md"] = "md"
    max_rows: int = Field(default=50, ge=1)


class MarkdownWriter:
    """Writes ``<report>.md`` and, beside it, the PNG of every chart it references."""

    PLUGIN_NAME: ClassVar[str] = "md"
    CHART_IMAGES: ClassVar[frozenset[str]] = frozenset({"png"})
    Options: ClassVar[type[WriterOptions]] = MarkdownOptions

    def __init__(self, options: Any = None) -> None:
        valid = isinstance(options, MarkdownOptions)
        self.options: MarkdownOptions = options if valid else MarkdownOptions.model_validate(options or {})

    def write(self, document: Document, directory: Path) -> list[Path]:
        """Write ``<report name>.md`` and the chart PNGs it links to into ``directory``."""
        path = directory / f"{document.info.name}.md"
        with writing(path, "md"):
            text = "\n\n".join(_chunks(document, self.options.max_rows)) + "\n"
            images = [_write_chart_image(document, chart, directory) for chart in document.charts()]
            path.write_bytes(text.encode())
        return [path, *images]


def chart_image_name(document: Document, chart: ChartBlock) -> str:
    """The PNG file a chart is referenced as; the png writer uses the same name."""
    return f"{document.info.name}.{chart.id}.png"


def _chunks(document: Document, max_rows: int) -> list[str]:
    """The file's paragraphs, joined by blank lines."""
    info = document.info
    chunks = [f"# {_inline(info.title)}"]
    if info.description:
        chunks.append(_plain_paragraph(info.description))
    locale = document.style.locale
    parameters = " · ".join(
        f"**{_inline(p.label)}:** {_inline(parameter_text(p, info.timezone, locale))}" for p in document.parameters
    )
    generated = f"_Generated {_inline(generated_text(document))}_"
    chunks.append(f"{parameters}  \n{generated}" if parameters else generated)
    for block in document.blocks:
        if block.title:
            chunks.append(f"## {_inline(block.title)}")
        if isinstance(block, TextBlock):
            if block.markdown.strip():
                chunks.append(block.markdown.strip("\n"))
        elif isinstance(block, KpiBlock):
            chunks.append(_kpis(block, info.timezone, document.style.locale))
        elif isinstance(block, TableBlock):
            chunks.extend(_table(block, document, block.max_rows or max_rows))
        else:
            alt = _inline(block.title or block.id)
            chunks.append(f"![{alt}]({_link_target(chart_image_name(document, block))})")
    return chunks


def _kpis(block: KpiBlock, timezone: str, locale: str) -> str:
    described = any(item.description for item in block.items)
    lines = [
        "| KPI | Value | Note |" if described else "| KPI | Value |",
        "| --- | ---: | --- |" if described else "| --- | ---: |",
    ]
    for item in block.items:
        cells = [_cell(item.label), _cell(kpi_text(item, timezone, locale))]
        if described:
            cells.append(_cell(item.description or ""))
        lines.append(_row(cells))
    return "\n".join(lines)


def _table(block: TableBlock, document: Document, limit: int) -> list[str]:
    timezone, locale, formats = document.info.timezone, document.style.locale, document.formats
    total = block.frame.height
    if not total:
        return [f"_{_inline(block.empty_message)}_"]
    columns = display_columns(block)
    lines = [_row([_cell(c.label) for c in columns]), _row(["---:" if c.numeric else "---" for c in columns])]
    cells = display_cells(block, columns, limit, timezone, locale)
    lines.extend(_row([_cell(value) for value in row]) for row in cells)
    notes = [n for n in (rows_note(min(limit, total), total, formats), *column_notes(block)) if n]
    return ["\n".join(lines), *(f"_{_inline(note)}_" for note in notes)]


def _write_chart_image(document: Document, chart: ChartBlock, directory: Path) -> Path:
    """Write the chart's PNG unless it exists; via a temporary file and ``os.replace``, so a racing writer of
    the same bytes never leaves a half-written file."""
    image = document.chart_images.get(chart.id)
    if image is None or image.png is None:
        raise ValueError(f"no PNG image of chart '{chart.id}' in the document")
    path = directory / chart_image_name(document, chart)
    if path.exists():
        return path
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(image.png)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(text: str) -> str:
    """A value in a table cell: Markdown escaped, newlines as <br> (GFM cells are one line)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "<br>".join(_inline(line) for line in lines).strip()


def _inline(text: str) -> str:
    """Plain text that Markdown shows as written: no emphasis, links, HTML or cell breaks; one line."""
    return _INLINE_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _plain_paragraph(text: str) -> str:
    """Plain text as paragraphs, each line escaped so it cannot start a heading, list or quote."""
    lines = []
    for line in text.replace("\r\n", "\n").strip().split("\n"):
        escaped = _INLINE_SPECIAL.sub(r"\\\1", line.strip())
        lines.append(_LINE_START_SPECIAL.sub(lambda m: m.group(1) + _escape_marker(m.group(2)), escaped))
    return "\n".join(lines)


def _escape_marker(marker: str) -> str:
    return marker[:-1] + "\\" + marker[-1]


def _link_target(name: str) -> str:
    """A relative file name as a link target; angle brackets keep spaces and parentheses intact."""
    return f"<{name}>" if re.search(r"[\s()<>]", name) else name
