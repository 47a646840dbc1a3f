"""A table allowed past 50,000 rows in a PDF gets a validate note with the pages it implies, checked against a
real render's page count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pypdf import PdfReader

from reportctl.writers.pdf import rows_per_page

SPEC = """\
apiVersion: reportctl/v1
name: long
sources:
  s: {{kind: sample, rows: {rows}, seed: 1}}
sections:
  - {{id: t, type: table, dataset: s, max_rows: {max_rows}, columns: {{service: {{label: Service}}}}}}
outputs: [{outputs}]
"""


def test_a_long_pdf_table_is_a_note_with_its_page_count(project: Path, cli: Any) -> None:
    (project / "specs" / "long.yaml").write_text(SPEC.format(rows=10, max_rows=120_000, outputs="pdf, csv"))
    result = cli("validate", "specs/long.yaml")
    assert result.exit_code == 0
    pages = -(-120_000 // rows_per_page("A4"))
    assert f"up to 120,000 rows of table 't' make about {pages:,} PDF pages" in result.stdout
    assert "sections[0].max_rows: note:" in result.stdout


def test_no_note_without_a_pdf_or_below_the_limit(project: Path, cli: Any) -> None:
    (project / "specs" / "long.yaml").write_text(SPEC.format(rows=10, max_rows=120_000, outputs="csv"))
    assert "note" not in cli("validate", "specs/long.yaml").stdout
    (project / "specs" / "long.yaml").write_text(SPEC.format(rows=10, max_rows=50_000, outputs="pdf"))
    assert "note" not in cli("validate", "specs/long.yaml").stdout


def test_the_estimate_matches_a_rendered_pdf(project: Path, cli: Any) -> None:
    rows = 980
    (project / "specs" / "long.yaml").write_text(SPEC.format(rows=rows, max_rows=rows, outputs="pdf"))
    assert cli("render", "specs/long.yaml", "--no-state").exit_code == 0
    [pdf] = list((project / "out" / "long").rglob("long.pdf"))
    pages = len(PdfReader(pdf).pages)
    estimate = -(-rows // rows_per_page("A4"))
    assert abs(pages - estimate) <= 1  # the title block takes part of the first page
