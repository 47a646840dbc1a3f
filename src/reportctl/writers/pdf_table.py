"""Tables in the PDF: cell text formatted once, columns fitted to the page, rows drawn with fpdf2's primitives.

fpdf2's ``table()`` and ``cell()`` are far too slow for thousands of rows, so rows are drawn with ``rect`` and
``text`` at computed positions, with this module's own page breaks (a header row on every page). Text wider than
its column wraps at spaces onto up to three lines (the row grows); only what is left after that is cut with an
ellipsis. Numbers and dates are never cut: their columns are as wide as their widest value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reportctl.document import TableBlock
from reportctl.formats import DEFAULT_LOCALE, ColumnFormat
from reportctl.writers.display import column_display_format
from reportctl.writers.pdf_canvas import (
    HEADER_FILL,
    INK,
    RULE,
    STRIPE,
    Canvas,
    FontMetrics,
    Orientation,
)

if TYPE_CHECKING:
    import polars as pl

BODY_SIZE = 7.8
HEADER_SIZE = 7.4
PAD = 1.6
ROW_HEIGHT = 5.0
LINE_HEIGHT = 3.3
"""The extra height of each further line of a wrapped cell."""
MAX_CELL_LINES = 3
WIDE_TABLE_COLUMNS = 6
"""A table this many columns wide that portrait cannot show whole turns landscape in "auto" orientation."""
HEADER_LINE = 3.4
SAMPLE_ROWS = 400
MIN_TEXT_WIDTH = 18.0
SHORT_TEXT_WIDTH = 26.0
"""Text columns up to this wide (mm) are never cut; wider ones may shrink to MIN_TEXT_WIDTH."""
_RIGHT_KINDS = frozenset({"number", "integer", "percent", "currency", "bytes", "duration"})


@dataclass
class TableText:
    """A table's displayed rows as text, column by column, before fitting to widths."""

    labels: list[str]
    columns: list[list[str]]
    right: list[bool]
    rigid: list[bool]
    """Columns whose text should not be cut (numbers, dates): their minimum width is their content's."""
    total_rows: int

    @property
    def shown_rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0


def table_text(table: TableBlock, max_rows: int | None, timezone: str, locale: str = DEFAULT_LOCALE) -> TableText:
    """Every shown cell formatted once with its column's format (distinct values formatted once)."""
    import polars as pl

    frame = table.frame
    names = [c.name for c in table.columns] or list(frame.columns)
    labels = [c.label for c in table.columns] or names
    formats = {c.name: c.format for c in table.columns}
    shown = frame.head(max_rows) if max_rows is not None else frame
    columns: list[list[str]] = []
    right: list[bool] = []
    rigid: list[bool] = []
    for name in names:
        series = shown.get_column(name)
        spec = formats.get(name)
        fmt = column_display_format(spec, frame, name)
        columns.append(_formatted(series, fmt, timezone, locale))
        right.append(series.dtype.is_numeric() or fmt.kind in _RIGHT_KINDS)
        rigid.append(right[-1] or series.dtype.is_temporal() or series.dtype == pl.Boolean)
    return TableText(labels, columns, right, rigid, frame.height)


def _formatted(series: pl.Series, fmt: ColumnFormat, timezone: str, locale: str) -> list[str]:
    """The column's values as one-line text, each distinct value formatted once."""
    text = fmt.formatter(series.dtype, timezone, locale)
    values = series.to_list()
    if series.dtype.is_nested() or series.dtype.is_object():  # lists and dicts cannot be looked up: each formatted
        return [text(value).replace("\n", " ") for value in values]
    shown = {value: text(value).replace("\n", " ") for value in dict.fromkeys(values)}
    return [shown[value] for value in values]


