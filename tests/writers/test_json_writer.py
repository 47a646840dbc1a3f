"""The JSON writer, checked by parsing its file with ``json`` and comparing with the document."""

from __future__ import annotations

import json
import math
import re
import statistics
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError
from writer_documents import REGION, SINCE, WINDOW, key_figures, last_7_days, report_info

from reportctl.document import (
    ChartBlock,
    Document,
    KpiBlock,
    KpiValue,
    ParameterValue,
    TableBlock,
    TableColumn,
    TextBlock,
)
from reportctl.errors import RenderError
from reportctl.writers.json import JsonWriter

BERLIN = ZoneInfo("Europe/Berlin")
LATENCY = [120.5, float("nan"), None, 80.25, float("inf")]
REQUESTS = [10, None, 30, 40, 7]


def metrics_frame() -> pl.DataFrame:
    """Aware datetimes across a DST change, dates, nulls, NaN and inf."""
    return pl.DataFrame(
        {
            "service": ["api", "web", None, "db", 'q"ueue\n'],
            "ts": [
                datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN),
                datetime(2026, 3, 29, 3, 30, 0, 250000, tzinfo=BERLIN),
                None,
                datetime(2026, 11, 28, 14, 5, tzinfo=BERLIN),
                datetime(2026, 11, 28, 14, 6, tzinfo=BERLIN),
            ],
            "day": [date(2026, 3, 29), None, date(2026, 11, 28), date(2026, 1, 1), date(2026, 1, 2)],
            "latency_ms": LATENCY,
            "requests": REQUESTS,
            "cost": pl.Series([Decimal("1.50"), None, Decimal("2.25"), Decimal("0"), None], dtype=pl.Decimal(10, 2)),
            "took": [timedelta(seconds=1.5), None, timedelta(minutes=2), timedelta(0), None],
            "ok": [True, False, None, True, True],
        }
    )


def make_document(frame: pl.DataFrame | None = None, *, extra: tuple[Any, ...] = ()) -> Document:
    frame = metrics_frame() if frame is None else frame
    info = report_info(
        tz=BERLIN, timezone="Europe/Berlin", version="1.2", owner="sre", labels={"tier": "gold", "area": "ops"}
    )
    parameters = (
        last_7_days(BERLIN),
        REGION,
        SINCE,
        ParameterValue("at", "At", "datetime", datetime(2026, 11, 28, 8, tzinfo=BERLIN)),
        WINDOW,
        ParameterValue("limit", "Limit", "integer", 10),
        ParameterValue("threshold", "Threshold", "number", float("nan")),
    )
    columns = (
        TableColumn("service", "Service"),
        TableColumn("ts", "Time", "datetime"),
        TableColumn("day", "Day", "date:%d %b"),
        TableColumn("latency_ms", "Latency (ms)", "number:1 ms"),
        TableColumn("requests", "Requests", "integer"),
        TableColumn("cost", "Cost", "currency:EUR"),
        TableColumn("took", "Took", "duration"),
        TableColumn("ok", "OK"),
    )
    blocks = (
        TextBlock("summary", "Summary", "**3** services breached 1% errors."),
        key_figures(),
        TableBlock("by_service", "By service", columns, frame),
        ChartBlock("trend", None, "line", frame.select("day", "latency_ms"), "day", ("latency_ms",)),
        *extra,
    )
    return Document(info, parameters, blocks)


def write(document: Document, directory: Path, **options: Any) -> tuple[Path, dict[str, Any]]:
    [path] = JsonWriter(options).write(document, directory)
    return path, json.loads(path.read_text(encoding="utf-8"))


def test_report_and_parameters(tmp_path: Path) -> None:
    path, data = write(make_document(), tmp_path)
    assert path == tmp_path / "server-health.json"
    assert list(data) == ["report", "parameters", "sections"]
    assert data["report"] == {
        "name": "server-health",
        "title": "Server health",
        "description": None,
        "version": "1.2",
        "owner": "sre",
        "labels": {"area": "ops", "tier": "gold"},
        "generated_at": "2026-11-28T09:00:01+01:00",
        "timezone": "Europe/Berlin",
        "locale": "en_US",
        "spec_path": "specs/server-health.yaml",
        "spec_hash": "sha256:0123",
    }
    assert data["parameters"] == {
        "period": {
            "name": "last_7_days",
            "start": "2026-11-21T00:00:00+01:00",
            "end": "2026-11-28T00:00:00+01:00",
        },
        "region": "eu",
        "since": "2026-01-01",
        "at": "2026-11-28T08:00:00+01:00",
        "window": 300.0,
        "limit": 10,
        "threshold": None,
    }


