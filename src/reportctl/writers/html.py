"""The HTML writer: one self-contained ``<report>.html`` with interactive plotly charts, readable offline.

plotly.js is inlined once, and only when the report has charts; nothing is loaded from the network. Text
sections are Markdown with raw HTML escaped; tables show formatted values (``reportctl.formats``) under sticky
headers. The same document gives a byte-identical file: element ids come from block ids, times from the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from reportctl.document import ChartBlock, Document, KpiBlock, TableBlock, TextBlock
from reportctl.formats import parse_format
from reportctl.writers.base import WriterOptions, writing
from reportctl.writers.display import display_cells, display_columns, generated_text, parameter_text, rows_note
from reportctl.writers.html_template import CHART_SCRIPT, STYLESHEET

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

_AUTO = parse_format(None)
# Characters HTML forbids in a document; plotly.js has a few inside JavaScript strings.
_CONTROL = re.compile("[\\x00-\\x08\\x0b\\x0e-\\x1f\\x7f-\\x9f]")


class HtmlOptions(WriterOptions):
    """Options of the ``html`` output: ``max_rows`` caps tables whose spec sets no ``max_rows``."""

    format: Literal["html"] = "html"
    max_rows: int = Field(default=5000, ge=1)


class HtmlWriter:
    """Writes ``<report>.html``: title block, text, KPI cards, tables and interactive charts."""

    PLUGIN_NAME: ClassVar[str] = "html"
    CHART_IMAGES: ClassVar[frozenset[str]] = frozenset()
    Options: ClassVar[type[WriterOptions]] = HtmlOptions

    def __init__(self, options: Any = None) -> None:
        valid = isinstance(options, HtmlOptions)
        self.options: HtmlOptions = options if valid else HtmlOptions.model_validate(options or {})

    def write(self, document: Document, directory: Path) -> list[Path]:
        """Write ``<report name>.html`` into ``directory``."""
        path = directory / f"{document.info.name}.html"
        with writing(path, "html"):
            text = "".join(_page(document, self.options.max_rows))
            path.write_bytes(text.encode())
        return [path]


def _page(document: Document, max_rows: int) -> Iterator[str]:
    info = document.info
    charts = document.charts()
    yield '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    yield '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    yield f'<meta name="generator" content="reportctl">\n<title>{_text(info.title)}</title>\n'
    yield f'<style>{STYLESHEET}</style>\n</head>\n<body>\n<div class="report">\n'
    yield from _header(document)
    yield "<main>\n"
    markdown = _markdown()
    for block in document.blocks:
        yield f'<section class="block block-{block.kind}" id="{_attr(_block_anchor(block.id))}">\n'
        if block.title:
            yield f"<h2>{_text(block.title)}</h2>\n"
        if isinstance(block, TextBlock):
            yield f'<div class="prose">\n{markdown.render(block.markdown)}</div>\n'
        elif isinstance(block, KpiBlock):
            yield from _kpis(block, info.timezone)
        elif isinstance(block, TableBlock):
            yield from _table(block, info.timezone, block.max_rows or max_rows, document.formats)
        else:
            yield f'<div class="chart" id="{_attr(_chart_anchor(block.id))}"></div>\n'
        yield "</section>\n"
    yield "</main>\n"
    yield f'<footer class="report-footer">{_text(info.name)} · {_text(info.spec_path)}</footer>\n</div>\n'
    if charts:
        yield from _chart_scripts(charts, info.timezone)
    yield "</body>\n</html>\n"


def _header(document: Document) -> Iterator[str]:
    info = document.info
    yield f'<header class="report-header">\n<h1>{_text(info.title)}</h1>\n'
    if info.description:
        yield f'<p class="description">{_text(info.description)}</p>\n'
    if document.parameters:
        yield '<dl class="parameters">\n'
        for parameter in document.parameters:
            value = parameter_text(parameter, info.timezone)
            yield f"<div><dt>{_text(parameter.label)}</dt><dd>{_text(value)}</dd></div>\n"
        yield "</dl>\n"
    yield f'<p class="generated">Generated {_text(generated_text(document))}</p>\n</header>\n'


def _kpis(block: KpiBlock, timezone: str) -> Iterator[str]:
    yield '<div class="kpi-grid">\n'
    for item in block.items:
        value = parse_format(item.format).format(item.value, timezone)
        shown = f'<div class="kpi-value">{_text(value)}</div>' if value else '<div class="kpi-value missing">—</div>'
        yield f'<div class="kpi"><div class="kpi-label">{_text(item.label)}</div>{shown}'
        if item.description:
            yield f'<div class="kpi-description">{_text(item.description)}</div>'
        yield "</div>\n"
    yield "</div>\n"


def _table(block: TableBlock, timezone: str, limit: int, formats: tuple[str, ...]) -> Iterator[str]:
    columns = display_columns(block)
    total = block.frame.height
    if not total:
        yield f'<p class="empty">{_text(block.empty_message)}</p>\n'
        return
    classes = ["num" if c.numeric else "text" if c.format.kind == "text" else "other" for c in columns]
    yield '<div class="table-wrap">\n<table class="data">\n<thead>\n<tr>'
    yield "".join(
        f'<th scope="col" class="{cls}">{_text(c.label)}</th>' for c, cls in zip(columns, classes, strict=True)
    )
    yield "</tr>\n</thead>\n<tbody>\n"
    for row in display_cells(block, columns, limit, timezone):
        cells = "".join(f'<td class="{cls}">{_text(v)}</td>' for v, cls in zip(row, classes, strict=True))
        yield f"<tr>{cells}</tr>\n"
    yield "</tbody>\n</table>\n</div>\n"
    note = rows_note(min(limit, total), total, formats)
    if note:
        yield f'<p class="note">{_text(note)}</p>\n'


def _chart_scripts(charts: list[ChartBlock], timezone: str) -> Iterator[str]:
    from reportctl.charts import build_figure, figure_json

    for chart in charts:
        # The section's <h2> shows the title, so the figure goes without (and without the room kept for it).
        figure = build_figure(replace(chart, title=None), timezone)
        # "<" never occurs outside JSON strings, so escaping it keeps "</script>" and "<!--" out of the element.
        spec = figure_json(figure).replace("<", "\\u003c")
        anchor = _attr(_chart_anchor(chart.id))
        yield f'<script type="application/json" class="chart-spec" data-chart="{anchor}">{spec}</script>\n'
    yield f"<script>{_plotly_js()}</script>\n<script>{CHART_SCRIPT}</script>\n"


@cache
def _plotly_js() -> str:
    """plotly.js for inlining; the few control characters in its string literals (invalid in HTML) as escapes."""
    from plotly.offline import get_plotlyjs

    script: str = get_plotlyjs()
    return _CONTROL.sub(lambda found: f"\\u{ord(found.group()):04x}", script)


def _markdown() -> MarkdownIt:
    """CommonMark with GFM tables and strikethrough; raw HTML is shown as text, pictures by URL become links."""
    from markdown_it import MarkdownIt

    markdown = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    markdown.add_render_rule("image", _image_as_link)
    markdown.core.ruler.push("shift_headings", _shift_headings)
    return markdown


def _image_as_link(self: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    """Pictures would be fetched from the network; a link to them keeps the file self-contained."""
    token = tokens[index]
    source = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or source
    return f'<a href="{_attr(source)}">{_text(alt)}</a>'


def _shift_headings(state: Any) -> None:
    """Headings in text sections sit under the section's <h2>, so '#' becomes <h3>."""
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 2, 6)}"


def _block_anchor(block_id: str) -> str:
    return f"section-{block_id}"


def _chart_anchor(block_id: str) -> str:
    return f"chart-{block_id}"


def _text(value: str) -> str:
    return escape(value, quote=False)


def _attr(value: str) -> str:
    return escape(value, quote=True)
