"""Chart figures (pure, no browser) and their export with the machine's real Chromium."""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from reportctl.chart_export import BROWSER_ENV, BrowserMissingError, check_browser, export_charts, find_browser
from reportctl.charts import PALETTE, ChartError, build_figure, figure_json
from reportctl.document import ChartBlock, ChartImage
from reportctl.errors import ExitCode

BERLIN = "Europe/Berlin"


def require_browser() -> Path:
    """Skip without Chromium, except under REPORTCTL_REQUIRE_SERVICES=1 (CI), where that fails."""
    path = find_browser()
    if path is not None:
        return path
    reason = f"no Chrome/Chromium found (PATH or ${BROWSER_ENV})"
    if os.environ.get("REPORTCTL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and REPORTCTL_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason)


def latency_frame() -> pl.DataFrame:
    """Two services over three hours, aware UTC times, including a NaN gap."""
    hours = [datetime(2026, 11, 27, h, tzinfo=UTC) for h in range(3)]
    return pl.DataFrame(
        {
            "ts": hours * 2,
            "service": ["api"] * 3 + ["web"] * 3,
            "p95_latency": [120.5, float("nan"), 99.0, 80.0, 85.5, 90.0],
            "error_rate": [0.01, 0.02, 0.0, 0.005, 0.1, 0.03],
            "revenue": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        }
    )


def chart(kind: str, **changes: object) -> ChartBlock:
    fields: dict[str, object] = {
        "id": f"{kind}_chart",
        "title": f"{kind} chart",
        "chart": kind,
        "frame": latency_frame(),
        "x": "ts",
        "y": ("p95_latency",),
        "format": "number:0 ms",
    }
    fields.update(changes)
    return ChartBlock(**fields)  # type: ignore[arg-type]  # checked at run time by the dataclass


# -- figures -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "trace_type"),
    [
        ("line", "scatter"),
        ("bar", "bar"),
        ("area", "scatter"),
        ("scatter", "scatter"),
        ("pie", "pie"),
        ("donut", "pie"),
        ("heatmap", "heatmap"),
    ],
)
def test_every_kind_builds_its_trace_type(kind: str, trace_type: str) -> None:
    block = chart(kind, series="service", x="service" if kind in ("pie", "donut") else "ts")
    figure = build_figure(block, BERLIN)
    assert {trace.type for trace in figure.data} == {trace_type}
    assert figure.layout.title.text == f"{kind} chart"
    assert figure.layout.font.family == "DejaVu Sans, Arial, sans-serif"
    assert figure.layout.paper_bgcolor == "#ffffff"


def test_series_splits_rows_into_traces_in_order_of_appearance() -> None:
    figure = build_figure(chart("line", series="service"), BERLIN)
    assert [trace.name for trace in figure.data] == ["api", "web"]
    assert [trace.line.color for trace in figure.data] == list(PALETTE[:2])
    assert list(figure.data[1].y) == [80.0, 85.5, 90.0]
    assert figure.data[0].y[1] is None  # NaN is a gap, not invalid JSON
    assert figure.layout.showlegend is True


def test_several_y_columns_are_traces_named_by_humanised_column() -> None:
    figure = build_figure(chart("line", y=("p95_latency", "revenue"), format=None), BERLIN)
    assert [trace.name for trace in figure.data] == ["P95 latency", "Revenue"]
    assert figure.layout.yaxis.title.text in ("", None)


def test_bar_groups_unless_stacked() -> None:
    assert build_figure(chart("bar", series="service"), BERLIN).layout.barmode == "group"
    assert build_figure(chart("bar", series="service", stacked=True), BERLIN).layout.barmode == "relative"


def test_area_stacks_with_a_series_and_fills_to_zero_alone() -> None:
    stacked = build_figure(chart("area", series="service"), BERLIN)
    assert [trace.stackgroup for trace in stacked.data] == ["one", "one"]
    alone = build_figure(chart("area"), BERLIN)
    assert alone.data[0].fill == "tozeroy"
    assert alone.data[0].stackgroup is None


def test_donut_has_a_hole_and_pie_none() -> None:
    assert build_figure(chart("donut", x="service"), BERLIN).data[0].hole == 0.5
    assert build_figure(chart("pie", x="service"), BERLIN).data[0].hole == 0


def test_heatmap_rows_come_from_the_series_and_values_from_y() -> None:
    figure = build_figure(chart("heatmap", series="service"), BERLIN)
    heatmap = figure.data[0]
    assert list(heatmap.y) == ["api", "web"]
    assert len(heatmap.x) == 3
    assert [list(row) for row in heatmap.z] == [[120.5, None, 99.0], [80.0, 85.5, 90.0]]


