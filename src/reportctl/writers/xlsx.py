"""The Excel writer: ``<report>.xlsx`` with a Summary sheet, a sheet per table and a sheet per native chart.

Cells hold native values (numbers, dates as date serials, booleans) with number formats from the column
formats (see ``xlsx_cells``); formula columns are Excel formulas over the same row with the computed values
cached (see ``xlsx_formula``), so the file shows values at once and recalculates when an input changes. Large
tables are written in xlsxwriter's constant-memory mode, row by row. Same document, byte-identical file: the
only time inside is ``generated_at``, and xlsxwriter dates zip members 1980-01-31.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from reportctl.document import ChartBlock, Document, KpiBlock, Period, Style, TableBlock, TextBlock
from reportctl.errors import RenderError
from reportctl.fonts import font_family
from reportctl.formats import float_format, parse_format
from reportctl.writers.base import WriterOptions, writing
from reportctl.writers.display import MISSING
from reportctl.writers.xlsx_cells import (
    BOOLEAN_FORMAT,
    SheetNames,
    column_format,
    column_values,
    local_naive,
    number_format,
    scalar_cell,
    utc_naive,
)
from reportctl.writers.xlsx_formula import ExcelFormula, UntranslatableFormula, formula_worksheet, translate_formula

AUTO_CONSTANT_MEMORY_ROWS = 50_000
"""With ``constant_memory: auto``, the workbook streams rows when any table has more rows than this."""
MAX_DATA_ROWS = 1_048_575
_WIDTH_SAMPLE_ROWS = 200
_MAX_WIDTH = 60
_HEADER = {"bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": False, "valign": "top"}


class XlsxOptions(WriterOptions):
    """Options of the ``xlsx`` output: ``constant_memory`` streams rows (auto: for tables above 50,000 rows)."""

    format: Literal["xlsx"] = "xlsx"
    constant_memory: Literal["auto"] | bool = "auto"


class XlsxWriter:
    """Writes ``<report>.xlsx``: Summary, then one sheet per table or chart in document order."""

    PLUGIN_NAME: ClassVar[str] = "xlsx"
    CPU_BOUND: ClassVar[bool] = True
    """Pure Python that holds the GIL: a large run writes it in a process of its own beside other such writers."""
    CHART_IMAGES: ClassVar[frozenset[str]] = frozenset()
    Options: ClassVar[type[WriterOptions]] = XlsxOptions

    def __init__(self, options: Any = None) -> None:
        valid = isinstance(options, XlsxOptions)
        self.options: XlsxOptions = options if valid else XlsxOptions.model_validate(options or {})

    def constant_memory(self, document: Document) -> bool:
        """Whether this document is written in constant-memory mode."""
        if self.options.constant_memory != "auto":
            return self.options.constant_memory
        return any(t.frame.height > AUTO_CONSTANT_MEMORY_ROWS for t in document.tables())

    def write(self, document: Document, directory: Path) -> list[Path]:
        """Write ``<report name>.xlsx`` into ``directory``."""

        path = directory / f"{document.info.name}.xlsx"
        with writing(path, "xlsx"):
            _write_workbook(document, path, self.constant_memory(document))
        return [path]


class _Formats:
    """Workbook cell formats, one per number format code, created on first use, in the theme's font and with
    its accent colour on table headers."""

    def __init__(self, workbook: Any, style: Style) -> None:
        self.workbook = workbook
        self.cache: dict[str, Any] = {}
        self.font = {"font_name": font_family(style.font)} if style.font else {}
        self.header = dict(_HEADER)
        if style.accent:
            self.header |= {"bg_color": style.accent, "font_color": readable_on(style.accent)}
        self.heading = {"font_color": style.accent} if style.accent else {}

    def __call__(self, code: str) -> Any:
        if code not in self.cache:
            if code == "header":
                properties: dict[str, Any] = self.header
            elif code in ("title", "heading"):
                properties = {"bold": True, "font_size": 16 if code == "title" else 12, **self.heading}
            elif code == "missing":
                properties = {"align": "right", "font_color": "#6c757d"}
            elif code in ("bold", "italic", "bold italic"):
                properties = {"bold": "bold" in code, "italic": "italic" in code}
            elif code == "code":
                properties = {"font_name": "Consolas"}
            else:
                properties = {"num_format": code}
            self.cache[code] = self.workbook.add_format({**self.font, **properties})
        return self.cache[code]


def readable_on(background: str) -> str:
    """Black or white, whichever reads better on the #rrggbb ``background`` (WCAG relative luminance)."""
    channels = [int(background[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#000000" if luminance > 0.179 else "#FFFFFF"


def _write_workbook(document: Document, path: Path, constant_memory: bool) -> None:
    import xlsxwriter

    for table in document.tables():
        if table.frame.height > MAX_DATA_ROWS:
            raise RenderError(
                f"xlsx: table '{table.id}' has {table.frame.height:,} rows; an Excel sheet holds at most "
                f"{MAX_DATA_ROWS:,} below its header. Filter or aggregate it, or use the csv output"
            )
    options = {
        "constant_memory": constant_memory,
        # Parts built in memory, not as temporary files (14 a workbook, ~1 ms each to create and remove here);
        # streaming rows needs the files, so a constant-memory workbook keeps them.
        "in_memory": not constant_memory,
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
    }
    workbook = xlsxwriter.Workbook(str(path), options)
    info = document.info
    workbook.set_properties(
        {
            "title": info.title,
            "subject": info.description or "",
            "author": info.owner or "reportctl",
            "comments": f"{info.name} {info.spec_hash}",
            "created": utc_naive(info.generated_at),
        }
    )
    formats = _Formats(workbook, document.style)
    names = SheetNames()
    sheet_class = formula_worksheet()
    _write_summary(workbook.add_worksheet(names.claim("Summary", "Summary"), sheet_class), document, formats)
    from reportctl.writers.xlsx_charts import write_chart_sheet

    for block in document.blocks:
        if isinstance(block, TableBlock):
            sheet = workbook.add_worksheet(names.claim(block.title or block.id, block.id), sheet_class)
            _write_table(sheet, block, document, formats)
        elif isinstance(block, ChartBlock):
            name = names.claim(block.title or block.id, block.id)
            write_chart_sheet(workbook, name, block, info.timezone, formats, document.style.locale)
    workbook.close()


Runs = tuple[tuple[str, str], ...]
"""A line of formatted text: (style, text) pieces, style one of "", "bold", "italic", "bold italic", "code"."""


def _summary_rows(document: Document) -> Iterator[tuple[str | Runs, Any, str | None, str | None]]:
    """(label, value, number format, style) rows of the Summary sheet, top to bottom; a text section's lines
    come as runs of formatted text."""
    info, tz = document.info, document.info.timezone
    notes_heading = False  # untitled text sections share one "Notes" heading
    yield info.title, None, None, "title"
    if info.description:
        yield info.description, None, None, None
    if document.parameters:
        yield "", None, None, None
        yield "Parameters", None, None, "heading"
    for parameter in document.parameters:
        if isinstance(parameter.value, Period):
            yield f"{parameter.label} (from)", local_naive(parameter.value.start, tz), "yyyy-mm-dd hh:mm", None
            yield f"{parameter.label} (last day)", parameter.value.last_day, "yyyy-mm-dd", None
        else:
            value, code = scalar_cell(parameter.value, tz)
            yield parameter.label, value, code, None
    for block in document.blocks:
        if isinstance(block, KpiBlock):
            yield "", None, None, None
            yield block.title or "Key figures", None, None, "heading"
            for item in block.items:
                value, code = scalar_cell(item.value, tz)
                if value is None:
                    value, code = MISSING, "missing"
                elif isinstance(value, bool):
                    value, code = int(value), BOOLEAN_FORMAT
                elif item.format and isinstance(value, int | float):
                    code = number_format(parse_format(item.format), None, document.style.locale)
                elif isinstance(value, float):
                    code = number_format(float_format(value))
                yield item.label, value, code, None
        elif isinstance(block, TextBlock):
            yield "", None, None, None
            if block.title or not notes_heading:
                yield block.title or "Notes", None, None, "heading"
                notes_heading = notes_heading or not block.title
            for line in markdown_lines(block.markdown):
                yield line, None, None, None
    yield "", None, None, None
    yield "Run", None, None, "heading"
    yield "Generated at", local_naive(info.generated_at, tz), "yyyy-mm-dd hh:mm:ss", None
    for label, text in (
        ("Time zone", info.timezone),
        ("Report", info.name),
        ("Version", info.version),
        ("Owner", info.owner),
        ("Spec", info.spec_path),
        ("Spec hash", info.spec_hash),
    ):
        if text:
            yield label, text, None, None


def _write_summary(sheet: Any, document: Document, formats: _Formats) -> None:
    sheet.set_column(0, 0, 28)
    sheet.set_column(1, 1, 24)
    for row, (label, value, code, style) in enumerate(_summary_rows(document)):
        if isinstance(label, str):
            sheet.write_string(row, 0, label, formats(style) if style else None)
        elif len(label) == 1:
            sheet.write_string(row, 0, label[0][1], formats(label[0][0]) if label[0][0] else None)
        else:
            pieces = [part for style_, text in label for part in ((formats(style_),) if style_ else ()) + (text,)]
            sheet.write_rich_string(row, 0, *pieces)
        if value is not None:
            sheet.write(row, 1, value, formats(code) if code else None)


def markdown_lines(markdown: str) -> list[Runs]:
    """Markdown as the Summary sheet's lines: a paragraph is one line (its source line breaks are spaces), list
    items get a bullet, headings are bold, and **bold**, *italic* and `code` keep their look; a blank line
    separates blocks. Links show their text."""
    from markdown_it import MarkdownIt

    lines: list[Runs] = []
    depth = 0
    heading = False
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            if depth == 0:
                lines.append(())
        elif token.type == "heading_open":
            heading = True
        elif token.type == "heading_close":
            heading = False
        elif token.type == "paragraph_close" and depth == 0:
            lines.append(())
        elif token.type == "inline":
            bullet = "    " * (depth - 1) + "\N{BULLET} " if depth else ""
            lines.append(_inline_runs(token.children or [], "bold" if heading else "", bullet))
            if heading:
                lines.append(())
        elif token.type in ("fence", "code_block"):
            lines.extend((("code", line),) for line in token.content.rstrip("\n").splitlines())
            lines.append(())
    while lines and not lines[-1]:
        lines.pop()
    return [line if line else (("", ""),) for line in lines]


def _inline_runs(children: list[Any], base: str, prefix: str = "") -> Runs:
    runs: list[tuple[str, str]] = [("", prefix)] if prefix else []
    bold, italic = base == "bold", False
    for child in children:
        if child.type in ("strong_open", "strong_close"):
            bold = child.type == "strong_open" or base == "bold"
            continue
        if child.type in ("em_open", "em_close"):
            italic = child.type == "em_open"
            continue
        if child.type in ("softbreak", "hardbreak"):
            text, style = " ", ""
        elif child.type == "code_inline":
            text, style = child.content, "code"
        elif child.type in ("text", "html_inline"):
            text, style = child.content, " ".join(s for s, on in (("bold", bold), ("italic", italic)) if on)
        else:
            continue
        if runs and runs[-1][0] == style:
            runs[-1] = (style, runs[-1][1] + text)
        elif text:
            runs.append((style, text))
    return tuple(runs) or (("", ""),)


@dataclass(frozen=True)
class _FormulaColumn:
    index: int
    formula: ExcelFormula
    cached: list[Any]


def _write_table(sheet: Any, table: TableBlock, document: Document, formats: _Formats) -> None:
    """Header, then rows in order (constant-memory mode needs that), plain cells by write_row per run."""
    from xlsxwriter.utility import xl_col_to_name

    tz, locale = document.info.timezone, document.style.locale
    columns = table.columns or tuple(_plain_columns(table))
    frame = table.frame
    specs = [column_format(parse_format(c.format), frame.get_column(c.name)) for c in columns]
    temporal = {"date", "datetime", "duration"}
    letters: dict[str, str | None] = {
        c.name: None if spec.kind in temporal or frame.schema[c.name].is_temporal() else xl_col_to_name(i)
        for i, (c, spec) in enumerate(zip(columns, specs, strict=True))
    }
    params = {p.name: p.value for p in document.parameters}
    header = formats("header")
    sheet.write_row(0, 0, [c.label for c in columns], header)
    formulas: list[_FormulaColumn] = []
    values: list[list[Any]] = []
    for index, (column, spec) in enumerate(zip(columns, specs, strict=True)):
        series = frame.get_column(column.name)
        dtype = series.dtype
        code = number_format(spec, dtype, locale)
        sheet.set_column(index, index, _width(column.label, series, spec, tz, locale), formats(code))
        values.append(column_values(series, spec, tz))
        if column.note:
            sheet.write_comment(0, index, f"{column.label}: {column.note}.", {"x_scale": 2})
        if column.formula is None:
            continue
        try:
            excel = translate_formula(column.formula, letters, params)
        except UntranslatableFormula as exc:
            note = f"Values computed by reportctl from: {column.formula}\nNot an Excel formula: {exc}"
            sheet.write_comment(0, index, note, {"x_scale": 2, "y_scale": 1.5})
            continue
        formulas.append(_FormulaColumn(index, excel, ["" if v is None else v for v in values[-1]]))
    _write_rows(sheet, values, formulas)
    if not frame.height:
        sheet.write_string(1, 0, table.empty_message)
    sheet.freeze_panes(1, 0)
    if columns:
        sheet.autofilter(0, 0, max(frame.height, 1), len(columns) - 1)


def _write_rows(sheet: Any, values: list[list[Any]], formulas: list[_FormulaColumn]) -> None:
    """Every data row in order: runs of plain columns with write_row, formula cells with write_formula."""
    in_formula = {f.index for f in formulas}
    runs: list[tuple[int, list[list[Any]]]] = []
    for index, column in enumerate(values):
        if index in in_formula:
            continue
        if runs and runs[-1][0] + len(runs[-1][1]) == index:
            runs[-1][1].append(column)
        else:
            runs.append((index, [column]))
    write_row, write_formula = sheet.write_row, sheet.write_formula
    if len(runs) == 1 and len(formulas) == 1:
        start, only = runs[0]
        formula = formulas[0]
        parts, col = formula.formula.parts, formula.index
        for row, (cells, cached) in enumerate(zip(zip(*only, strict=True), formula.cached, strict=True), 1):
            write_row(row, start, cells)
            write_formula(row, col, str(row + 1).join(parts), None, cached)
        return
    starts = [start for start, _ in runs]
    rows = zip(*(zip(*run, strict=True) for _, run in runs), *(f.cached for f in formulas), strict=True)
    templates = [(f.index, f.formula.parts) for f in formulas]
    split = len(runs)
    for row, cells in enumerate(rows, 1):
        for k, start in enumerate(starts):
            write_row(row, start, cells[k])
        excel_row = str(row + 1)
        for k, (col, parts) in enumerate(templates, split):
            write_formula(row, col, excel_row.join(parts), None, cells[k])


def _width(label: str, series: Any, spec: Any, tz: str, locale: str) -> float:
    """Characters for the header (plus the filter button) and the widest formatted value of a sample."""
    from reportctl.formats import FormatError

    sample = series.head(_WIDTH_SAMPLE_ROWS).to_list()
    try:
        widest = max((len(spec.format(v, tz, locale)) for v in sample), default=0)
    except FormatError:  # a value its format cannot show, e.g. text in a number column: Excel shows it as is
        widest = max((len(str(v)) for v in sample), default=0)
    return float(min(max(len(label) + 4, widest + 2, 8), _MAX_WIDTH))


def _plain_columns(table: TableBlock) -> Iterator[Any]:
    from reportctl.document import TableColumn

    for name in table.frame.columns:
        yield TableColumn(name, name)
