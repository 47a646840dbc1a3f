"""A report in a locale, end to end: ``locale: de_DE`` reads ``1.234,56 €`` in PDF, HTML and Markdown, and the
Excel cell carries the number format that shows it so; a theme's accent, logo and font reach the files."""

from __future__ import annotations

import html
import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pdfplumber
import pytest

from reportctl.config import find_project
from reportctl.runner import render_report
from reportctl.spec.loader import load_spec

NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)
SPEC = """\
apiVersion: reportctl/v1
name: umsatz
title: Umsatz
locale: de_DE
sources:
  sales: {kind: file, path: data/sales.csv}
sections:
  - id: kpis
    type: kpis
    items:
      - {label: Umsatz, value: "sum(sales.amount)", format: "currency:EUR"}
      - {label: Anteil, value: "max(sales.share)", format: percent}
      - {label: Fehlt, value: "max(sales.missing)", format: "currency:EUR"}
  - id: rows
    type: table
    dataset: sales
    columns:
      amount: {label: Betrag, format: "currency:EUR"}
      share: {label: Anteil, format: percent}
      day: {label: Tag, format: "date:%d. %B %Y"}
outputs: [pdf, html, md, xlsx, json]
"""
DATA = "item,amount,share,day,missing,ok\nWidget,1234.56,0.853,2026-12-01,,true\nGadget,-0.5,0.0012,2026-03-02,,false\n"


def _render(project: Path, spec: str = SPEC) -> Path:
    (project / "data").mkdir(exist_ok=True)
    (project / "data" / "sales.csv").write_text(DATA)
    path = project / "specs" / "umsatz.yaml"
    path.write_text(spec)
    return render_report(load_spec(path, find_project(path)), now=NOW).directory


def test_de_de_reads_the_same_in_every_writer(project: Path) -> None:
    out = _render(project)
    with pdfplumber.open(out / "umsatz.pdf") as pdf:
        text = "\n".join(page.extract_text() or "" for page in pdf.pages)
    page = html.unescape((out / "umsatz.html").read_text())
    markdown = (out / "umsatz.md").read_text()
    for expected in ("1.234,06 €", "1.234,56 €", "-0,50 €", "85,3 %", "01. Dezember 2026", "02. März 2026"):
        assert expected in page, expected
        assert expected in markdown, expected
        assert expected in text.replace("\xa0", " "), expected

    sheet = openpyxl.load_workbook(out / "umsatz.xlsx")["rows"]
    header = [cell.value for cell in sheet[1]]
    amount = sheet.cell(2, header.index("Betrag") + 1)
    share = sheet.cell(2, header.index("Anteil") + 1)
    assert (amount.value, amount.number_format) == (1234.56, '#,##0.00" €"')
    assert share.number_format == '#,##0.0" "%'
    assert sheet.cell(2, header.index("Tag") + 1).number_format == "dd. mmmm yyyy"


def test_a_kpi_without_a_value_is_a_dash_everywhere(project: Path) -> None:
    out = _render(project)
    document = json.loads((out / "umsatz.json").read_text())
    missing = document["sections"][0]["items"][2]
    assert (missing["value"], missing["display"]) == (None, "—")
    assert "| Fehlt | — |" in (out / "umsatz.md").read_text()
    assert re.search(r'kpi-value missing">—<', (out / "umsatz.html").read_text())
    with pdfplumber.open(out / "umsatz.pdf") as pdf:
        assert "—" in (pdf.pages[0].extract_text() or "")
    summary = openpyxl.load_workbook(out / "umsatz.xlsx")["Summary"]
    assert ["Fehlt", "—"] in [[c.value for c in row[:2]] for row in summary.iter_rows()]


