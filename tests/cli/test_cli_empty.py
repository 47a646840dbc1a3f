"""An empty dataset renders "No data for this period" in every format, unless the spec asks to fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pdfplumber
from openpyxl import load_workbook

from conftest import CliResult

Cli = Callable[..., CliResult]
SPEC = """\
apiVersion: reportctl/v1
name: quiet
sources:
  metrics: {kind: sample, rows: 500}
datasets:
  nothing: {from: metrics, where: "latency_ms < 0"}
sections:
  - {id: rows, type: table, dataset: nothing, fail_on_empty: FAIL}
  - {id: trend, type: chart, dataset: nothing, chart: line, x: timestamp, y: latency_ms}
outputs: [pdf, xlsx, html, md, csv, json]
"""


def test_an_empty_dataset_says_so_in_every_format(cli: Cli, project: Path) -> None:
    spec = project / "specs" / "quiet.yaml"
    spec.write_text(SPEC.replace("FAIL", "false"))
    result = cli("render", str(spec), "--json")
    assert result.exit_code == 0, result.stderr
    files = {Path(a["path"]).suffix: Path(a["path"]) for a in json.loads(result.stdout)["artifacts"]}
    with pdfplumber.open(files[".pdf"]) as pdf:
        assert "No data for this period" in "".join(page.extract_text() for page in pdf.pages)
    assert "No data for this period" in files[".html"].read_text()
    assert "No data for this period" in files[".md"].read_text()
    table = next(s for s in json.loads(files[".json"].read_text())["sections"] if s["id"] == "rows")
    assert table["row_count"] == 0 and table["rows"] == []
    sheets = load_workbook(files[".xlsx"]).worksheets
    cells = [c.value for sheet in sheets for row in sheet.iter_rows() for c in row]
    assert "No data for this period" in cells


def test_fail_on_empty_fails_and_writes_nothing(cli: Cli, project: Path) -> None:
    spec = project / "specs" / "quiet.yaml"
    spec.write_text(SPEC.replace("FAIL", "true"))
    result = cli("render", str(spec))
    assert result.exit_code == 1
    assert result.stderr == "error: dataset 'nothing': is empty and section 'rows' sets fail_on_empty\n"
    assert not (project / "out").exists()
