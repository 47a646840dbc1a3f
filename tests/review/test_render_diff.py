"""The diff as text, Markdown (a pull-request comment) and JSON."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import polars as pl
from test_diff import COLUMNS, document, services

from reportctl.document import ChartBlock, KpiBlock, KpiValue, TableBlock, TableColumn, TextBlock
from reportctl.review import ReportDiff, compare_reports
from reportctl.review.model import MembersChange, ValueChange
from reportctl.review.render_diff import render_diff

EXPECTED = Path(__file__).parent / "expected"


def pull_request() -> ReportDiff:
    """A typical change: a column renamed, a threshold raised (fewer rows), new wording, a chart added."""
    renamed = (*COLUMNS[:2], TableColumn("p95_ms", "p95 | ms", "number:1 ms"), COLUMNS[3])
    head_frame = services().head(2).rename({"p95_latency": "p95_ms"}).with_columns(pl.Series("p95_ms", [120.5, 82.0]))
    base = document(
        TextBlock("summary", None, "3 of 12 services breached a 1% error rate\nat least once."),
        KpiBlock("kpis", None, (KpiValue("Samples", 60, "integer"), KpiValue("Worst error rate", 0.0213, "percent:2"))),
        TableBlock("services", "Services", COLUMNS, services()),
        TextBlock("notes", "Notes", "Collected by the sample source."),
    )
    head = document(
        TextBlock("summary", None, "2 of 12 services breached a 2% error rate\nat least once."),
        KpiBlock("kpis", None, (KpiValue("Samples", 30, "integer"), KpiValue("Worst error rate", 0.0113, "percent:2"))),
        TableBlock("services", "Services", renamed, head_frame),
        ChartBlock("trend", "Trend", "line", head_frame, "service", ("samples",)),
    )
    diff = compare_reports((None, base, "main"), (None, head, "working tree"))  # type: ignore[arg-type]
    return dataclasses.replace(
        diff,
        settings=(
            ValueChange("schedule: cron", "0 8 * * MON", "0 9 * * MON"),
            MembersChange("delivery email: to", added=("grace@example.com",), removed=("team:sre",)),
        ),
        data=(ValueChange("dataset by_service: where", "worst_error > 0.01", "worst_error > 0.02"),),
    )


def test_markdown_fits_a_pull_request_comment() -> None:
    """The whole comment, kept in expected/pull-request.md so a reviewer can read it as GitHub shows it."""
    assert render_diff(pull_request(), "markdown") == (EXPECTED / "pull-request.md").read_text()


def test_text_for_a_terminal() -> None:
    assert render_diff(pull_request(), "text") + "\n" == (EXPECTED / "pull-request.txt").read_text()


def test_json_is_the_diff_as_data() -> None:
    diff = pull_request()
    assert json.loads(render_diff(diff, "json")) == json.loads(json.dumps(diff.as_dict()))


def test_colour_only_when_asked() -> None:
    plain = render_diff(pull_request(), "text")
    coloured = render_diff(pull_request(), "text", color=True)
    assert "\x1b[" not in plain
    assert "\x1b[31m[-3-]\x1b[0m" in coloured
    assert "\x1b[" not in render_diff(pull_request(), "markdown")


def test_nothing_changed() -> None:
    doc = document(TextBlock("s", None, "same"))
    diff = compare_reports((None, doc, "main"), (None, doc, "HEAD"))  # type: ignore[arg-type]
    assert render_diff(diff, "text") == "specs/server-health.yaml: main -> HEAD\nno change a reader would see"
    assert render_diff(diff, "markdown") == (
        "### `specs/server-health.yaml`: no change a reader would see\n\nBase `main`, head `HEAD`.\n"
    )


def test_long_values_are_collapsed_as_a_diff() -> None:
    query = "SELECT service, count(*) AS samples\nFROM metrics\nWHERE error_rate > 0.01\nGROUP BY service"
    doc = document(TextBlock("s", None, "same"))
    diff = dataclasses.replace(
        compare_reports((None, doc, "a"), (None, doc, "b")),  # type: ignore[arg-type]
        status="changed",
        data=(ValueChange("source metrics: query", query, query.replace("0.01", "0.02") + " -- ```"),),
    )
    markdown = render_diff(diff, "markdown")
    assert "| source metrics: query | see below | see below |" in markdown
    assert (
        "<details><summary>source metrics: query</summary>\n\n````diff\n"
        "@@ -1,4 +1,4 @@\n SELECT service, count(*) AS samples\n FROM metrics\n"
        "-WHERE error_rate > 0.01\n-GROUP BY service\n+WHERE error_rate > 0.02\n+GROUP BY service -- ```\n````"
    ) in markdown