def test_booleans_read_yes_and_no_and_excel_agrees(project: Path) -> None:
    spec = SPEC.replace("      day: {label: Tag", "      ok: {label: OK}\n      day: {label: Tag")
    out = _render(project, spec)
    assert "| Yes |" in (out / "umsatz.md").read_text() or " Yes " in (out / "umsatz.md").read_text()
    with pdfplumber.open(out / "umsatz.pdf") as pdf:
        text = "\n".join(page.extract_text() or "" for page in pdf.pages)
    assert "Yes" in text and "True" not in text
    sheet = openpyxl.load_workbook(out / "umsatz.xlsx")["rows"]
    header = [cell.value for cell in sheet[1]]
    ok = sheet.cell(2, header.index("OK") + 1)
    assert (ok.value, ok.number_format) == (1, '"Yes";"Yes";"No"')


@pytest.fixture
def branded(project: Path) -> Path:
    (project / "brand").mkdir()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40">'
        '<rect width="120" height="40" fill="#c0392b"/></svg>'
    )
    (project / "brand" / "logo.svg").write_text(svg)
    from reportctl import fonts

    (project / "brand" / "Body.ttf").write_bytes(Path(fonts.REGULAR).read_bytes())
    (project / "reportctl.yaml").write_text(
        "timezone: UTC\ntheme: {logo: brand/logo.svg, accent: '#c0392b', font: brand/Body.ttf}\n"
    )
    return project


def test_the_theme_reaches_pdf_html_and_excel(branded: Path) -> None:
    out = _render(branded)
    with pdfplumber.open(out / "umsatz.pdf") as pdf:
        first = pdf.pages[0]
        colours = {
            tuple(round(c * 255) for c in r["non_stroking_color"]) for r in first.rects if r["non_stroking_color"]
        }
        assert (192, 57, 43) in colours  # the accent bar and the KPI cards' edge
        assert first.images or first.curves or first.rects  # the logo is drawn as vector paths
    page = (out / "umsatz.html").read_text()
    assert "--accent: #c0392b" in page
    assert 'class="logo"' in page and "data:image/svg+xml;base64," in page
    assert "@font-face" in page
    with zipfile.ZipFile(out / "umsatz.xlsx") as archive:
        styles = archive.read("xl/styles.xml").decode()
    assert 'rgb="FFC0392B"' in styles
    assert 'name val="DejaVu Sans"' in styles


PERCENTILES = """\
apiVersion: reportctl/v1
name: latency
sources:
  s: {kind: file, path: data/latency.csv}
datasets:
  stats:
    from: s
    group_by: [service]
    aggregate: {p95_ms: p95(ms), p95_seen: p95_nearest(ms), n: count()}
    sort: [service]
sections:
  - id: t
    type: table
    dataset: stats
    columns:
      p95_ms: {label: p95 (linear)}
outputs: [pdf, html, md, xlsx, json]
"""


def test_percentile_columns_say_how_they_were_computed(project: Path) -> None:
    (project / "data").mkdir()
    (project / "data" / "latency.csv").write_text("service,ms\n" + "".join(f"api,{v}\n" for v in range(1, 11)))
    path = project / "specs" / "latency.yaml"
    path.write_text(PERCENTILES)
    out = render_report(load_spec(path, find_project(path)), now=NOW).directory
    document = json.loads((out / "latency.json").read_text())
    table = document["sections"][0]
    assert table["rows"][0]["p95_ms"] == pytest.approx(9.55)  # numpy's linear default
    assert table["rows"][0]["p95_seen"] == 10  # the nearest rank: a value in the data
    linear = "p95 (linear): 95th percentile, by linear interpolation between the closest ranks."
    nearest = "P95 seen: 95th percentile, the nearest rank (a value that occurs in the data)."
    notes = {c["name"]: c["note"] for c in table["columns"]}
    assert notes["n"] is None and linear.endswith(notes["p95_ms"] + ".")
    markdown = (out / "latency.md").read_text()
    assert f"_{linear}_" in markdown and f"_{nearest}_" in markdown
    page = (out / "latency.html").read_text()
    assert linear in page and 'title="95th percentile, by linear interpolation between the closest ranks"' in page
    with pdfplumber.open(out / "latency.pdf") as pdf:
        assert linear in (pdf.pages[0].extract_text() or "")
    sheet = openpyxl.load_workbook(out / "latency.xlsx")["t"]
    assert sheet["B1"].comment is not None and linear in sheet["B1"].comment.text
