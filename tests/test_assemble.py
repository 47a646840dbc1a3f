"""Render never ignores a name the spec gives: where validate cannot know a dataset's columns (``SELECT *`` from a
SQL source), a table, chart, KPI or template that names a missing column fails the render at the spec's line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from reportctl.config import find_project
from reportctl.errors import SpecError
from reportctl.runner import render_report
from reportctl.spec.loader import load_spec

SPEC = """\
apiVersion: reportctl/v1
name: sales
sources:
  db: {kind: sql, url: "sqlite:///sales.db", query: "SELECT * FROM sales"}
sections:
  - id: intro
    type: text
    template: |
      Sales in {{ datasets.db | length }} countries.
      The first is {{ datasets.db.first.country }}, with {{ datasets.db.sum('revenue') }} in all.
  - id: kpis
    type: kpis
    items:
      - {label: Revenue, value: "sum(db.revenue)"}
  - id: table
    type: table
    dataset: db
    columns:
      revenue: {format: "currency:EUR"}
      share: {formula: "revenue / 100", format: percent}
  - {id: chart, type: chart, chart: bar, dataset: db, x: country, y: [revenue], series: country}
outputs: [json]
"""


@pytest.fixture
def spec(project: Path) -> Path:
    with sqlite3.connect(project / "sales.db") as connection:
        connection.execute("CREATE TABLE sales (country TEXT, revenue REAL)")
        connection.executemany("INSERT INTO sales VALUES (?, ?)", [("DE", 120.0), ("FR", 80.0)])
    connection.close()
    path = project / "specs" / "sales.yaml"
    path.write_text(SPEC)
    return path


def _problems(spec: Path, text: str) -> list[str]:
    """What render says of ``text``, which validate passes (it cannot know the columns of ``SELECT *``)."""
    spec.write_text(text)
    loaded = load_spec(spec, find_project(spec))
    with pytest.raises(SpecError) as caught:
        render_report(loaded)
    return [str(problem).replace(f"{spec}:", "") for problem in caught.value.problems]


def test_the_spec_renders_with_the_columns_it_names(spec: Path) -> None:
    loaded = load_spec(spec, find_project(spec))
    result = render_report(loaded)
    document = json.loads((result.directory / "sales.json").read_text())
    sections = {section["id"]: section for section in document["sections"]}
    assert sections["intro"]["markdown"] == "Sales in 2 countries.\nThe first is DE, with 200.0 in all.\n"
    assert [c["name"] for c in sections["table"]["columns"]] == ["country", "revenue", "share"]
    assert sections["table"]["rows"] == [
        {"country": "DE", "revenue": 120.0, "share": 1.2},
        {"country": "FR", "revenue": 80.0, "share": 0.8},
    ]


def test_a_table_column_missing_from_the_data_is_an_error_at_its_key(spec: Path) -> None:
    assert _problems(spec, SPEC.replace("      revenue: {format", "      revenu: {format")) == [
        "19:15: sections[2].columns.revenu: unknown column 'revenu' (did you mean 'revenue'?);"
        " 'db' has: country, revenue"
    ]


def test_chart_columns_missing_from_the_data_are_errors_at_their_keys(spec: Path) -> None:
    text = SPEC.replace("x: country, y: [revenue], series: country", "x: contry, y: [revenue, cost], series: region")
    assert _problems(spec, text) == [
        "21:58: sections[3].x: unknown column 'contry' (did you mean 'country'?); 'db' has: country, revenue",
        "21:79: sections[3].y[1]: unknown column 'cost'; 'db' has: country, revenue",
        "21:94: sections[3].series: unknown column 'region'; 'db' has: country, revenue",
    ]


def test_kpi_and_formula_columns_missing_from_the_data_are_errors_at_their_lines(spec: Path) -> None:
    text = SPEC.replace("sum(db.revenue)", "sum(db.revenu)").replace('"revenue / 100"', '"revenue / cost"')
    problems = _problems(spec, text)
    assert [p.split(": ")[0:2] for p in problems] == [
        ["14:33", "sections[1].items[0].value"],
        ["20:24", "sections[2].columns.share.formula"],
    ]
    assert "unknown column 'revenu' (did you mean 'revenue'?)" in problems[0]
    assert "unknown column 'cost'" in problems[1]


def test_a_template_column_missing_from_the_data_is_an_error_at_its_line(spec: Path) -> None:
    text = SPEC.replace("datasets.db.first.country", "datasets.db.first.contry").replace("'revenue'", "'revenu'")
    assert _problems(spec, text) == [
        "10:7: sections[0].template: line 2: dataset 'db' has no column 'contry' (did you mean 'country'?);"
        " columns: country, revenue",
        "10:7: sections[0].template: line 2: dataset 'db' has no column 'revenu' (did you mean 'revenue'?);"
        " columns: country, revenue",
    ]
