"""The HTML writer, checked by parsing its file with html5lib in strict mode and reading the tree back."""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
from dataclasses import replace
from datetime import date, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

import html5lib
import polars as pl
import pytest
from pydantic import ValidationError
from writer_documents import REGION, WINDOW, key_figures, last_7_days, report_info

from reportctl.chart_export import find_browser
from reportctl.document import ChartBlock, Document, TableBlock, TableColumn, TextBlock
from reportctl.errors import RenderError
from reportctl.formats import parse_format
from reportctl.writers.html import HtmlWriter, _plotly_js, check_html_template

BERLIN = ZoneInfo("Europe/Berlin")
MARKDOWN = """**3** services breached *1%* errors.

- api
- web, see [the status page](https://status.example.com)

<script>alert(1)</script>

![logo](https://example.com/logo.png)

# Follow-ups
"""
COLUMNS = (
    TableColumn("service", "Service"),
    TableColumn("ts", "Time", "datetime"),
    TableColumn("latency_ms", "Latency", "number:1 ms"),
    TableColumn("requests", "Requests", "integer"),
    TableColumn("share", "Share", "percent"),
)


def metrics_frame(rows: int = 5) -> pl.DataFrame:
    start = datetime(2026, 11, 21, tzinfo=BERLIN)
    return pl.DataFrame(
        {
            "service": [f"svc <{i}> & co" if i == 1 else f"svc-{i}" for i in range(rows)],
            "ts": [start + timedelta(hours=i) for i in range(rows)],
            "latency_ms": [None if i == 2 else 100.25 + i * 1000 for i in range(rows)],
            "requests": [i * 12345 for i in range(rows)],
            "share": [i / 7 for i in range(rows)],
        }
    )


def make_document(*blocks: Any, frame: pl.DataFrame | None = None) -> Document:
    info = report_info(
        tz=BERLIN,
        timezone="Europe/Berlin",
        title="Server health <weekly>",
        description="Latency & errors of every service.",
    )
    parameters = (last_7_days(BERLIN), REGION, WINDOW)
    blocks = blocks or (
        TextBlock("summary", "Summary", MARKDOWN),
        key_figures(),
        TableBlock("by_service", "By service", COLUMNS, metrics_frame() if frame is None else frame),
    )
    return Document(info, parameters, blocks)


def chart_block(chart_id: str = "trend", title: str | None = "Latency trend") -> ChartBlock:
    days = pl.DataFrame({"day": [date(2026, 11, 21) + timedelta(days=i) for i in range(3)], "p95": [1.5, 2.0, 1.0]})
    return ChartBlock(chart_id, title, "line", days, "day", ("p95",), format="number:1 ms")


def write(document: Document, directory: Path, **options: Any) -> tuple[Path, str]:
    [path] = HtmlWriter(options).write(document, directory)
    return path, path.read_text(encoding="utf-8")


def parse(text: str) -> Element:
    """Parse strictly (any parse error raises); the inlined plotly.js is checked apart, as html5lib takes
    minutes over 4 MB of script."""
    bundle = _plotly_js()
    if bundle in text:
        text = text.replace(bundle, "/* plotly.js */")
    tree: Element = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)
    return tree


def text_of(element: Element) -> str:
    return "".join(element.itertext())


def by_class(tree: Element, tag: str, name: str) -> list[Element]:
    return [e for e in tree.iter(tag) if name in (e.get("class") or "").split()]


def test_valid_html5_document(tmp_path: Path) -> None:
    path, text = write(make_document(), tmp_path)
    assert path == tmp_path / "server-health.html"
    assert text.startswith("<!DOCTYPE html>\n")
    tree = parse(text)
    assert tree.get("lang") == "en-US"
    metas = {m.get("name") or "charset": m.get("content") or m.get("charset") for m in tree.iter("meta")}
    assert metas["charset"] == "utf-8"
    assert metas["viewport"] == "width=device-width, initial-scale=1"
    assert text_of(tree.find("head/title")) == "Server health <weekly>"  # type: ignore[arg-type]