def test_heatmap_without_series_needs_two_y_columns() -> None:
    with pytest.raises(ChartError, match="chart 'heatmap_chart': a heatmap needs"):
        build_figure(chart("heatmap"), BERLIN)
    figure = build_figure(chart("heatmap", y=("service", "revenue")), BERLIN)
    assert list(figure.data[0].y) == ["api", "web"]


def test_axis_titles_from_labels_else_humanised_columns_with_the_zone() -> None:
    plain = build_figure(chart("line"), BERLIN)
    assert plain.layout.xaxis.title.text == "Ts (Europe/Berlin)"
    assert plain.layout.yaxis.title.text == "P95 latency"
    labelled = build_figure(chart("line", x_label="Hour", y_label="Latency"), BERLIN)
    assert (labelled.layout.xaxis.title.text, labelled.layout.yaxis.title.text) == ("Hour", "Latency")


def test_axis_titles_and_trace_names_use_the_labels_tables_give_the_columns() -> None:
    labels = {"ts": "Time", "p95_latency": "p95 latency (ms)", "revenue": "Revenue (EUR)"}
    single = build_figure(replace(chart("line"), labels=labels), BERLIN)
    assert (single.layout.xaxis.title.text, single.layout.yaxis.title.text) == ("Time", "p95 latency (ms)")
    several = build_figure(replace(chart("line", y=("p95_latency", "revenue")), series=None, labels=labels), BERLIN)
    assert [trace.name for trace in several.data] == ["p95 latency (ms)", "Revenue (EUR)"]


def test_a_point_between_gaps_is_drawn_as_a_marker() -> None:
    frame = pl.DataFrame({"day": [1, 2, 3, 4, 5, 6], "value": [1.0, 2.0, None, 4.0, None, 6.0]})
    block = ChartBlock("gaps", None, "line", frame, "day", ("value",))
    trace = build_figure(block, "UTC").data[0]
    assert trace.mode == "lines+markers"
    assert list(trace.marker.size) == [0, 0, 0, 6, 0, 6]
    joined = build_figure(replace(block, frame=frame.fill_null(0.0)), "UTC").data[0]
    assert joined.mode == "lines"


def test_the_locale_sets_the_separators_and_the_currency_symbol() -> None:
    figure = build_figure(chart("line", format="currency:EUR"), BERLIN, "de_DE")
    assert figure.layout.separators == ",."
    assert (figure.layout.yaxis.tickprefix, figure.layout.yaxis.ticksuffix) == ("", " €")
    assert build_figure(chart("line"), BERLIN).layout.separators == ".,"


@pytest.mark.parametrize(
    ("spec", "tickformat", "prefix", "suffix"),
    [
        ("number:0 ms", ",.0f", "", " ms"),
        ("number:2", ",.2f", "", ""),
        ("integer req", ",.0f", "", " req"),
        ("percent:1", ",.1%", "", ""),
        ("currency:EUR", ",.2f", "€", ""),
        ("currency:CHF:0", ",.0f", "CHF ", ""),
    ],
)
def test_value_axis_format_follows_the_column_format(spec: str, tickformat: str, prefix: str, suffix: str) -> None:
    axis = build_figure(chart("line", format=spec), BERLIN).layout.yaxis
    assert (axis.tickformat, axis.tickprefix or "", axis.ticksuffix or "") == (tickformat, prefix, suffix)
    assert axis.hoverformat == tickformat


def test_bytes_and_durations_get_ticks_labelled_like_the_other_writers() -> None:
    frame = pl.DataFrame({"day": [1, 2], "size": [0, 3 * 1024**2], "took": [timedelta(0), timedelta(hours=1)]})
    sizes = build_figure(ChartBlock("s", None, "line", frame, "day", ("size",), format="bytes"), "UTC")
    assert sizes.layout.yaxis.ticktext[:2] == ("0 B", "1.0 MiB")
    took = build_figure(ChartBlock("t", None, "line", frame, "day", ("took",)), "UTC")
    assert took.layout.yaxis.ticktext == ("0s", "10m", "20m", "30m", "40m", "50m", "1h")
    assert list(took.data[0].y) == [0.0, 3600.0]


def test_datetimes_are_shown_in_the_report_time_zone() -> None:
    figure = build_figure(chart("line"), BERLIN)
    assert figure.layout.xaxis.type == "date"
    first = figure_json(figure).split('"x":["', 1)[1][:19]
    assert first == "2026-11-27T01:00:00"  # 00:00 UTC is 01:00 in Berlin in November