@dataclass
class ColumnWidths:
    natural: list[float]
    minimum: list[float]

    def fits(self, room: float) -> bool:
        return sum(self.minimum) <= room

    def distribute(self, room: float) -> list[float]:
        """Widths that fill ``room``: natural widths grown or shrunk (not below minimum unless they must)."""
        natural, minimum = self.natural, self.minimum
        total = sum(natural)
        if total <= room:
            # Narrow tables grow by at most half, so that two columns do not end up a page apart.
            grow = min(room / total, 1.5) if total * 1.5 < room * 0.75 else room / total
            return [w * grow for w in natural]
        if sum(minimum) <= room:
            slack = total - sum(minimum)
            share = (room - sum(minimum)) / slack if slack else 0
            return [m + (n - m) * share for n, m in zip(natural, minimum, strict=True)]
        return [m * room / sum(minimum) for m in minimum]


def measure(text: TableText, metrics: FontMetrics) -> ColumnWidths:
    """Natural and minimum column widths from the labels and a sample of the rows."""
    rows = text.shown_rows
    step = max(1, rows // SAMPLE_ROWS)
    natural: list[float] = []
    minimum: list[float] = []
    for label, cells, rigid in zip(text.labels, text.columns, text.rigid, strict=True):
        sample = cells[::step]
        content = max((metrics.width(s, "", BODY_SIZE) for s in sample), default=0.0) + 2 * PAD
        words = label.split() or [""]
        header = metrics.width(label, "B", HEADER_SIZE) + 2 * PAD
        word = max(metrics.width(w, "B", HEADER_SIZE) for w in words) + 2 * PAD
        natural.append(max(content, min(header, max(word, 28.0))))
        floor = content if rigid or content <= SHORT_TEXT_WIDTH else MIN_TEXT_WIDTH
        minimum.append(max(min(floor, 40.0), min(word, 24.0)))
    return ColumnWidths(natural, minimum)


def choose_orientation(widths: ColumnWidths, canvas: Canvas, wanted: str) -> Orientation:
    """The page orientation for the table. In "auto" mode: portrait when it holds the columns at their natural
    widths; landscape when that does; and for a table too wide for either, landscape when it has many columns or
    portrait cannot hold their minimum widths (a few long text columns wrap as well in portrait)."""
    if wanted == "landscape":
        return "L"
    if wanted == "portrait":
        return "P"
    portrait, landscape = canvas.page_width("P"), canvas.page_width("L")
    natural = sum(widths.natural)
    if natural <= portrait:
        return "P"
    if natural <= landscape or len(widths.natural) >= WIDE_TABLE_COLUMNS or not widths.fits(portrait):
        return "L"
    return "P"


def _wrap(label: str, metrics: FontMetrics, room: float, lines: int = 3) -> list[str]:
    """A header label word-wrapped into at most ``lines`` lines, the last cut with an ellipsis."""
    result: list[str] = []
    for word in label.split():
        if result and metrics.width(f"{result[-1]} {word}", "B", HEADER_SIZE) <= room:
            result[-1] = f"{result[-1]} {word}"
        else:
            result.append(word)
    if len(result) > lines:
        result = [*result[: lines - 1], " ".join(result[lines - 1 :])]
    return [metrics.fit(line, "B", HEADER_SIZE, room)[0] for line in result] or [""]


def draw_table(canvas: Canvas, text: TableText, widths: list[float]) -> None:
    """Draw the header and rows from the cursor on, breaking pages between rows and repeating the header."""
    pdf, metrics = canvas.pdf, canvas.metrics
    left = canvas.left
    total = sum(widths)
    xs = [left + sum(widths[:i]) for i in range(len(widths))]
    header = [_wrap(label, metrics, w - 2 * PAD) for label, w in zip(text.labels, widths, strict=True)]
    header_height = max(len(lines) for lines in header) * HEADER_LINE + 2.6

    cells, heights = _fit_cells(text, widths, metrics)

    def draw_header(y: float) -> float:
        pdf.set_fill_color(*HEADER_FILL)
        pdf.rect(left, y, total, header_height, style="F")
        canvas.font("B", HEADER_SIZE, INK)
        for lines, x, w, right in zip(header, xs, widths, text.right, strict=True):
            top = y + header_height - 1.6 - (len(lines) - 1) * HEADER_LINE
            for index, line in enumerate(lines):
                dx = w - PAD - metrics.width(line, "B", HEADER_SIZE) if right else PAD
                canvas.draw_text(x + dx, top + index * HEADER_LINE, line, "B", HEADER_SIZE)
        canvas.font("", BODY_SIZE, INK)
        pdf.set_fill_color(*STRIPE)
        return y + header_height

    bottom = canvas.bottom
    y = draw_header(canvas.y)
    baseline = ROW_HEIGHT / 2 + BODY_SIZE * 0.3528 * 0.36
    text_at = pdf.text
    columns = list(zip(xs, cells, strict=True))
    for row in range(text.shown_rows):
        height = heights[row]
        if y + height > bottom:
            canvas.rule(y, RULE, 0.3, left)
            canvas.new_page()
            bottom = canvas.bottom
            y = draw_header(canvas.y)
        if row % 2:
            pdf.rect(left, y, total, height, style="F")
        base = y + baseline
        for x, fitted_column in columns:
            value, dx, plain = fitted_column[row]
            if plain:
                text_at(x + dx, base, value)
            elif isinstance(value, str):
                if value:
                    canvas.draw_text(x + dx, base, value, "", BODY_SIZE)
            else:
                for number, line in enumerate(value):
                    canvas.draw_text(x + dx, base + number * LINE_HEIGHT, line, "", BODY_SIZE)
        y += height
    canvas.rule(y, RULE, 0.3, left)
    pdf.set_y(y + 1.5)


Cell = tuple[str | tuple[str, ...], float, bool]
"""A cell as drawn: (text, x offset in its column, plain) on one line, plain when the text font has all its
glyphs (drawn with one ``text()``); or (lines, offset, False) when it wraps."""


def _fit_cells(text: TableText, widths: list[float], metrics: FontMetrics) -> tuple[list[list[Cell]], list[float]]:
    """Every shown cell fitted to its column (each distinct value once), and each row's height."""
    cells: list[list[Cell]] = []
    heights = [ROW_HEIGHT] * text.shown_rows
    for column, width, right in zip(text.columns, widths, text.right, strict=True):
        room = width - 2 * PAD
        fitted = {
            value: (value, width - PAD - text_width if right else PAD, bool(value) and covered)
            if text_width <= room
            else _overflowing(value, text_width, metrics, width, right)
            for value, (text_width, covered) in metrics.measured(dict.fromkeys(column), "", BODY_SIZE).items()
        }
        wrapped = {value: len(cell[0]) for value, cell in fitted.items() if not isinstance(cell[0], str)}
        if wrapped:
            for row, value in enumerate(column):
                if value in wrapped:
                    heights[row] = max(heights[row], ROW_HEIGHT + (wrapped[value] - 1) * LINE_HEIGHT)
        cells.append([fitted[value] for value in column])
    return cells, heights


def _overflowing(value: str, text_width: float, metrics: FontMetrics, width: float, right: bool) -> Cell:
    """A text wider than its column: up to three wrapped lines when it is words (not a number), else one line cut
    with an ellipsis, at its offset."""
    room = width - 2 * PAD
    if not right and " " in value.strip():
        lines = metrics.wrap(value, "", BODY_SIZE, room, MAX_CELL_LINES)
        if len(lines) > 1:
            return tuple(lines), PAD, False
    value, text_width = metrics.fit(value, "", BODY_SIZE, room)
    return value, width - PAD - text_width if right else PAD, bool(value) and metrics.covered(value)


def header_height_for(canvas: Canvas, text: TableText, widths: list[float]) -> float:
    """The height of the header row at these widths, for keeping a heading with the first rows."""
    lines = [_wrap(label, canvas.metrics, w - 2 * PAD) for label, w in zip(text.labels, widths, strict=True)]
    return max((len(x) for x in lines), default=1) * HEADER_LINE + 2.6