def test_title_block(tmp_path: Path) -> None:
    tree = parse(write(make_document(), tmp_path)[1])
    [header] = by_class(tree, "header", "report-header")
    assert text_of(header.find("h1")) == "Server health <weekly>"  # type: ignore[arg-type]
    assert text_of(by_class(header, "p", "description")[0]) == "Latency & errors of every service."
    pairs = [(text_of(d.find("dt")), text_of(d.find("dd"))) for d in header.iter("div")]  # type: ignore[arg-type]
    assert pairs == [("Period", "2026-11-21 \N{EN DASH} 2026-11-27"), ("Region", "eu"), ("Window", "5m")]
    assert text_of(by_class(header, "p", "generated")[0]) == "Generated 2026-11-28 09:00 CET"


def test_markdown_text_is_rendered_and_raw_html_escaped(tmp_path: Path) -> None:
    text = write(make_document(), tmp_path)[1]
    tree = parse(text)
    [prose] = by_class(tree, "div", "prose")
    assert [text_of(e) for e in prose.iter("strong")] == ["3"]
    assert [text_of(e) for e in prose.iter("em")] == ["1%"]
    assert [text_of(li) for li in prose.iter("li")] == ["api", "web, see the status page"]
    assert [a.get("href") for a in prose.iter("a")] == ["https://status.example.com", "https://example.com/logo.png"]
    assert "<script>alert(1)</script>" in text_of(prose)
    assert not any("alert" in text_of(s) for s in tree.iter("script"))
    assert list(tree.iter("script")) == []  # no charts, no scripts at all
    assert list(tree.iter("img")) == []  # a picture by URL became a link to it
    assert [text_of(h) for h in prose.iter("h3")] == ["Follow-ups"]  # under the section's <h2>


def test_kpi_cards(tmp_path: Path) -> None:
    tree = parse(write(make_document(), tmp_path)[1])
    cards = by_class(tree, "div", "kpi")
    values = [text_of(by_class(card, "div", "kpi-value")[0]) for card in cards]
    assert values == ["1,234 ms", "8.5%", "2026-11-28 14:05 CET", "—"]
    assert [text_of(by_class(card, "div", "kpi-label")[0]) for card in cards][:2] == ["Worst p95", "Error rate"]
    assert text_of(by_class(cards[0], "div", "kpi-description")[0]) == "highest p95 latency"
    assert "grid-template-columns" in text_of(tree.find("head/style"))  # type: ignore[arg-type]


def test_table_rows_are_formatted_in_order(tmp_path: Path) -> None:
    frame = metrics_frame()
    tree = parse(write(make_document(frame=frame), tmp_path)[1])
    [table] = by_class(tree, "table", "data")
    assert [text_of(th) for th in table.iter("th")] == [c.label for c in COLUMNS]
    rows = [[text_of(td) for td in tr.iter("td")] for tr in table.find("tbody")]  # type: ignore[union-attr]
    expected = [
        [
            parse_format(c.format).format(value, "Europe/Berlin") if c.format else str(value)
            for c, value in zip(COLUMNS, row, strict=True)
        ]
        for row in frame.iter_rows()
    ]
    assert rows == expected
    assert rows[1][0] == "svc <1> & co"
    assert rows[1][1:] == ["2026-11-21 01:00 CET", "1,100.3 ms", "12,345", "14.3%"]
    assert rows[2][2] == ""
    numeric = [td.get("class") for td in table.find("tbody/tr")]  # type: ignore[union-attr]
    assert numeric == ["text", "other", "num", "num", "num"]
    assert by_class(tree, "p", "note") == []


def test_sticky_header_zebra_and_print_styles(tmp_path: Path) -> None:
    style = text_of(parse(write(make_document(), tmp_path)[1]).find("head/style"))  # type: ignore[arg-type]
    assert re.search(r"table\.data th \{[^}]*position: sticky;[^}]*top: 0;", style)
    assert "tr:nth-child(even)" in style
    assert re.search(r"\.num \{[^}]*text-align: right", style)
    print_rules = style[style.index("@media print") :]
    assert "position: static" in print_rules
    assert "break-inside: avoid" in print_rules
    assert "@page" in print_rules


