"""The HTML writer: one self-contained ``<report>.html`` with interactive plotly charts, readable offline.

The page comes from the Jinja template ``templates/report.html`` with autoescaping; a theme's ``html_template``
extends it and overrides its blocks. plotly.js is inlined once, gzipped and base64-encoded (1.9 MB instead of
4.8 MB; the browser inflates it), and only when the report has charts; ``plotly: file`` writes it once beside
the page instead. Nothing is loaded from the network. Text sections are Markdown with raw HTML escaped; tables
show formatted values (``reportctl.formats``) under sticky headers. The same document gives a byte-identical
file: element ids come from block ids, times from the document.
"""

from __future__ import annotations

import base64
import gzip
import re
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from pydantic import Field

from reportctl.document import Block, ChartBlock, Document, KpiBlock, PlaceholderBlock, Style, TableBlock, TextBlock
from reportctl.writers.base import WriterOptions, writing
from reportctl.writers.display import (
    MISSING,
    column_notes,
    display_cells,
    display_columns,
    generated_text,
    kpi_text,
    parameter_text,
    rows_note,
)
from reportctl.writers.html_template import CHART_SCRIPT, LOADER_SCRIPT, STYLESHEET

if TYPE_CHECKING:
    from jinja2 import Template
    from markdown_it import MarkdownIt

# Characters HTML forbids in a document; plotly.js has a few inside JavaScript strings.
_CONTROL = re.compile("[\\x00-\\x08\\x0b\\x0e-\\x1f\\x7f-\\x9f]")


class HtmlOptions(WriterOptions):
    """Options of the ``html`` output: ``max_rows`` caps tables whose spec sets no ``max_rows``; ``plotly``
    inlines plotly.js compressed (one self-contained file) or writes ``plotly.min.js`` once beside the page."""

    format: Literal["html"] = "html"
    max_rows: int = Field(default=5000, ge=1)
    plotly: Literal["inline", "file"] = "inline"


class HtmlWriter:
    """Writes ``<report>.html``: title block, text, KPI cards, tables and interactive charts."""

    PLUGIN_NAME: ClassVar[str] = "html"
    CHART_IMAGES: ClassVar[frozenset[str]] = frozenset()
    Options: ClassVar[type[WriterOptions]] = HtmlOptions

    def __init__(self, options: Any = None) -> None:
        valid = isinstance(options, HtmlOptions)
        self.options: HtmlOptions = options if valid else HtmlOptions.model_validate(options or {})

    def write(self, document: Document, directory: Path) -> list[Path]:
        """Write ``<report name>.html`` into ``directory`` (and ``plotly.min.js`` with ``plotly: file``)."""
        path = directory / f"{document.info.name}.html"
        written = [path]
        beside = self.options.plotly == "file" and bool(document.charts())
        if beside:
            script = directory / PLOTLY_FILE
            with writing(script, "html"):
                script.write_bytes(_plotly_js().encode())
            written.append(script)
        with writing(path, "html"):
            path.write_bytes(render_html(document, self.options.max_rows, plotly_file=beside).encode())
        return written


PLOTLY_FILE = "plotly.min.js"


def render_html(document: Document, max_rows: int, *, plotly_file: bool = False) -> str:
    """The page for ``document`` from the ``report.html`` template, or the theme's template that extends it."""
    info, style = document.info, document.style
    charts = document.charts()
    values = {
        "lang": style.locale.replace("_", "-"),
        "info": info,
        "stylesheet": Markup(STYLESHEET),
        "theme_css": Markup(_theme_css(style)),
        "logo": _data_url(style.logo) if style.logo else None,
        "parameters": [(p.label, parameter_text(p, info.timezone, style.locale)) for p in document.parameters],
        "generated": generated_text(document),
        "sections": [_section(block, document, max_rows) for block in document.blocks],
        "charts": list(_chart_specs(charts, info.timezone, style.locale)),
        "plotly_file": PLOTLY_FILE if charts and plotly_file else None,
        "plotly": Markup(_plotly_compressed()) if charts and not plotly_file else None,
        "chart_script": Markup(CHART_SCRIPT),
        "loader_script": Markup(LOADER_SCRIPT),
    }
    return _template(str(style.html_template) if style.html_template else None).render(values)


