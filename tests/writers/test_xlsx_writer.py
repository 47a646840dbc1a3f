"""The xlsx writer, checked by reading its workbooks back with openpyxl and zipfile."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest
from pydantic import ValidationError
from writer_documents import REGIONS, SINCE, last_7_days, report_info

from reportctl.document import ChartBlock, Document, KpiBlock, KpiValue, TableBlock, TableColumn, TextBlock
from reportctl.writers.xlsx import XlsxWriter
from reportctl.writers.xlsx_cells import SheetNames
from reportctl.writers.xlsx_formula import UntranslatableFormula, translate_formula

BERLIN = "Europe/Berlin"


def services_table(title: str | None = "Latency by service") -> TableBlock:
    frame = pl.DataFrame(
        {
            "service": ["api", "web", None],
            "day": [date(2026, 11, 27), None, date(2026, 11, 28)],
            "ts": pl.Series(
                [datetime(2026, 11, 27, 23, 30, tzinfo=UTC), datetime(2026, 7, 1, 12, 0, tzinfo=UTC), None]
            ).dt.convert_time_zone("UTC"),
            "p95_latency": [310.25, float("nan"), 120.0],
            "requests": [1200, 300, None],
            "error_rate": [0.0125, 0.5, None],
            "revenue": [99.5, 1234.5, 0.0],
            "uptime": [timedelta(hours=26, minutes=3), timedelta(seconds=90), None],
        }
    )
    frame = frame.with_columns(
        (pl.col("p95_latency") - 250).alias("over_budget"),
        (pl.col("revenue") / pl.col("requests")).alias("per_request"),
    )
    columns = (
        TableColumn("service", "Service"),
        TableColumn("day", "Day", "date"),
        TableColumn("ts", "Last seen", "datetime"),
        TableColumn("p95_latency", "p95", "number:1 ms"),
        TableColumn("requests", "Requests", "integer"),
        TableColumn("error_rate", "Errors", "percent:1"),
        TableColumn("revenue", "Revenue", "currency:EUR"),
        TableColumn("uptime", "Uptime", "duration"),
        TableColumn("over_budget", "Over budget", "number:1", formula="p95_latency - 250"),
        TableColumn("per_request", "Per request", formula="revenue / requests"),
    )
    return TableBlock("by_service", title, columns, frame)


def make_document(*blocks: Any) -> Document:
    info = report_info(timezone=BERLIN, description="Latency by service", version="1.2", owner="ops@example.com")
    parameters = (last_7_days(), SINCE, REGIONS)
    kpis = KpiBlock(
        "kpis", "Headline", (KpiValue("Worst p95", 310.25, "number:0 ms"), KpiValue("Errors", 0.02, "percent:2"))
    )
    return Document(info, parameters, (TextBlock("intro", None, "All good."), kpis, *blocks))


def chart(kind: str, *, series: str | None = None, stacked: bool = False, title: str = "Requests") -> ChartBlock:
    frame = pl.DataFrame(
        {
            "day": [date(2026, 11, 26), date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 27)],
            "service": ["api", "web", "api", "web"],
            "requests": [10, 20, 30, 40],
            "errors": [1, 2, 3, 4],
        }
    )
    y = ("requests",) if series else ("requests", "errors")
    return ChartBlock(kind, title, kind, frame, "day", y, series, stacked, "Day", "Requests", "integer")


def write(tmp_path: Path, document: Document, **options: Any) -> Path:
    paths = XlsxWriter(options).write(document, tmp_path)
    assert paths == [tmp_path / "server-health.xlsx"]
    return paths[0]


def test_registered_under_the_entry_point() -> None:
    (found,) = [e for e in entry_points(group="reportctl.writers") if e.name == "xlsx"]
    assert found.load() is XlsxWriter
    assert not XlsxWriter.CHART_IMAGES


def test_options_are_validated() -> None:
    assert XlsxWriter({"constant_memory": True}).options.constant_memory is True
    with pytest.raises(ValidationError):
        XlsxWriter({"constant_memory": "sometimes"})


def test_table_sheet_header_formats_and_filter(tmp_path: Path) -> None:
    path = write(tmp_path, make_document(services_table()))
    sheet = openpyxl.load_workbook(path)["Latency by service"]
    header = [c.value for c in sheet[1]]
    assert header == [
        "Service",
        "Day",
        "Last seen",
        "p95",
        "Requests",
        "Errors",
        "Revenue",
        "Uptime",
        "Over budget",
        "Per request",
    ]
    assert all(c.font.bold for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:J4"
    formats = [sheet.cell(2, col).number_format for col in range(2, 11)]
    assert formats == [
        "yyyy-mm-dd",
        "yyyy-mm-dd hh:mm",
        '#,##0.0" ms"',
        "#,##0",
        "#,##0.0%",
        '"€"#,##0.00',
        "[h]:mm:ss",
        "#,##0.0",
        "#,##0.00",
    ]
    assert sheet.column_dimensions["A"].width >= len("Service")


def test_values_are_native_and_times_in_the_report_zone(tmp_path: Path) -> None:
    path = write(tmp_path, make_document(services_table()))
    sheet = openpyxl.load_workbook(path, data_only=True)["Latency by service"]
    assert sheet["A2"].value == "api"
    assert sheet["B2"].value == datetime(2026, 11, 27)
    assert sheet["C2"].value == datetime(2026, 11, 28, 0, 30)  # 23:30 UTC is 00:30 in Berlin (CET)
    assert sheet["C3"].value == datetime(2026, 7, 1, 14, 0)  # CEST
    assert sheet["D2"].value == 310.25
    assert sheet["D3"].value is None  # NaN
    assert sheet["E4"].value is None and sheet["A4"].value is None and sheet["B3"].value is None
    assert sheet["H2"].value == timedelta(hours=26, minutes=3)  # a day fraction shown as [h]:mm:ss


def test_formula_columns_are_formulas_with_cached_values(tmp_path: Path) -> None:
    table = services_table()
    path = write(tmp_path, make_document(table))
    formulas = openpyxl.load_workbook(path)["Latency by service"]
    assert formulas["I2"].value == '=IF(ISBLANK(D2),"",D2-250)'
    assert formulas["J4"].value == '=IF(OR(ISBLANK(E4),ISBLANK(G4)),"",G4/E4)'
    cached = openpyxl.load_workbook(path, data_only=True)["Latency by service"]
    expected = table.frame.get_column("per_request").to_list()
    assert [cached.cell(r, 10).value for r in (2, 3)] == pytest.approx(expected[:2])
    assert cached["I2"].value == pytest.approx(60.25)
    assert cached["J4"].value in (None, "")


def test_untranslatable_formula_keeps_values_and_explains_in_a_comment(tmp_path: Path) -> None:
    frame = pl.DataFrame({"ts": [datetime(2026, 1, 1)], "next": [datetime(2026, 1, 2)]})
    columns = (TableColumn("ts", "Ts"), TableColumn("next", "Next", formula="ts + INTERVAL '1 day'"))
    path = write(tmp_path, make_document(TableBlock("t", "T", columns, frame)))
    sheet = openpyxl.load_workbook(path)["T"]
    assert sheet["B2"].value == datetime(2026, 1, 2)
    assert sheet["B1"].comment is not None
    assert "ts + INTERVAL '1 day'" in sheet["B1"].comment.text


def test_summary_sheet(tmp_path: Path) -> None:
    path = write(tmp_path, make_document(services_table()))
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames[0] == "Summary"
    rows = {r[0]: r[1] for r in workbook["Summary"].iter_rows(values_only=True) if r[0]}
    assert rows["Period (from)"] == datetime(2026, 11, 21, 1, 0)
    assert rows["Period (last day)"] == datetime(2026, 11, 27)
    assert rows["Since"] == datetime(2026, 1, 1)
    assert rows["Regions"] == "eu, us"
    assert rows["Worst p95"] == 310.25
    assert rows["Generated at"] == datetime(2026, 11, 28, 10, 0, 1)
    assert rows["Time zone"] == BERLIN and rows["Spec hash"] == "sha256:0123" and rows["Version"] == "1.2"
    summary = workbook["Summary"]
    kpi_cell = next(c for (c,) in summary.iter_rows(min_col=1, max_col=1) if c.value == "Worst p95")
    assert summary.cell(kpi_cell.row, 2).number_format == '#,##0" ms"'
    assert workbook.properties.created == datetime(2026, 11, 28, 9, 0, 1)


def test_sheet_names_are_unique_short_and_clean(tmp_path: Path) -> None:
    long = "Latency: p95/p99 by [service] * region? over the whole week"
    tables = [services_table(long), services_table(long), services_table("summary"), services_table(None)]
    path = write(tmp_path, make_document(*tables))
    names = openpyxl.load_workbook(path).sheetnames
    assert names[0] == "Summary"
    assert len(set(n.lower() for n in names)) == len(names) == 5
    assert all(len(n) <= 31 and not set(n) & set("[]:*?/\\") for n in names)
    assert names[2].endswith(" (2)") and names[3] == "summary (2)" and names[4] == "by_service"


def test_sheet_names_fall_back_to_the_id() -> None:
    names = SheetNames()
    assert names.claim("???", "by_day") == "by_day"
    assert names.claim("'quoted'", "x") == "quoted"


@pytest.mark.parametrize(
    ("kind", "series", "stacked", "element", "extra"),
    [
        ("line", None, False, "c:lineChart", ""),
        ("bar", "service", True, "c:barChart", '<c:grouping val="stacked"/>'),
        ("bar", None, False, "c:barChart", '<c:grouping val="clustered"/>'),
        ("area", "service", True, "c:areaChart", '<c:grouping val="stacked"/>'),
        ("scatter", None, False, "c:scatterChart", ""),
        ("pie", None, False, "c:pieChart", ""),
        ("donut", None, False, "c:doughnutChart", ""),
    ],
)
def test_native_charts(tmp_path: Path, kind: str, series: str | None, stacked: bool, element: str, extra: str) -> None:
    path = write(tmp_path, make_document(chart(kind, series=series, stacked=stacked)))
    with zipfile.ZipFile(path) as package:
        xml = package.read("xl/charts/chart1.xml").decode()
    assert f"<{element}>" in xml and extra in xml
    assert "<a:t>Requests</a:t>" in xml
    sheet = openpyxl.load_workbook(path)["Requests"]
    expected_header = ["Day", "api", "web"] if series else ["Day", "Requests", "Errors"]
    assert [c.value for c in sheet[1]][:3] == expected_header
    assert sheet["A2"].value == datetime(2026, 11, 26)
    if series:
        assert [sheet["B3"].value, sheet["C3"].value] == [30, 40]


def test_heatmap_is_a_colour_scale(tmp_path: Path) -> None:
    path = write(tmp_path, make_document(chart("heatmap", series="service", title="Heat")))
    with zipfile.ZipFile(path) as package:
        assert not [n for n in package.namelist() if n.startswith("xl/charts/")]
        sheet_xml = package.read("xl/worksheets/sheet2.xml").decode()
    assert "colorScale" in sheet_xml


def test_same_document_gives_identical_bytes(tmp_path: Path) -> None:
    document = make_document(services_table(), chart("line"))
    first = write(tmp_path, document).read_bytes()
    second = write(tmp_path, document).read_bytes()
    assert first == second


def test_constant_memory_round_trip(tmp_path: Path) -> None:
    rows = 20_000
    frame = pl.DataFrame(
        {
            "id": range(rows),
            "at": pl.datetime_range(
                datetime(2026, 1, 1), datetime(2026, 1, 1) + timedelta(minutes=rows - 1), "1m", eager=True
            ),
            "value": [i * 0.5 for i in range(rows)],
            "name": [f"n{i % 7}" for i in range(rows)],
        }
    ).with_columns((pl.col("value") * 2).alias("double"))
    columns = (
        TableColumn("id", "Id"),
        TableColumn("at", "At"),
        TableColumn("value", "Value"),
        TableColumn("name", "Name"),
        TableColumn("double", "Double", formula="value * 2"),
    )
    path = write(tmp_path, make_document(TableBlock("big", "Big", columns, frame)), constant_memory=True)
    cached = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        read = list(cached["Big"].iter_rows(min_row=2, values_only=True))
    finally:
        cached.close()
    assert len(read) == rows
    last = datetime(2026, 1, 1) + timedelta(minutes=rows - 1)
    assert read[-1] == (rows - 1, last, (rows - 1) * 0.5, f"n{(rows - 1) % 7}", float(rows - 1))
    assert read[0] == (0, datetime(2026, 1, 1), 0.0, "n0", 0.0)
    formulas = openpyxl.load_workbook(path, read_only=True)
    try:
        last_row = next(formulas["Big"].iter_rows(min_row=rows + 1, values_only=True))
    finally:
        formulas.close()
    assert last_row[4] == f'=IF(ISBLANK(C{rows + 1}),"",C{rows + 1}*2)'


def test_empty_table_keeps_header_and_message(tmp_path: Path) -> None:
    table = services_table()
    empty = TableBlock("empty", "Empty", table.columns, table.frame.clear())
    sheet = openpyxl.load_workbook(write(tmp_path, make_document(empty)))["Empty"]
    assert sheet["A1"].value == "Service" and sheet["A2"].value == "No data for this period"


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("p95_latency - 250", '=IF(ISBLANK(B5),"",B5-250)'),
        ("revenue / orders", '=IF(OR(ISBLANK(C5),ISBLANK(D5)),"",C5/D5)'),
        ("CASE WHEN p95_latency > 0 THEN p95_latency ELSE 0 END", "=IF(IF(ISBLANK(B5),FALSE,B5>0),B5,0)"),
        ("(revenue - orders) * 2 % 3", '=IF(OR(ISBLANK(C5),ISBLANK(D5)),"",((C5-D5)*2-3*TRUNC((C5-D5)*2/3)))'),
        ("revenue - (orders - 1)", '=IF(OR(ISBLANK(C5),ISBLANK(D5)),"",C5-(D5-1))'),
        (  # an AND or OR operand over a blank counts as false
            "revenue > 1 AND NOT orders <> 2 OR orders IS NULL",
            "=OR(AND(IF(ISBLANK(C5),FALSE,C5>1),IF(ISBLANK(D5),FALSE,NOT(D5<>2))),ISBLANK(D5))",
        ),
        ("name || '-' || upper(\"name\")", '=IF(ISBLANK(A5),"",A5&"-"&UPPER(A5))'),
        ("round(revenue / orders, 2) + :bonus", '=IF(OR(ISBLANK(C5),ISBLANK(D5)),"",ROUND(C5/D5,2)+1.5)'),
        ("coalesce(orders, 0)", "=IF(ISBLANK(D5),0,D5)"),
    ],
)
def test_formula_translation(formula: str, expected: str) -> None:
    cells = {"name": "A", "p95_latency": "B", "revenue": "C", "orders": "D", "at": None}
    assert translate_formula(formula, cells, {"bonus": 1.5}).at(5) == expected


@pytest.mark.parametrize(
    "formula", ["at + 1", "missing * 2", "date_trunc('day', revenue)", "orders::int", "orders IN (1, 2)"]
)
def test_untranslatable_formulas(formula: str) -> None:
    with pytest.raises(UntranslatableFormula):
        translate_formula(formula, {"revenue": "C", "orders": "D", "at": None}, {})


def test_a_formula_over_blank_inputs_is_blank_as_in_every_other_writer(tmp_path: Path) -> None:
    frame = pl.DataFrame({"budget": [100.0, None, 50.0], "spent": [58.1, 41.9, None]})
    columns = (
        TableColumn("budget", "Budget"),
        TableColumn("spent", "Spent"),
        TableColumn("left", "Left", "number:1", formula="budget - spent"),
        TableColumn("flag", "Flag", formula="CASE WHEN spent > budget THEN 'over' ELSE 'ok' END"),
    )
    from reportctl.data.expressions import formula_columns

    computed = formula_columns(frame, {"left": "budget - spent", "flag": columns[3].formula or ""}, {})
    assert computed["left"].to_list()[1:] == [None, None]  # reportctl's own value: NULL
    path = write(tmp_path, make_document(TableBlock("t", "Budget", columns, computed)))
    sheet = openpyxl.load_workbook(path)["Budget"]
    assert sheet["C3"].value == '=IF(OR(ISBLANK(A3),ISBLANK(B3)),"",A3-B3)'
    cached = openpyxl.load_workbook(path, data_only=True)["Budget"]
    assert [cached[f"C{row}"].value for row in (2, 3, 4)] == [pytest.approx(41.9), None, None]  # cached blank
    assert sheet["D3"].value == '=IF(IF(OR(ISBLANK(A3),ISBLANK(B3)),FALSE,B3>A3),"over","ok")'


def test_summary_text_is_formatted_markdown_under_one_notes_heading(tmp_path: Path) -> None:
    markdown = "Traffic was **all** within *budget*.\nThe same paragraph with `code`.\n\n- first\n- second"
    sections = (TextBlock("a", None, markdown), TextBlock("b", None, "More."), TextBlock("c", "Actions", "Call."))
    document = replace(make_document(), blocks=sections)
    path = write(tmp_path, document)
    summary = openpyxl.load_workbook(path, rich_text=True)["Summary"]
    column = [row[0] for row in summary.iter_rows(min_col=1, max_col=1)]
    texts = [str(c.value) if c.value is not None else "" for c in column]
    assert texts.count("Notes") == 1 and "Actions" in texts
    first = next(c for c in column if str(c.value).startswith("Traffic was all"))
    assert str(first.value) == "Traffic was all within budget. The same paragraph with code."  # one paragraph
    runs = {(r, False, False) if isinstance(r, str) else (r.text, bool(r.font.b), bool(r.font.i)) for r in first.value}
    assert ("all", True, False) in runs and ("budget", False, True) in runs
    assert "**" not in "".join(texts) and "• first" in texts and "• second" in texts and "More." in texts


_FORMULA_PIECES = (
    "=", "{", "}", "A", "B12", "C2", "AA100", "0", "7", "1.5E3", "-", "+", "*", "/", ",", "(", ")", '"', "'", " ",
    "IF(", "ISBLANK(", "OR(", "SUM(", "SORT(", "SORTBY(", "FILTER(", "XLOOKUP(", "SINGLE(", "INGLE(", "ACOT(",
    "ACOTH(", "CONCAT(", "_xlfn.", "STDEV.S(", "LAMBDA(", "x", "12SORT(", "9INGLE(", "LET(", "TEXTJOIN(",
)  # fmt: skip


@pytest.mark.parametrize("future", [False, True])
def test_formulas_prepared_once_per_shape_are_what_xlsxwriter_prepares(future: bool) -> None:
    """The writer's worksheets prepare a column's formula once and put each row's digits back: for the writer's
    own formulas and for any string made of formula pieces, the result is xlsxwriter's own preparation."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from xlsxwriter.worksheet import Worksheet

    from reportctl.writers.xlsx_formula import formula_worksheet

    theirs, ours = Worksheet(), formula_worksheet()()
    theirs.use_future_functions = ours.use_future_functions = future
    written = [
        translate_formula(text, {"a": "C", "b": "D"}, {}).at(row)
        for text in ("a - 250", "a / b", "case when a > b then 'up' else 'down' end", "coalesce(a, b)")
        for row in (2, 10, 1048576)
    ]
    for formula in [*written, "=SINGLE(A1)", "=A12INGLE(B2)", "{=SORT(A1:A10)}", "=_xlfn.SORT(A1)"]:
        for expand in (False, True):
            assert ours._prepare_formula(formula, expand) == theirs._prepare_formula(formula, expand), formula

    @settings(max_examples=400, deadline=None, derandomize=True)
    @given(st.lists(st.sampled_from(_FORMULA_PIECES), max_size=12).map("".join), st.booleans())
    def same(formula: str, expand: bool) -> None:
        assert ours._prepare_formula(formula, expand) == theirs._prepare_formula(formula, expand)

    same()