def test_rows_beyond_max_rows_are_left_out_with_a_note(tmp_path: Path) -> None:
    frame = metrics_frame(12)
    block = TableBlock("t", "T", COLUMNS, frame, max_rows=3)
    tree = parse(write(make_document(block), tmp_path)[1])
    body = tree.find(".//tbody")
    assert [text_of(tr.find("td")) for tr in body] == ["svc-0", "svc <1> & co", "svc-2"]  # type: ignore[arg-type, union-attr]
    [note] = by_class(tree, "p", "note")
    assert text_of(note) == "Showing 3 of 12 rows."

    unlimited = TableBlock("t", "T", COLUMNS, frame)
    tree = parse(write(make_document(unlimited), tmp_path, max_rows=10)[1])
    assert len(tree.find(".//tbody")) == 10  # type: ignore[arg-type]
    assert text_of(by_class(tree, "p", "note")[0]).startswith("Showing 10 of 12 rows")
    tree = parse(write(make_document(unlimited), tmp_path)[1])
    assert len(tree.find(".//tbody")) == 12  # type: ignore[arg-type]
    assert by_class(tree, "p", "note") == []


def test_empty_table_shows_its_message(tmp_path: Path) -> None:
    block = TableBlock("t", "Incidents", COLUMNS, metrics_frame(0), empty_message="No incidents this week")
    tree = parse(write(make_document(block), tmp_path)[1])
    assert list(tree.iter("table")) == []
    assert [text_of(p) for p in by_class(tree, "p", "empty")] == ["No incidents this week"]


def test_table_without_columns_uses_frame_names_and_type_formats(tmp_path: Path) -> None:
    frame = pl.DataFrame({"n": [1234567], "x": [2.5], "s": ["a|b"]})
    tree = parse(write(make_document(TableBlock("t", None, (), frame)), tmp_path)[1])
    assert [text_of(th) for th in tree.iter("th")] == ["n", "x", "s"]
    assert [text_of(td) for td in tree.iter("td")] == ["1,234,567", "2.50", "a|b"]


def test_charts_are_interactive_with_plotly_inlined_once(tmp_path: Path) -> None:
    document = make_document(chart_block("trend"), TextBlock("t", None, "between"), chart_block("again", None))
    text = write(document, tmp_path)[1]
    bundle = _plotly_js()
    # What html5lib is spared in ``parse``: nothing in the bundle may end its element or break the document.
    assert "</script" not in bundle.lower() and "<!--" not in bundle
    assert not re.search("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]", bundle)
    tree = parse(text)
    inlined = [s for s in tree.iter("script") if s.get("type") == "application/gzip;base64"]
    assert len(inlined) == 1  # once, however many charts
    assert gzip.decompress(base64.b64decode(text_of(inlined[0]))).decode() == bundle
    assert len(text) < len(bundle) / 2  # compressed: 1.9 MB instead of 4.8 MB
    code = [s for s in tree.iter("script") if s.get("type") is None]
    assert len(code) == 1
    assert "DecompressionStream" in text_of(code[0]) and "Plotly.newPlot" in text_of(code[0])
    assert "responsive: true" in text_of(code[0]) and "displaylogo: false" in text_of(code[0])
    specs = [s for s in tree.iter("script") if s.get("type") == "application/json"]
    assert [s.get("data-chart") for s in specs] == ["chart-trend", "chart-again"]
    assert [d.get("id") for d in by_class(tree, "div", "chart")] == ["chart-trend", "chart-again"]
    figure = json.loads(text_of(specs[0]))
    assert figure["data"][0]["y"] == [1.5, 2.0, 1.0]
    assert figure["layout"]["title"]["text"] == ""  # the section heading carries it
    assert [text_of(h) for h in tree.iter("h2")] == ["Latency trend"]


