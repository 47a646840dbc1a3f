"""The PDF writer: ``<report>.pdf``, a paginated report for people, drawn with fpdf2 and the shipped fonts.

Page 1 opens with a title block (title, description, parameters, run time); every page has a header (title,
run time) and a "Page X of Y" footer. Text sections take simple Markdown, KPIs become cards, tables are fitted
to the page (landscape for wide ones in "auto" orientation), charts are the run's exported PNGs. The same
document gives byte-identical bytes: the creation date and file ID derive from ``generated_at`` and content.
"""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from reportctl.document import ChartBlock, Document, KpiBlock, PlaceholderBlock, TableBlock, TextBlock
from reportctl.errors import RenderError
from reportctl.writers.base import WriterOptions, writing
from reportctl.writers.display import MISSING, column_notes, kpi_text, parameter_text, rows_note
from reportctl.writers.pdf_canvas import (
    CARD_FILL,
    INK,
    MARGIN_BOTTOM,
    MARGIN_TOP,
    MUTED,
    WARNING,
    WARNING_FILL,
    Canvas,
    Furniture,
    Orientation,
    markdown_lines,
    shown_time,
)


class PdfOptions(WriterOptions):
    """Options of the ``pdf`` output: paper, orientation ("auto" turns pages for wide tables) and row limit."""

    format: Literal["pdf"] = "pdf"
    page_size: Literal["A4", "Letter"] = "A4"
    orientation: Literal["portrait", "landscape", "auto"] = "auto"
    max_rows: int | None = Field(default=1000, ge=1)