def test_text_kpi_and_chart_sections(tmp_path: Path) -> None:
    _, data = write(make_document(), tmp_path)
    text, kpis, table, chart = data["sections"]
    assert text == {
        "id": "summary",
        "type": "text",
        "title": "Summary",
        "markdown": "**3** services breached 1% errors.",
    }
    assert kpis["type"] == "kpis"
    assert kpis["items"] == [
        {
            "label": "Worst p95",
            "value": 1234.4,
            "display": "1,234 ms",
            "format": "number:0 ms",
            "description": "highest p95 latency",
        },
        {"label": "Error rate", "value": 0.0853, "display": "8.5%", "format": "percent", "description": None},
        {
            "label": "Last seen",
            "value": "2026-11-28T13:05:00+00:00",
            "display": "2026-11-28 14:05 CET",
            "format": None,
            "description": None,
        },
        {"label": "Missing", "value": None, "display": "—", "format": "number:1", "description": None},
    ]
    assert table["type"] == "table"
    assert {k: chart[k] for k in chart if k != "rows"} == {
        "id": "trend",
        "type": "chart",
        "title": None,
        "chart": "line",
        "x": "day",
        "y": ["latency_ms"],
        "series": None,
        "stacked": False,
        "x_label": None,
        "y_label": None,
        "format": None,
    }
    assert chart["rows"][0] == {"day": "2026-03-29", "latency_ms": 120.5}


def test_table_rows_are_raw_values(tmp_path: Path) -> None:
    frame = metrics_frame()
    _, data = write(make_document(frame), tmp_path)
    table = data["sections"][2]
    assert table["columns"][3] == {
        "name": "latency_ms",
        "label": "Latency (ms)",
        "format": "number:1 ms",
        "formula": None,
        "note": None,
    }
    assert table["row_count"] == frame.height
    rows = table["rows"]
    assert [list(row) for row in rows] == [frame.columns] * frame.height
    assert [row["service"] for row in rows] == frame["service"].to_list()
    assert [row["requests"] for row in rows] == REQUESTS
    assert [row["latency_ms"] for row in rows] == [120.5, None, None, 80.25, None]
    assert [row["day"] and date.fromisoformat(row["day"]) for row in rows] == frame["day"].to_list()
    assert [row["cost"] for row in rows] == [1.5, None, 2.25, 0.0, None]
    assert [row["took"] for row in rows] == [1.5, None, 120.0, 0.0, None]
    assert [row["ok"] for row in rows] == [True, False, None, True, True]
    stamps = [row["ts"] for row in rows]
    assert stamps[:2] == ["2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00.250+02:00"]
    assert [s and datetime.fromisoformat(s) for s in stamps] == frame["ts"].to_list()


def test_datetimes_are_shown_in_the_report_zone(tmp_path: Path) -> None:
    frame = pl.DataFrame({"ts": [datetime(2026, 7, 1, 12, tzinfo=UTC)], "naive": [datetime(2026, 7, 1, 12, 30)]})
    document = Document(make_document().info, (), (TableBlock("t", None, (), frame),))
    _, data = write(document, tmp_path)
    [row] = data["sections"][0]["rows"]
    assert row == {"ts": "2026-07-01T14:00:00+02:00", "naive": "2026-07-01T12:30:00"}


def test_summary_matches_values_computed_by_hand(tmp_path: Path) -> None:
    _, data = write(make_document(), tmp_path)
    summary = data["sections"][2]["summary"]
    assert list(summary) == ["latency_ms", "requests", "cost"]

    requests = [r for r in REQUESTS if r is not None]
    assert summary["requests"]["min"] == min(requests)
    assert summary["requests"]["max"] == max(requests)
    assert math.isclose(summary["requests"]["mean"], statistics.mean(requests))
    assert math.isclose(summary["requests"]["std"], statistics.stdev(requests))

    costs = [1.5, 2.25, 0.0]
    assert math.isclose(summary["cost"]["mean"], statistics.mean(costs))
    assert math.isclose(summary["cost"]["std"], statistics.stdev(costs))
    assert (summary["cost"]["min"], summary["cost"]["max"]) == (0.0, 2.25)

    # NaN and nulls are left out; inf makes mean and std infinite, which JSON writes as null.
    assert summary["latency_ms"] == {"mean": None, "min": 80.25, "max": None, "std": None}


def test_summary_without_infinities() -> None:
    from reportctl.writers.json import _summary

    values = [3.0, float("nan"), 1.0, None, 8.0]
    summary = _summary(pl.DataFrame({"v": values, "s": ["a"] * 5}))
    finite = [3.0, 1.0, 8.0]
    assert summary == {"v": {"mean": statistics.mean(finite), "min": 1.0, "max": 8.0, "std": statistics.stdev(finite)}}