def _section(block: Block, document: Document, max_rows: int) -> dict[str, Any]:
    section: dict[str, Any] = {"kind": block.kind, "title": block.title, "anchor": _block_anchor(block.id)}
    section["failed"] = isinstance(block, PlaceholderBlock)  # on_error: placeholder; the theme shows a callout
    timezone, locale = document.info.timezone, document.style.locale
    if isinstance(block, TextBlock):
        section["html"] = Markup(_markdown().render(block.markdown))
    elif isinstance(block, KpiBlock):
        section["cards"] = [
            {"label": item.label, "value": (text := kpi_text(item, timezone, locale)), "missing": text == MISSING}
            | {"description": item.description}
            for item in block.items
        ]
    elif isinstance(block, TableBlock):
        section |= _table(block, document, block.max_rows or max_rows)
    else:
        section["chart"] = _chart_anchor(block.id)
    return section


def _table(block: TableBlock, document: Document, limit: int) -> dict[str, Any]:
    total = block.frame.height
    if not total:
        return {"empty": block.empty_message}
    columns = display_columns(block)
    classes = ["num" if c.numeric else "text" if c.format.kind == "text" else "other" for c in columns]
    cells = display_cells(block, columns, limit, document.info.timezone, document.style.locale)
    notes = {c.name: c.note for c in block.columns if c.note}
    return {
        "empty": None,
        "columns": [
            {"label": c.label, "cls": cls, "note": notes.get(c.name)} for c, cls in zip(columns, classes, strict=True)
        ],
        "rows": [list(zip(row, classes, strict=True)) for row in cells],
        "note": rows_note(min(limit, total), total, document.formats),
        "column_notes": column_notes(block),
    }


def _chart_specs(charts: list[ChartBlock], timezone: str, locale: str) -> Iterator[dict[str, Any]]:
    from reportctl.charts import build_figure, figure_json

    for chart in charts:
        # The section's <h2> shows the title, so the figure goes without (and without the room kept for it).
        figure = build_figure(replace(chart, title=None), timezone, locale)
        # "<" never occurs outside JSON strings, so escaping it keeps "</script>" and "<!--" out of the element.
        spec = figure_json(figure).replace("<", "\\u003c")
        yield {"anchor": _chart_anchor(chart.id), "spec": Markup(spec)}


def _theme_css(style: Style) -> str:
    """The theme's overrides of the stylesheet: its accent colour and its font, embedded."""
    rules = []
    if style.accent:
        rules.append(f":root {{ --accent: {style.accent}; }}")
    if style.font:
        faces = [("normal", style.font), ("bold", style.font_bold or style.font)]
        for weight, path in faces:
            kind = "opentype" if path.suffix.lower() == ".otf" else "truetype"
            source = _data_url(path)
            rules.append(
                f'@font-face {{ font-family: "Report"; font-weight: {weight}; src: url("{source}") format("{kind}"); }}'
            )
        rules.append('body { font-family: "Report", system-ui, sans-serif; }')
    return "\n".join(rules)


def _data_url(path: Path) -> str:
    kind = {".svg": "image/svg+xml", ".png": "image/png", ".ttf": "font/ttf", ".otf": "font/otf"}
    return f"data:{kind.get(path.suffix.lower(), 'application/octet-stream')};base64," + base64.b64encode(
        path.read_bytes()
    ).decode("ascii")


@cache
def _environment() -> SandboxedEnvironment:
    from jinja2 import ChoiceLoader, PackageLoader, StrictUndefined

    return SandboxedEnvironment(
        loader=ChoiceLoader([PackageLoader("reportctl.writers", "templates")]),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def check_html_template(path: Path) -> str | None:
    """The syntax error in a theme's HTML template as one line, or None when it compiles."""
    from jinja2 import TemplateSyntaxError

    try:
        _environment().parse(path.read_text(encoding="utf-8"))
    except TemplateSyntaxError as exc:
        return f"'{path.name}' line {exc.lineno}: {exc.message or 'invalid template syntax'}"
    except UnicodeDecodeError:
        return f"'{path.name}' is not UTF-8 text"
    return None


def _template(theme_template: str | None) -> Template:
    """The packaged ``report.html``, or a theme's template file (which may extend it)."""
    environment = _environment()
    if theme_template is None:
        return environment.get_template("report.html")
    return environment.from_string(Path(theme_template).read_text(encoding="utf-8"))


@cache
def _plotly_js() -> str:
    """plotly.js; the few control characters in its string literals (invalid in HTML) as escapes."""
    from plotly.offline import get_plotlyjs

    script: str = get_plotlyjs()
    return _CONTROL.sub(lambda found: f"\\u{ord(found.group()):04x}", script)


@cache
def _plotly_compressed() -> str:
    """plotly.js gzipped (fixed header, so files stay byte-identical) and base64-encoded for inlining: 1.9 MB
    instead of 4.8 MB; the page's loader inflates it with the browser's DecompressionStream."""
    return base64.b64encode(gzip.compress(_plotly_js().encode(), 9, mtime=0)).decode("ascii")


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