def rows_per_page(page_size: str) -> int:
    """How many single-line table rows a portrait page holds below a table's header row."""
    from fpdf.fpdf import PAGE_FORMATS

    from reportctl.writers.pdf_table import ROW_HEIGHT

    height = PAGE_FORMATS[page_size.lower()][1] * 25.4 / 72
    room = height - MARGIN_TOP - MARGIN_BOTTOM - 2 * ROW_HEIGHT
    return max(1, int(room // ROW_HEIGHT))


class PdfWriter:
    """Writes ``<report>.pdf``; charts come from ``Document.chart_images`` as PNG."""

    PLUGIN_NAME: ClassVar[str] = "pdf"
    CPU_BOUND: ClassVar[bool] = True
    """Pure Python that holds the GIL: a large run writes it in a process of its own beside other such writers."""
    CHART_IMAGES: ClassVar[frozenset[str]] = frozenset({"png"})
    Options: ClassVar[type[WriterOptions]] = PdfOptions

    def __init__(self, options: Any = None) -> None:
        valid = isinstance(options, PdfOptions)
        self.options: PdfOptions = options if valid else PdfOptions.model_validate(options or {})

    def write(self, document: Document, directory: Path) -> list[Path]:
        """Write ``<report name>.pdf`` into ``directory``."""

        path = directory / f"{document.info.name}.pdf"
        _check_chart_images(document)
        with writing(path, "pdf"):
            data = render_pdf(document, self.options)
            path.write_bytes(data)
        return [path]


def _check_chart_images(document: Document) -> None:
    for chart in document.charts():
        image = document.chart_images.get(chart.id)
        if image is None or image.png is None:
            raise RenderError(
                f"pdf: chart '{chart.id}' has no PNG image; the run must export charts as png "
                f"for the pdf output (PdfWriter.CHART_IMAGES)"
            )


def render_pdf(document: Document, options: PdfOptions) -> bytes:
    """The PDF's bytes for ``document``."""
    info = document.info
    generated = shown_time(info.generated_at, info.timezone)
    furniture = Furniture(info.title.replace("\n", " "), generated, info.name)
    base: Orientation = "L" if options.orientation == "landscape" else "P"
    canvas = Canvas(options.page_size, base, furniture, info.generated_at, document.style)
    pdf = canvas.pdf
    pdf.set_title(info.title.replace("\n", " "))
    pdf.set_creator("reportctl")
    if info.owner:
        pdf.set_author(info.owner)
    if info.description:
        pdf.set_subject(info.description)
    canvas.new_page(base)
    _title_block(canvas, document, generated)
    for block in document.blocks:
        if isinstance(block, PlaceholderBlock):
            _placeholder(canvas, block)
        elif isinstance(block, TextBlock):
            _text(canvas, block)
        elif isinstance(block, KpiBlock):
            _kpis(canvas, block, info.timezone, document.style.locale)
        elif isinstance(block, TableBlock):
            _table(canvas, block, options, document)
        elif isinstance(block, ChartBlock):
            _chart(canvas, block, document)
    return canvas.output()


def _title_block(canvas: Canvas, document: Document, generated: str) -> None:
    info, pdf = document.info, canvas.pdf
    pdf.set_y(pdf.t_margin + 4)
    title_width = canvas.width
    if canvas.logo is not None:
        title_width -= _logo(canvas) + 6
    canvas.font("B", 22, INK)
    canvas.multi_cell(title_width, 9.5, info.title, align="L")
    if info.description:
        pdf.ln(1.5)
        canvas.font("", 10.5, MUTED)
        canvas.multi_cell(canvas.width, 5.2, info.description, align="L")
    pdf.ln(4)
    pdf.set_fill_color(*canvas.accent)
    pdf.rect(canvas.left, canvas.y, 18, 1.1, style="F")
    pdf.ln(5)
    facts = [(p.label, parameter_text(p, info.timezone, document.style.locale)) for p in document.parameters]
    facts.append(("Generated", generated))
    if info.owner:
        facts.append(("Owner", info.owner))
    if info.version:
        facts.append(("Version", info.version))
    label_width = max(canvas.metrics.width(label, "B", 8) for label, _ in facts) + 6
    for label, value in facts:
        y = canvas.y
        canvas.font("B", 8, MUTED)
        canvas.draw_text(canvas.left, y + 3.4, label, "B", 8)
        canvas.font("", 9, INK)
        pdf.set_xy(canvas.left + label_width, y)
        canvas.multi_cell(canvas.width - label_width, 4.8, value, align="L")
    pdf.ln(5)


def _text(canvas: Canvas, block: TextBlock) -> None:
    pdf = canvas.pdf
    canvas.need(22 if block.title else 10)
    if block.title:
        canvas.heading(block.title)
    lines = markdown_lines(block.markdown)
    for index, line in enumerate(lines):
        previous = lines[index - 1].kind if index else ""
        if line.kind == "heading":
            canvas.need(12)
            canvas.font("B", 10, INK)
            canvas.multi_cell(canvas.width, 5.4, line.text, markdown=True, align="L")
            pdf.ln(0.8)
            continue
        canvas.font("", 9.5, INK)
        if line.kind == "bullet":
            indent = 5.5
            canvas.need(5)
            y = canvas.y
            pdf.set_text_color(*canvas.accent)
            canvas.draw_text(canvas.left + 1, y + 3.6, line.marker, "", 9.5)
            pdf.set_text_color(*INK)
            pdf.set_xy(canvas.left + indent, y)
            canvas.multi_cell(canvas.width - indent, 5, line.text, markdown=True, align="L")
            pdf.ln(0.8)
        else:
            if previous == "bullet":
                pdf.ln(1.4)
            canvas.multi_cell(canvas.width, 5, line.text, markdown=True, align="L")
            pdf.ln(2.2)
    pdf.ln(2)


def _placeholder(canvas: Canvas, block: PlaceholderBlock) -> None:
    """A section that could not be rendered: its heading, then what failed in a tinted box with a warning bar."""
    pdf = canvas.pdf
    if block.title:
        canvas.need(30)
        canvas.heading(block.title)
    pad, bar = 3.0, 1.2
    inner = canvas.width - 2 * pad - bar
    canvas.font("", 9.5, INK)
    text = " ".join(line.text for line in markdown_lines(block.markdown))
    lines = pdf.multi_cell(inner, 5, text, markdown=True, dry_run=True, output="LINES")
    height = 5 * len(lines) + 2 * pad
    canvas.need(height + 4)
    top = canvas.y
    pdf.set_fill_color(*WARNING_FILL)
    pdf.rect(canvas.left, top, canvas.width, height, style="F")
    pdf.set_fill_color(*WARNING)
    pdf.rect(canvas.left, top, bar, height, style="F")
    margin = canvas.left  # the page's left margin: canvas.left reads it, so keep it before moving it
    pdf.set_left_margin(margin + bar + pad)  # multi_cell returns to the left margin after each line
    pdf.set_xy(margin + bar + pad, top + pad)
    try:
        canvas.multi_cell(inner, 5, text, markdown=True, align="L")
    finally:
        pdf.set_left_margin(margin)
    pdf.set_y(top + height + 4)


def _logo(canvas: Canvas) -> float:
    """The theme's logo at the top right of the first page, at most 14 mm high and 45 mm wide; its width."""
    pdf, logo = canvas.pdf, canvas.logo
    assert logo is not None
    from fpdf.image_parsing import preload_image

    with warnings.catch_warnings():  # fpdf2 warns of an SVG without a viewBox, which its width and height settle
        warnings.simplefilter("ignore", UserWarning)
        info = preload_image(pdf.image_cache, str(logo))[2]
        aspect = float(info.width) / float(info.height) if info.height else 1.0
        width = min(14.0 * aspect, 45.0)
        pdf.image(str(logo), x=canvas.left + canvas.width - width, y=pdf.t_margin + 2, w=width, h=width / aspect)
    return width


def _kpis(canvas: Canvas, block: KpiBlock, timezone: str, locale: str) -> None:
    """Cards of four to a row; labels wrap onto up to three lines and notes up to five, and a row's cards grow to its
    tallest, so nothing a reader needs is cut."""
    pdf, metrics = canvas.pdf, canvas.metrics
    per_row = min(4, max(1, len(block.items)))
    gap = 4.0
    width = (canvas.width - gap * (per_row - 1)) / per_row
    room = width - 8
    cards = [
        (
            metrics.wrap(item.label.upper(), "", 7.5, room, 3),
            kpi_text(item, timezone, locale),
            metrics.wrap(item.description, "", 7, room, 5) if item.description else [],
        )
        for item in block.items
    ]
    first = True
    for start in range(0, len(cards), per_row):
        row = cards[start : start + per_row]
        label_lines = max(len(label) for label, _, _ in row)
        note_lines = max(len(note) for _, _, note in row)
        height = 13.0 + label_lines * _KPI_LABEL_LEADING + note_lines * _KPI_NOTE_LEADING + (1.5 if note_lines else 0)
        canvas.need((10.5 + 3 if block.title and first else 0) + height + 4)
        if block.title and first:
            canvas.heading(block.title)
        first = False
        y = canvas.y
        for index, (label, value, note) in enumerate(row):
            x = canvas.left + index * (width + gap)
            pdf.set_fill_color(*CARD_FILL)
            pdf.rect(x, y, width, height, style="F")
            pdf.set_fill_color(*canvas.accent)
            pdf.rect(x, y, 1.1, height, style="F")
            canvas.font("", 7.5, MUTED)
            for number, line in enumerate(label):
                canvas.draw_text(x + 5, y + 6 + number * _KPI_LABEL_LEADING, line, "", 7.5)
            baseline = y + 6 + (label_lines - 1) * _KPI_LABEL_LEADING + 8.5
            size = 17.0
            while size > 9 and metrics.width(value, "B", size) > room:
                size -= 1
            canvas.font("B", size, INK if value != MISSING else MUTED)
            canvas.draw_text(x + 5, baseline, metrics.fit(value, "B", size, room)[0], "B", size)
            canvas.font("", 7, MUTED)
            for number, line in enumerate(note):
                canvas.draw_text(x + 5, baseline + 6 + number * _KPI_NOTE_LEADING, line, "", 7)
        pdf.set_y(y + height + 4)
    pdf.ln(2)


_KPI_LABEL_LEADING = 3.4
_KPI_NOTE_LEADING = 3.2


def _table(canvas: Canvas, block: TableBlock, options: PdfOptions, document: Document) -> None:
    from reportctl.writers import pdf_table

    pdf, formats = canvas.pdf, document.formats
    limit = block.max_rows if block.max_rows is not None else options.max_rows
    text = pdf_table.table_text(block, limit, document.info.timezone, document.style.locale)
    title_height = 13.5 if block.title else 0
    if text.shown_rows == 0 or not text.columns:
        canvas.need(title_height + 8)
        if block.title:
            canvas.heading(block.title)
        canvas.font("I", 9, MUTED)
        canvas.multi_cell(canvas.width, 5, block.empty_message, align="L")
        pdf.ln(4)
        return
    widths = pdf_table.measure(text, canvas.metrics)
    orientation = pdf_table.choose_orientation(widths, canvas, options.orientation)
    fitted = widths.distribute(canvas.page_width(orientation))
    first_rows = min(text.shown_rows, 3) * pdf_table.ROW_HEIGHT
    canvas.need(title_height + pdf_table.header_height_for(canvas, text, fitted) + first_rows, orientation)
    if block.title:
        canvas.heading(block.title)
    pdf_table.draw_table(canvas, text, fitted)
    notes = [n for n in (rows_note(text.shown_rows, text.total_rows, formats), *column_notes(block)) if n]
    if notes:
        canvas.font("I", 7.5, MUTED)
        pdf.set_y(canvas.y + 0.5)
        for note in notes:
            canvas.multi_cell(canvas.width, 4, note, align="L")
    pdf.ln(5)


SHRINK_TO_FIT = 0.6
"""A chart is drawn smaller to fit the rest of a page when at least this share of its height fits there."""


def _chart(canvas: Canvas, block: ChartBlock, document: Document) -> None:
    image = document.chart_images[block.id]
    pdf = canvas.pdf
    title_height = 13.5 if block.title else 0
    ratio = image.height / image.width if image.width else 0.5
    page_room = canvas.bottom - pdf.t_margin - title_height - 2
    width = min(canvas.page_width(canvas.base_orientation), page_room / ratio)
    height = width * ratio
    # Rather than leave the rest of a page empty, a chart most of whose height fits there is drawn a little smaller.
    left_here = canvas.bottom - canvas.y - title_height - 2
    if canvas.orientation() == canvas.base_orientation and height * SHRINK_TO_FIT <= left_here < height:
        width, height = left_here / ratio, left_here
    canvas.need(title_height + height + 2)
    if block.title:
        canvas.heading(block.title)
    x = canvas.left + (canvas.width - width) / 2
    y = canvas.y
    pdf.image(BytesIO(image.png or b""), x=x, y=y, w=width, h=height)
    pdf.set_y(y + height + 6)