def test_no_external_urls(tmp_path: Path) -> None:
    document = make_document(*make_document().blocks, chart_block())
    tree = parse(write(document, tmp_path)[1])
    prose_links = {id(a) for div in by_class(tree, "div", "prose") for a in div.iter("a")}
    assert list(tree.iter("link")) == []
    for element in tree.iter():
        for attribute in ("src", "href", "srcset", "action", "data"):
            value = element.get(attribute)
            if value is not None and id(element) not in prose_links:
                assert not re.match(r"\s*(https?:)?//", value), (element.tag, attribute, value)
    style = text_of(tree.find("head/style"))  # type: ignore[arg-type]
    assert "url(" not in style and "@import" not in style


def test_plotly_file_writes_the_script_once_beside_the_page(tmp_path: Path) -> None:
    document = make_document(chart_block("trend"), chart_block("again", None))
    paths = HtmlWriter({"plotly": "file"}).write(document, tmp_path)
    assert [p.name for p in paths] == ["server-health.html", "plotly.min.js"]
    assert (tmp_path / "plotly.min.js").read_text() == _plotly_js()
    tree = parse(paths[0].read_text())
    assert [s.get("src") for s in tree.iter("script") if s.get("src")] == ["plotly.min.js"]
    assert paths[0].stat().st_size < 100_000
    without_charts = tmp_path / "without-charts"
    without_charts.mkdir()
    assert [p.name for p in HtmlWriter({"plotly": "file"}).write(make_document(), without_charts)] == [
        "server-health.html"
    ]


@pytest.mark.skipif(find_browser() is None, reason="no Chromium to open the page in")
def test_a_browser_inflates_plotly_and_draws_every_chart(tmp_path: Path) -> None:
    document = make_document(chart_block("trend"), chart_block("again", None))
    path = write(document, tmp_path)[0]
    dom = subprocess.run(
        [str(find_browser()), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
         "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert dom.count('class="main-svg"') >= 2 * 2  # plotly draws two svg layers per chart
    assert "chart chart-unavailable" not in dom


def test_a_theme_template_overrides_blocks_and_values_stay_escaped(tmp_path: Path) -> None:
    theme = tmp_path / "brand.html"
    theme.write_text(
        '{% extends "report.html" %}{% block footer %}<footer class="brand">© ACME · {{ info.title }}</footer>'
        "{% endblock %}"
    )
    document = make_document()
    document = replace(document, style=replace(document.style, html_template=theme, accent="#c0392b"))
    text = write(document, tmp_path)[1]
    tree = parse(text)
    assert [text_of(f) for f in by_class(tree, "footer", "brand")] == ["© ACME · Server health <weekly>"]
    assert "&lt;weekly&gt;" in text
    assert ":root { --accent: #c0392b; }" in text_of(tree.find("head/style"))  # type: ignore[arg-type]
    broken = tmp_path / "broken.html"
    broken.write_text("{% block footer %}unclosed")
    message = check_html_template(broken) or ""
    assert message.startswith("'broken.html' line 1: Unexpected end of template") and "'endblock'" in message


def test_second_write_is_byte_identical(tmp_path: Path) -> None:
    document = make_document(*make_document().blocks, chart_block())
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first, _ = write(document, tmp_path / "a")
    second, _ = write(document, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def test_failure_is_a_render_error_and_leaves_no_file(tmp_path: Path) -> None:
    bad = TableBlock("bad", None, (TableColumn("nope", "Nope"),), pl.DataFrame({"a": [1]}))
    with pytest.raises(RenderError, match=r"^html: cannot write server-health.html: ") as caught:
        HtmlWriter().write(make_document(bad), tmp_path)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_options() -> None:
    assert HtmlWriter().options.max_rows == 5000
    assert HtmlWriter({"max_rows": 20}).options.max_rows == 20
    with pytest.raises(ValidationError):
        HtmlWriter.Options(max_rows=0)
    with pytest.raises(ValidationError):
        HtmlWriter.Options(format="md")
    assert not HtmlWriter.CHART_IMAGES


def test_registered_as_a_writer_plugin() -> None:
    [entry] = [ep for ep in entry_points(group="reportctl.writers") if ep.name == "html"]
    assert entry.load() is HtmlWriter
