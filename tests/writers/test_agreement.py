"""One value, one display: every writer shows each cell of a table as the same string.

The table holds the edges where writers used to disagree: nulls, a formula over nulls, values on rounding edges
(162.05 stored as 162.04999999999995, 2.675, 1.005), negative zero, huge and tiny numbers, booleans and non-ASCII
text. PDF, HTML and Markdown are read back as text; the Excel file's cached values are shown through their
number formats by a small reader of Excel's format codes written from Excel's rules (15 significant digits, then
half away from zero), and, where LibreOffice is installed, recalculated by it. CSV and JSON hold raw values: they
must hold the same values, blanks where the others show nothing.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import openpyxl
import pdfplumber
import polars as pl
import pytest
from writer_documents import report_info

from reportctl.data.expressions import formula_columns
from reportctl.document import Document, TableBlock, TableColumn
from reportctl.writers.csv import CsvWriter
from reportctl.writers.display import display_cells, display_columns
from reportctl.writers.html import HtmlWriter
from reportctl.writers.json import JsonWriter
from reportctl.writers.markdown import MarkdownWriter
from reportctl.writers.pdf import PdfWriter
from reportctl.writers.xlsx import XlsxWriter

FRAME = pl.DataFrame(
    {
        "name": ["Zürich \N{EN DASH} 東京", "naïve café", None, "Ωmega", "plain"],
        "edge": [162.04999999999995, 2.675, 1.005, -0.0, None],
        "budget": [100.0, None, 1e15, 50.0, 12.5],
        "spent": [58.1, 41.9, 0.5, None, 12.5],
        "tiny": [1e-7, 0.0012, None, 3.14159, -0.5],
        "ratio": [0.853, None, 0.0005, -0.0, 1.0],
        "amount": [1234.565, -0.004, None, 1e9, 0.5],
        "ok": [True, False, None, True, False],
    }
)
COLUMNS = (
    TableColumn("name", "Name"),
    TableColumn("edge", "Edge", "number:1"),
    TableColumn("budget", "Budget", "number:2"),
    TableColumn("spent", "Spent", "number:2"),
    TableColumn("left", "Left", "number:1", formula="budget - spent"),
    TableColumn("tiny", "Tiny"),
    TableColumn("ratio", "Ratio", "percent:1"),
    TableColumn("amount", "Amount", "currency:EUR"),
    TableColumn("ok", "OK"),
)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TableBlock, list[list[str]]]:
    frame = formula_columns(FRAME, {"left": "budget - spent"}, {})
    table = TableBlock("t", "Edges", COLUMNS, frame.select([c.name for c in COLUMNS]))
    document = Document(report_info(name="edges", title="Edges"), (), (table,))
    directory = tmp_path_factory.mktemp("agreement")
    for writer in (PdfWriter(), HtmlWriter(), MarkdownWriter(), XlsxWriter(), CsvWriter(), JsonWriter()):
        writer.write(document, directory)
    expected = display_cells(table, display_columns(table), 100, "UTC")
    return directory, table, expected


def test_the_expected_strings_are_the_edges_they_should_be(written: tuple[Path, TableBlock, list[list[str]]]) -> None:
    rows = written[2]
    assert [row[1] for row in rows] == ["162.1", "2.7", "1.0", "0.0", ""]  # 15 digits, then half up
    assert [row[4] for row in rows] == [
        "41.9",
        "",
        "1,000,000,000,000,000.0",
        "",
        "0.0",
    ]  # 15 digits, as Excel shows it
    assert [row[5] for row in rows] == ["0.0000001", "0.0012", "", "3.14159", "-0.50"]  # never a false zero
    assert [row[8] for row in rows] == ["Yes", "No", "", "Yes", "No"]
    assert rows[1][7] == "€0.00" and rows[3][6] == "0.0%"  # no negative zero


def test_html_shows_every_cell_alike(written: tuple[Path, TableBlock, list[list[str]]]) -> None:
    directory, _, expected = written
    assert _html_rows((directory / "edges.html").read_text()) == expected


def test_markdown_shows_every_cell_alike(written: tuple[Path, TableBlock, list[list[str]]]) -> None:
    directory, _, expected = written
    lines = [line for line in (directory / "edges.md").read_text().splitlines() if line.startswith("|")]
    rows = [[_unescape_markdown(c.strip()) for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]
    assert rows == expected


def test_pdf_shows_every_cell_alike(written: tuple[Path, TableBlock, list[list[str]]]) -> None:
    directory, _, expected = written
    with pdfplumber.open(directory / "edges.pdf") as pdf:
        words = [w["text"] for page in pdf.pages for w in page.extract_words(keep_blank_chars=False)]
    text = " ".join(words)
    for row in expected:
        for cell in row[1:]:  # numbers are single words: each must be there as shown
            if cell:
                assert cell in words or cell in text, cell
    assert "True" not in words and "False" not in words


def test_excel_shows_every_cell_alike(written: tuple[Path, TableBlock, list[list[str]]]) -> None:
    directory, _, expected = written
    sheet = openpyxl.load_workbook(directory / "edges.xlsx", data_only=True)["Edges"]
    shown = [
        [_excel_text(cell.value, cell.number_format) for cell in row]
        for row in sheet.iter_rows(min_row=2, max_row=len(expected) + 1)
    ]
    assert shown == expected


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed")
def test_libreoffice_recalculates_to_the_same_strings(
    written: tuple[Path, TableBlock, list[list[str]]], tmp_path: Path
) -> None:
    directory, _, expected = written
    subprocess.run(
        ["soffice", "--headless", "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true",
         "--outdir", str(tmp_path), str(directory / "edges.xlsx")],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    [converted] = [p for p in tmp_path.glob("edges*.csv") if "Edges" in p.name or p.name == "edges.csv"]
    with converted.open(encoding="utf-8") as file:
        rows = list(csv.reader(file))[1 : len(expected) + 1]
    assert rows == expected


def test_csv_and_json_hold_the_same_values_with_blanks_for_nulls(
    written: tuple[Path, TableBlock, list[list[str]]],
) -> None:
    directory, table, _ = written
    with (directory / "edges.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == [c.name for c in COLUMNS]
    document = json.loads((directory / "edges.json").read_text())
    json_rows = document["sections"][0]["rows"]
    for index, source in enumerate(table.frame.iter_rows(named=True)):
        for column in COLUMNS:
            value = source[column.name]
            text, raw = rows[index + 1][COLUMNS.index(column)], json_rows[index][column.name]
            if value is None:
                assert (text, raw) == ("", None), column.name
            elif isinstance(value, bool):
                assert (text, raw) == (str(value).lower(), value)
            elif isinstance(value, float):
                assert float(text) == value and raw == value, column.name
            else:
                assert text == raw == value


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None:
            self.rows[-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def _html_rows(page: str) -> list[list[str]]:
    parser = _Cells()
    parser.feed(page)
    return [row for row in parser.rows if row]


def _unescape_markdown(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _excel_text(value: Any, code: str) -> str:
    """A cell as Excel shows it (en-US): the number format codes reportctl writes, read by Excel's rules."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    sections = _sections(code)
    if len(sections) == 3 and all(s.startswith('"') for s in sections):  # "Yes";"Yes";"No"
        return _literal(sections[0] if value > 0 else sections[1] if value < 0 else sections[2])
    section = sections[0]
    head = re.match(r'^((?:"[^"]*"|\\.)*)', section).group(1)  # type: ignore[union-attr]
    rest = section[len(head) :]
    digits = re.match(r"^[#,0.]+", rest).group(0)  # type: ignore[union-attr]
    tail = rest[len(digits) :]
    percent = "%" in tail
    number = Decimal(f"{float(value) * (100 if percent else 1):.15g}")
    whole, _, fraction = digits.partition(".")
    required, optional = fraction.count("0"), fraction.count("#")
    rounded = number.quantize(Decimal(1).scaleb(-(required + optional)), ROUND_HALF_UP)
    text = f"{abs(rounded):,f}" if "," in whole else f"{abs(rounded):f}"
    int_part, _, frac_part = text.partition(".")
    frac_part = frac_part.rstrip("0").ljust(required, "0") if optional else frac_part
    shown = int_part + ("." + frac_part if frac_part else "")
    sign = "-" if rounded < 0 and shown.strip("0.,") else ""
    return sign + _literal(head) + shown + _literal(tail)


def _sections(code: str) -> list[str]:
    return re.findall(r'(?:"[^"]*"|[^;])+', code)


def _literal(text: str) -> str:
    return re.sub(r'"([^"]*)"|\\(.)', lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)
