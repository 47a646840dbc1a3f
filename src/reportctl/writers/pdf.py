"""The PDF writer: ``<report>.pdf``, a paginated report for people, drawn with fpdf2 and the shipped fonts.

Page 1 opens with a title block (title, description, parameters, run time); every page has a header (title,
run time) and a "Page X of Y" footer. Text sections take simple Markdown, KPIs become cards, tables are fitted
to the page (landscape for wide ones in "auto" orientation), charts are the run's exported PNGs. The same
document gives byte-identical bytes: the creation date and file ID derive from ``generated_at`` and content.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from reportctl.document import ChartBlock, Document, KpiBlock, TableBlock, TextBlock
from reportctl.errors import RenderError
from reportctl.formats import parse_format
from reportctl.writers.base import WriterOptions, writing
from reportctl.writers.display import parameter_text, rows_note
from reportctl.writers.pdf_canvas import (
    ACCENT,
    CARD_FILL,
    INK,
    MUTED,
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


class PdfWriter:
    """Writes ``<report>.pdf``; charts come from ``Document.chart_images`` as PNG."""

    PLUGIN_NAME: ClassVar[str] = "pdf"
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
    canvas = Canvas(options.page_size, base, furniture, info.generated_at)
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
        if isinstance(block, TextBlock):
            _text(canvas, block)
        elif isinstance(block, KpiBlock):
            _kpis(canvas, block, info.timezone)
        elif isinstance(block, TableBlock):
            _table(canvas, block, options, info.timezone, document.formats)
        elif isinstance(block, ChartBlock):
            _chart(canvas, block, document)
    return canvas.output()


def _title_block(canvas: Canvas, document: Document, generated: str) -> None:
    info, pdf = document.info, canvas.pdf
    pdf.set_y(pdf.t_margin + 4)
    canvas.font("B", 22, INK)
    pdf.multi_cell(canvas.width, 9.5, info.title, new_x="LMARGIN", new_y="NEXT", align="L")
    if info.description:
        pdf.ln(1.5)
        canvas.font("", 10.5, MUTED)
        pdf.multi_cell(canvas.width, 5.2, info.description, new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.ln(4)
    pdf.set_fill_color(*ACCENT)
    pdf.rect(canvas.left, canvas.y, 18, 1.1, style="F")
    pdf.ln(5)
    facts = [(p.label, parameter_text(p, info.timezone)) for p in document.parameters]
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
        pdf.multi_cell(canvas.width - label_width, 4.8, value, new_x="LMARGIN", new_y="NEXT", align="L")
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
            pdf.multi_cell(canvas.width, 5.4, line.text, markdown=True, new_x="LMARGIN", new_y="NEXT", align="L")
            pdf.ln(0.8)
            continue
        canvas.font("", 9.5, INK)
        if line.kind == "bullet":
            indent = 5.5
            canvas.need(5)
            y = canvas.y
            pdf.set_text_color(*ACCENT)
            canvas.draw_text(canvas.left + 1, y + 3.6, line.marker, "", 9.5)
            pdf.set_text_color(*INK)
            pdf.set_xy(canvas.left + indent, y)
            pdf.multi_cell(canvas.width - indent, 5, line.text, markdown=True, new_x="LMARGIN", new_y="NEXT", align="L")
            pdf.ln(0.8)
        else:
            if previous == "bullet":
                pdf.ln(1.4)
            pdf.multi_cell(canvas.width, 5, line.text, markdown=True, new_x="LMARGIN", new_y="NEXT", align="L")
            pdf.ln(2.2)
    pdf.ln(2)


def _kpis(canvas: Canvas, block: KpiBlock, timezone: str) -> None:
    pdf, metrics = canvas.pdf, canvas.metrics
    per_row = min(4, max(1, len(block.items)))
    gap = 4.0
    width = (canvas.width - gap * (per_row - 1)) / per_row
    has_notes = any(item.description for item in block.items)
    height = 24.0 if has_notes else 19.0
    canvas.need((10.5 + 3 if block.title else 0) + height + 4)
    if block.title:
        canvas.heading(block.title)
    for start in range(0, len(block.items), per_row):
        canvas.need(height + 4)
        y = canvas.y
        for index, item in enumerate(block.items[start : start + per_row]):
            x = canvas.left + index * (width + gap)
            pdf.set_fill_color(*CARD_FILL)
            pdf.rect(x, y, width, height, style="F")
            pdf.set_fill_color(*ACCENT)
            pdf.rect(x, y, 1.1, height, style="F")
            room = width - 8
            canvas.font("", 7.5, MUTED)
            label = metrics.fit(item.label.upper(), "", 7.5, room)[0]
            canvas.draw_text(x + 5, y + 6, label, "", 7.5)
            value = parse_format(item.format).format(item.value, timezone)
            size = 17.0
            while size > 9 and metrics.width(value, "B", size) > room:
                size -= 1
            canvas.font("B", size, INK)
            canvas.draw_text(x + 5, y + 14.5, metrics.fit(value, "B", size, room)[0], "B", size)
            if item.description:
                canvas.font("", 7, MUTED)
                note = metrics.fit(item.description, "", 7, room)[0]
                canvas.draw_text(x + 5, y + 20.5, note, "", 7)
        pdf.set_y(y + height + 4)
    pdf.ln(2)


def _table(canvas: Canvas, block: TableBlock, options: PdfOptions, timezone: str, formats: tuple[str, ...]) -> None:
    from reportctl.writers import pdf_table

    pdf = canvas.pdf
    limit = block.max_rows if block.max_rows is not None else options.max_rows
    text = pdf_table.table_text(block, limit, timezone)
    title_height = 13.5 if block.title else 0
    if text.shown_rows == 0 or not text.columns:
        canvas.need(title_height + 8)
        if block.title:
            canvas.heading(block.title)
        canvas.font("I", 9, MUTED)
        pdf.multi_cell(canvas.width, 5, block.empty_message, new_x="LMARGIN", new_y="NEXT", align="L")
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
    note = rows_note(text.shown_rows, text.total_rows, formats)
    if note:
        canvas.font("I", 7.5, MUTED)
        pdf.set_y(canvas.y + 0.5)
        pdf.multi_cell(canvas.width, 4, note, new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.ln(5)


def _chart(canvas: Canvas, block: ChartBlock, document: Document) -> None:
    image = document.chart_images[block.id]
    pdf = canvas.pdf
    title_height = 13.5 if block.title else 0
    ratio = image.height / image.width if image.width else 0.5
    page_room = canvas.bottom - pdf.t_margin - title_height - 2
    width = min(canvas.page_width(canvas.base_orientation), page_room / ratio)
    height = width * ratio
    canvas.need(title_height + height + 2)
    if block.title:
        canvas.heading(block.title)
    x = canvas.left + (canvas.width - width) / 2
    y = canvas.y
    pdf.image(BytesIO(image.png or b""), x=x, y=y, w=width, h=height)
    pdf.set_y(y + height + 6)