def test_same_block_gives_the_same_figure_json() -> None:
    first = figure_json(build_figure(chart("bar", series="service"), BERLIN))
    second = figure_json(build_figure(chart("bar", series="service"), BERLIN))
    assert first == second
    assert '"uid":"trace-0"' in first


def test_empty_data_says_so() -> None:
    figure = build_figure(chart("line", frame=latency_frame().clear()), BERLIN)
    assert figure.layout.annotations[0].text == "No data for this period"


def test_a_missing_column_names_the_chart() -> None:
    with pytest.raises(ChartError, match="chart 'line_chart': no column 'nope'"):
        build_figure(chart("line", y=("nope",)), BERLIN)


# -- browser -------------------------------------------------------------------------------------------------


def test_no_browser_is_one_line_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BROWSER_ENV, str(tmp_path / "missing-chrome"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_browser() is None
    with pytest.raises(BrowserMissingError) as caught:
        export_charts([chart("line")], {"png"}, timezone=BERLIN)
    message = str(caught.value)
    assert "\n" not in message
    assert "apt-get install chromium-headless-shell" in message
    assert BROWSER_ENV in message
    assert caught.value.exit_code == ExitCode.FAILED
    assert check_browser() == (False, message)


def test_an_explicit_browser_path_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    browser = require_browser()
    monkeypatch.setenv(BROWSER_ENV, str(browser))
    monkeypatch.setenv("PATH", "")
    assert find_browser() == browser


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (the first, right after the signature)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def exported() -> Iterator[tuple[dict[str, ChartImage], dict[str, float], list[ChartBlock]]]:
    """Three charts, two of them the same figure, exported in one browser session for this module."""
    require_browser()
    same = chart("bar", id="again", series="service")
    blocks = [chart("line", series="service"), chart("bar", series="service"), same]
    stats: dict[str, float] = {}
    images = export_charts(blocks, {"png", "svg"}, timezone=BERLIN, width=400, height=300, scale=2, stats=stats)
    yield images, stats, blocks


def test_identical_figures_are_exported_once(
    exported: tuple[dict[str, ChartImage], dict[str, float], list[ChartBlock]],
) -> None:
    images, stats, blocks = exported
    assert list(images) == [b.id for b in blocks]
    assert (stats["figures"], stats["exported"]) == (3, 2)
    assert stats["browser_start"] > 0
    assert stats["export"] > 0
    assert images["again"] is images["bar_chart"]


def test_png_is_at_twice_the_css_size(
    exported: tuple[dict[str, ChartImage], dict[str, float], list[ChartBlock]],
) -> None:
    image = exported[0]["line_chart"]
    assert (image.width, image.height, image.png_scale) == (400, 300, 2)
    assert png_size(image.png or b"") == (800, 600)


def test_svg_parses_and_has_the_css_size(
    exported: tuple[dict[str, ChartImage], dict[str, float], list[ChartBlock]],
) -> None:
    root = ET.fromstring(exported[0]["line_chart"].svg or b"")
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (root.get("width"), root.get("height")) == ("400", "300")
    text = "".join(root.itertext())
    assert "P95 latency" in text  # axis titles are drawn; the chart title is left to the writers


def test_export_is_byte_stable(
    exported: tuple[dict[str, ChartImage], dict[str, float], list[ChartBlock]],
) -> None:
    images, _, blocks = exported
    again = export_charts(blocks[:1], {"png", "svg"}, timezone=BERLIN, width=400, height=300, scale=2)
    assert again["line_chart"].png == images["line_chart"].png
    assert again["line_chart"].svg == images["line_chart"].svg


def test_check_browser_exports_a_tiny_figure() -> None:
    require_browser()
    ok, message = check_browser()
    assert ok, message
    assert "\n" not in message


def test_unknown_image_format_is_refused() -> None:
    with pytest.raises(ChartError, match="unknown chart image format 'gif'"):
        export_charts([chart("line")], {"gif"}, timezone=BERLIN)


def test_a_browser_that_stops_answering_fails_the_export_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import kaleido

    from reportctl import chart_export

    require_browser()

    async def never_answers(*_args: object, **_kwargs: object) -> bytes:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(chart_export, "BROWSER_TIMEOUT_SECONDS", 5)  # long enough to start the browser
    monkeypatch.setattr(kaleido.Kaleido, "calc_fig", never_answers)
    with pytest.raises(ChartError, match="png export failed: the browser did not answer within 5 s"):
        export_charts([chart("line")], {"png"}, timezone=BERLIN)
