"""The comparison engine over documents built in the tests: every kind of change a reader would see."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from reportctl.document import (
    Block,
    ChartBlock,
    Document,
    KpiBlock,
    KpiValue,
    ReportInfo,
    TableBlock,
    TableColumn,
    TextBlock,
)
from reportctl.review import ReportDiff, compare_reports
from reportctl.review.model import MembersChange, SectionDiff, TableDiff, ValueChange


def document(*blocks: Block, title: str = "Server health", timezone: str = "UTC") -> Document:
    info = ReportInfo(
        name="server-health",
        title=title,
        description=None,
        run_id="preview",
        generated_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        timezone=timezone,
        spec_path="specs/server-health.yaml",
        spec_hash="sha256:0",
    )
    return Document(info, (), blocks)


def compare(base: Document | None, head: Document | None, **options: int) -> ReportDiff:
    return compare_reports((None, base), (None, head), **options)  # type: ignore[arg-type]


def services(**columns: list[object]) -> pl.DataFrame:
    data: dict[str, list[object]] = {
        "service": ["api", "db", "web"],
        "region": ["eu", "eu", "us"],
        "p95_latency": [120.5, 80.25, 99.0],
        "samples": [10, 20, 30],
    }
    data.update(columns)
    return pl.DataFrame({k: v for k, v in data.items() if v})


COLUMNS = (
    TableColumn("service", "Service"),
    TableColumn("region", "Region"),
    TableColumn("p95_latency", "p95 latency", "number:1 ms"),
    TableColumn("samples", "Samples", "integer"),
)


def table(frame: pl.DataFrame, columns: tuple[TableColumn, ...] = COLUMNS, title: str = "Services") -> TableBlock:
    return TableBlock("services", title, columns, frame)


def only_section(diff: ReportDiff) -> SectionDiff:
    assert len(diff.sections) == 1, diff.sections
    return diff.sections[0]


def table_diff(base: TableBlock, head: TableBlock, **options: int) -> TableDiff:
    section = only_section(compare(document(base), document(head), **options))
    assert section.table is not None
    return section.table


def fields(changes: tuple[object, ...]) -> dict[str, tuple[object, ...]]:
    found: dict[str, tuple[object, ...]] = {}
    for change in changes:
        if isinstance(change, ValueChange):
            found[change.field] = (change.base, change.head, change.delta)
        elif isinstance(change, MembersChange):
            found[change.field] = (change.removed, change.added)
    return found


def test_the_same_document_has_no_change() -> None:
    doc = document(TextBlock("intro", None, "Hello"), table(services()))
    diff = compare(doc, doc)
    assert not diff.changed
    assert diff.status == "unchanged"
    assert diff.sections == ()


def test_sections_added_removed_and_moved_by_id() -> None:
    a, b, c, d = (TextBlock(i, None, f"text {i}") for i in "abcd")
    diff = compare(document(a, b, c), document(c, a, d))
    by_id = {s.id: s for s in diff.sections}
    assert by_id["b"].status == "removed" and by_id["b"].base_position == 2
    assert by_id["d"].status == "added" and by_id["d"].head_position == 3
    assert by_id["d"].summary == "text, 2 words: text d"
    assert by_id["c"].moved and (by_id["c"].base_position, by_id["c"].head_position) == (3, 1)
    assert "a" not in by_id  # kept its place relative to the others: a reader sees it unmoved
    # the head's order, with the removed section where it stood (after a)
    assert [s.id for s in diff.sections] == ["c", "b", "d"]


def test_report_and_section_titles_and_time_zone() -> None:
    diff = compare(
        document(TextBlock("intro", "Overview", "x"), title="Health"),
        document(TextBlock("intro", "Summary", "x"), title="Health, week 48", timezone="Europe/Berlin"),
    )
    assert fields(diff.report) == {
        "title": ("Health", "Health, week 48", None),
        "time zone": ("UTC", "Europe/Berlin", None),
    }
    assert fields(only_section(diff).changes) == {"title": ("Overview", "Summary", None)}


def test_text_changes_as_lines_and_words() -> None:
    before = "5 of 18 services breached a 1%\nerror rate at least once.\n\nSee the table."
    after = "5 of 18 services breached a 2%\nerror rate at least twice.\n\nSee the table."
    text = only_section(compare(document(TextBlock("s", None, before)), document(TextBlock("s", None, after)))).text
    assert text is not None
    assert text.lines == (
        "@@ -1,3 +1,3 @@",
        "-5 of 18 services breached a 1%",
        "-error rate at least once.",
        "+5 of 18 services breached a 2%",
        "+error rate at least twice.",
        " ",
    )
    assert [(h.removed, h.added) for h in text.words] == [("1%", "2%"), ("once.", "twice.")]
    assert (text.words[0].before, text.words[0].after) == ("... 18 services breached a", "error rate at least ...")
    assert (text.removed_words, text.added_words) == (2, 2)


def test_columns_added_removed_relabelled_reformatted_and_formula() -> None:
    base = table(
        services(owner=["a", "b", "c"]),
        (*COLUMNS, TableColumn("owner", "Owner")),
    )
    head_columns = (
        TableColumn("service", "Service"),
        TableColumn("region", "Area"),
        TableColumn("p95_latency", "p95 latency", "number:0 ms"),
        TableColumn("samples", "Samples", "integer", formula="samples * 1"),
        TableColumn("budget", "Budget", "number:1"),
    )
    head = table(services(budget=[1.0, 2.0, 3.0]), head_columns)
    diff = table_diff(base, head)
    assert fields(diff.columns) == {
        "columns": (("Owner",), ("Budget",)),
        "column Area: label": ("Region", "Area", None),
        "column p95 latency: format": ("number:1 ms", "number:0 ms", None),
        "column Samples: formula": (None, "samples * 1", None),
    }
    assert diff.renamed == ()
    assert diff.cells_changed == 0 and diff.totals == ()


def test_a_column_renamed_with_the_same_values() -> None:
    renamed = (*COLUMNS[:2], TableColumn("p95_ms", "p95 latency", "number:1 ms"), COLUMNS[3])
    frame = services().rename({"p95_latency": "p95_ms"}).select("service", "region", "samples", "p95_ms")
    diff = table_diff(table(services()), table(frame, (*renamed[:2], renamed[3], renamed[2])))
    assert [(r.base, r.head, r.how) for r in diff.renamed] == [("p95_latency", "p95_ms", "same values")]
    assert fields(diff.columns) == {
        "column order": ("Service, Region, p95 latency, Samples", "Service, Region, Samples, p95 latency", None)
    }
    assert diff.cells_changed == 0


def test_a_column_renamed_in_place_with_new_values() -> None:
    renamed = (*COLUMNS[:2], TableColumn("p95_ms", "p95 (ms)", "number:1 ms"), COLUMNS[3])
    frame = services(p95_latency=[121.0, 80.25, 99.0]).rename({"p95_latency": "p95_ms"})
    diff = table_diff(table(services()), table(frame, renamed))
    assert [(r.base, r.head, r.how) for r in diff.renamed] == [("p95_latency", "p95_ms", "same position")]
    assert fields(diff.columns) == {"column p95 (ms): label": ("p95 latency", "p95 (ms)", None)}
    assert [(c.key, c.column, c.base, c.head) for c in diff.cells] == [
        ((("Service", "api"), ("Region", "eu")), "p95 (ms)", "120.5 ms", "121.0 ms")
    ]
    assert fields(diff.totals) == {"p95 (ms) total": ("299.8 ms", "300.3 ms", "+0.5 ms, +0.2%")}


def test_rows_totals_and_cells_keyed_by_the_leading_text_columns() -> None:
    head = pl.DataFrame(
        {
            "service": ["api", "web", "cache"],
            "region": ["eu", "us", "eu"],
            "p95_latency": [120.5, 101.0, 7.5],
            "samples": [10, 30, 5],
        }
    )
    diff = table_diff(table(services()), table(head))
    assert diff.key == ("service", "region")
    assert diff.key_how == "the leading columns Service, Region"
    assert diff.rows is None  # as many rows as before, but not the same ones
    assert (diff.rows_added, diff.rows_removed) == (1, 1)
    assert fields(diff.totals) == {
        "p95 latency total": ("299.8 ms", "229.0 ms", "-70.8 ms, -23.6%"),
        "Samples total": ("60", "45", "-15, -25.0%"),
    }
    assert [(dict(c.key), c.column, c.base, c.head) for c in diff.cells] == [
        ({"Service": "web", "Region": "us"}, "p95 latency", "99.0 ms", "101.0 ms")
    ]


def test_row_count_change_with_its_delta() -> None:
    diff = table_diff(table(services()), table(services().head(2)))
    assert fields((diff.rows,)) == {"rows": ("3", "2", "-1, -33.3%")}  # type: ignore[arg-type]
    assert diff.rows_removed == 1 and diff.cells_changed == 0


def test_a_key_from_a_unique_shared_column_when_the_leading_ones_repeat() -> None:
    columns = (TableColumn("region", "Region"), TableColumn("cpu", "CPU", "number:1"), TableColumn("host", "Host"))
    base = pl.DataFrame({"region": ["eu", "eu"], "cpu": [1.0, 2.0], "host": ["h1", "h2"]})
    head = pl.DataFrame({"region": ["eu", "eu"], "cpu": [2.5, 1.0], "host": ["h2", "h1"]})
    diff = table_diff(table(base, columns), table(head, columns))
    assert diff.key == ("host",)
    assert diff.key_how == "column Host, unique per row on both sides"
    assert [(dict(c.key).get("Host"), c.base, c.head) for c in diff.cells] == [("h2", "2.0", "2.5")]


def test_rows_by_position_when_no_column_is_unique() -> None:
    columns = (TableColumn("region", "Region"), TableColumn("cpu", "CPU", "number:1"))
    base = pl.DataFrame({"region": ["eu", "eu"], "cpu": [1.0, 2.0]})
    head = pl.DataFrame({"region": ["eu", "eu"], "cpu": [1.0, 3.0]})
    diff = table_diff(table(base, columns), table(head, columns))
    assert diff.key == ()
    assert diff.key_how.startswith("row position")
    assert [(c.key, c.base, c.head) for c in diff.cells] == [((("row", "2"),), "2.0", "3.0")]


def test_changed_cells_are_cut_to_max_cells_and_all_counted() -> None:
    base = pl.DataFrame({"host": [f"h{i:02}" for i in range(30)], "cpu": [float(i) for i in range(30)]})
    head = base.with_columns(pl.col("cpu") + 1)
    columns = (TableColumn("host", "Host"), TableColumn("cpu", "CPU", "number:1"))
    diff = table_diff(table(base, columns), table(head, columns), max_cells=4)
    assert diff.cells_changed == 30
    assert [dict(c.key)["Host"] for c in diff.cells] == ["h00", "h01", "h02", "h03"]


def test_floats_compare_exactly_and_show_a_readable_difference() -> None:
    columns = (TableColumn("host", "Host"), TableColumn("load", "Load", "number:2"))
    base = pl.DataFrame({"host": ["a"], "load": [0.1 + 0.2]})
    head = pl.DataFrame({"host": ["a"], "load": [0.3]})
    diff = table_diff(table(base, columns), table(head, columns))
    assert [(c.base, c.head) for c in diff.cells] == [("0.30000000000000004", "0.3")]
    (total,) = diff.totals
    assert total.delta is not None and total.delta.startswith("-0.0000000000")


def test_percent_columns_have_no_total() -> None:
    columns = (TableColumn("host", "Host"), TableColumn("errors", "Errors", "percent"))
    base = pl.DataFrame({"host": ["a", "b"], "errors": [0.01, 0.02]})
    head = pl.DataFrame({"host": ["a", "b"], "errors": [0.01, 0.03]})
    diff = table_diff(table(base, columns), table(head, columns))
    assert diff.totals == ()
    assert [(c.base, c.head) for c in diff.cells] == [("2.0%", "3.0%")]


def test_kpi_values_formats_labels_added_and_removed() -> None:
    base = KpiBlock(
        "kpis",
        None,
        (
            KpiValue("Gone", 1, "integer"),
            KpiValue("Samples", 50_000, "integer"),
            KpiValue("Worst error rate", 0.0213, "percent:2"),
            KpiValue("Mean CPU", 41.25, "number:1 %"),
        ),
    )
    head = KpiBlock(
        "kpis",
        None,
        (
            KpiValue("Samples", 41_234, "integer"),
            KpiValue("Worst error rate", 0.0113, "percent:2"),
            KpiValue("Average CPU", 41.25, "number:2 %"),
            KpiValue("Hosts", 12, "integer"),
        ),
    )
    changes = only_section(compare(document(base), document(head))).changes
    assert fields(changes) == {
        "KPIs": (("Gone",), ("Hosts",)),
        "KPI Samples": ("50,000", "41,234", "-8,766, -17.5%"),
        "KPI Worst error rate": ("2.13%", "1.13%", "-1.00 pp"),
        "KPI Average CPU: label": ("Mean CPU", "Average CPU", None),
        "KPI Average CPU: format": ("number:1 %", "number:2 %", None),
    }


def test_chart_type_axes_series_and_rows() -> None:
    frame = pl.DataFrame({"day": [1, 2, 3], "latency": [1.0, 2.0, 3.0], "cpu": [1, 2, 3], "service": ["a"] * 3})
    base = ChartBlock("trend", "Trend", "line", frame, "day", ("latency",))
    head = ChartBlock("trend", "Trend", "bar", frame.head(2), "day", ("latency", "cpu"), series="service")
    changes = only_section(compare(document(base), document(head))).changes
    assert fields(changes) == {
        "chart": ("line", "bar", None),
        "y": ("latency", "latency, cpu", None),
        "series": (None, "service", None),
        "rows": ("3", "2", "-1, -33.3%"),
    }


def test_a_section_that_changes_its_type() -> None:
    diff = compare(document(TextBlock("x", None, "a")), document(TableBlock("x", None, COLUMNS, services())))
    assert fields(only_section(diff).changes) == {"type": ("text", "table", None)}


@pytest.mark.parametrize(("base", "head", "status"), [(None, "doc", "added"), ("doc", None, "removed")])
def test_a_report_added_or_removed_lists_every_section(base: str | None, head: str | None, status: str) -> None:
    doc = document(TextBlock("intro", None, "Hello"), table(services()))
    diff = compare(doc if base else None, doc if head else None)
    assert diff.status == status and diff.changed
    assert [(s.id, s.status) for s in diff.sections] == [("intro", status), ("services", status)]
    assert diff.sections[1].summary == "table, 3 rows; columns: Service, Region, p95 latency, Samples"
    assert set(fields(diff.report)) == {"title"}
    assert fields(diff.report)["title"] == (
        ("Server health", None, None) if status == "removed" else (None, "Server health", None)
    )


def test_as_dict_gives_raw_values_for_machines() -> None:
    base = document(KpiBlock("kpis", None, (KpiValue("Samples", 10, "integer"),)))
    head = document(KpiBlock("kpis", None, (KpiValue("Samples", 12, "integer"),)))
    data = compare(base, head).as_dict()
    assert data["changed"] is True and data["status"] == "changed"
    (section,) = data["sections"]
    assert section["changes"] == [
        {
            "field": "KPI Samples",
            "base": "10",
            "head": "12",
            "delta": "+2, +20.0%",
            "base_value": 10,
            "head_value": 12,
            "kind": "value",
        }
    ]