def test_indent_pretty_prints_the_skeleton_only(tmp_path: Path) -> None:
    document = make_document()
    (tmp_path / "compact").mkdir()
    (tmp_path / "pretty").mkdir()
    compact_path, compact = write(document, tmp_path / "compact")
    pretty_path, pretty = write(document, tmp_path / "pretty", indent=2)
    assert compact == pretty
    assert compact_path.read_text().count("\n") == 1
    lines = pretty_path.read_text().splitlines()
    assert lines[:3] == ["{", '  "report": {', '    "name": "server-health",']
    assert any(line.startswith('      "rows": [{"service":"api",') for line in lines)
    # Apart from the one-line rows, the layout is exactly what json.dumps(indent=2) gives.
    skeleton = {
        **pretty,
        "sections": [{**s, "rows": "ROWS"} if "rows" in s else s for s in pretty["sections"]],
    }
    text = re.sub(r'"rows": \[.*\]$', '"rows": "ROWS"', pretty_path.read_text(), flags=re.MULTILINE)
    assert text == json.dumps(skeleton, indent=2, ensure_ascii=False) + "\n"


def test_second_write_is_byte_identical(tmp_path: Path) -> None:
    document = make_document()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first, _ = write(document, tmp_path / "a", indent=2)
    second, _ = write(document, tmp_path / "b", indent=2)
    assert first.read_bytes() == second.read_bytes()


def test_empty_table(tmp_path: Path) -> None:
    _, data = write(make_document(metrics_frame().clear()), tmp_path)
    table = data["sections"][2]
    assert (table["row_count"], table["rows"]) == (0, [])
    assert table["summary"]["requests"] == {"mean": None, "min": None, "max": None, "std": None}


def test_large_table_round_trips(tmp_path: Path) -> None:
    rows = 200_000
    rng = np.random.default_rng(11)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "ts": pl.datetime_range(start, start + timedelta(seconds=rows - 1), "1s", eager=True, time_zone="UTC"),
            "value": rng.normal(100, 15, rows),
            "count": rng.integers(0, 1_000_000, rows),
        }
    )
    block = TableBlock("big", None, (), frame)
    document = Document(make_document().info, (), (block,))
    _, data = write(document, tmp_path)
    [section] = data["sections"]
    assert section["row_count"] == rows
    back = pl.DataFrame(section["rows"]).with_columns(
        pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S%:z").dt.convert_time_zone("UTC")
    )
    assert back.equals(frame)
    assert math.isclose(section["summary"]["value"]["mean"], float(np.mean(frame["value"].to_numpy())))


def test_failure_is_a_render_error_and_leaves_no_file(tmp_path: Path) -> None:
    bad = TableBlock("bad", None, (TableColumn("nope", "Nope"),), pl.DataFrame({"a": [1]}))
    with pytest.raises(RenderError, match=r"^json: cannot write server-health.json: ") as caught:
        JsonWriter().write(make_document(extra=(bad,)), tmp_path)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []

    bad_format = KpiBlock("k", None, (KpiValue("x", 1, "numbr"),))
    with pytest.raises(RenderError, match="unknown format 'numbr'"):
        JsonWriter().write(make_document(extra=(bad_format,)), tmp_path)


def test_options() -> None:
    assert JsonWriter().options.indent is None
    assert JsonWriter(JsonWriter.Options(format="json", indent=4)).options.indent == 4
    with pytest.raises(ValidationError):
        JsonWriter.Options(indent=-1)
    with pytest.raises(ValidationError):
        JsonWriter.Options(format="csv")


def test_registered_as_a_writer_plugin() -> None:
    [entry] = [ep for ep in entry_points(group="reportctl.writers") if ep.name == "json"]
    assert entry.load() is JsonWriter


@pytest.mark.parametrize(
    "frame",
    [
        pl.DataFrame({"a": [1, 2, 3], "s": ["two\nlines", 'a "quote"', None], "f": [1.5, float("nan"), None]}),
        pl.DataFrame({"a": []}, schema={"a": pl.Int64}),
        pl.DataFrame({"l": [[1, 2], [3]], "d": [{"k": 1}, {"k": None}]}),
        pl.DataFrame({"n": range(200_000), "s": ["x" * 30] * 200_000}),  # several 1 MiB chunks
    ],
    ids=["escapes", "empty", "nested", "chunks"],
)
def test_rows_are_streamed_as_the_bytes_write_json_gives(frame: pl.DataFrame, tmp_path: Path) -> None:
    from reportctl.writers.json import _write_rows

    with (tmp_path / "rows.json").open("wb") as file:
        _write_rows(file, frame)
    frame.write_json(tmp_path / "expected.json")
    assert (tmp_path / "rows.json").read_bytes() == (tmp_path / "expected.json").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected.json", "rows.json"]  # nothing left beside
