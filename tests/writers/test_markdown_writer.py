"""The Markdown writer, checked line by line against the GFM it should produce, and the chart PNGs beside it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from pydantic import ValidationError
from writer_documents import REGION, last_7_days, report_info

from reportctl.document import ChartBlock, ChartImage, Document, KpiBlock, KpiValue, TableBlock, TableColumn, TextBlock
from reportctl.errors import RenderError
from reportctl.writers.markdown import MarkdownWriter

BERLIN = ZoneInfo("Europe/Berlin")
COLUMNS = (
    TableColumn("service", "Service"),
    TableColumn("latency_ms", "Latency | ms", "number:1 ms"),
    TableColumn("requests", "Requests", "integer"),
    TableColumn("day", "Day", "date"),
)
PNG = b"\x89PNG\r\n\x1a\nchart"


def metrics_frame(rows: int = 3) -> pl.DataFrame:
    names = ["api", "a|b", "two\nlines *x*"]
    return pl.DataFrame(
        {
            "service": [names[i] if i < len(names) else f"svc-{i}" for i in range(rows)],
            "latency_ms": [1234.56 + i for i in range(rows)],
            "requests": [i * 1000 for i in range(rows)],
            "day": [date(2026, 11, 21) + timedelta(days=i % 7) for i in range(rows)],
        }
    )


def chart(chart_id: str = "trend", title: str | None = "Latency trend") -> ChartBlock:
    return ChartBlock(chart_id, title, "line", metrics_frame(), "day", ("latency_ms",))


def make_document(*blocks: Any) -> Document:
    info = report_info(
        tz=BERLIN, timezone="Europe/Berlin", description="Latency and *errors*\n# not a heading", run_id="r"
    )
    parameters = (last_7_days(BERLIN), REGION)
    blocks = blocks or (
        TextBlock("summary", "Summary", "**3** services breached 1% errors.\n\n- api\n- web\n"),
        KpiBlock(
            "kpis", "Key figures", (KpiValue("Worst p95", 1234.4, "number:0 ms", "highest"), KpiValue("Gone", None))
        ),
        TableBlock("by_service", "By service", COLUMNS, metrics_frame()),
        chart(),
    )
    images = {c.id: ChartImage(900, 450, png=PNG) for c in blocks if isinstance(c, ChartBlock)}
    return Document(info, parameters, blocks, images)


def write(document: Document, directory: Path, **options: Any) -> tuple[list[Path], str]:
    paths = MarkdownWriter(options).write(document, directory)
    return paths, paths[0].read_text(encoding="utf-8")


def test_whole_file(tmp_path: Path) -> None:
    paths, text = write(make_document(), tmp_path)
    assert paths == [tmp_path / "server-health.md", tmp_path / "server-health.trend.png"]
    assert text == (
        "# Server health\n"
        "\n"
        "Latency and \\*errors\\*\n"
        "\\# not a heading\n"
        "\n"
        "**Period:** 2026-11-21 \N{EN DASH} 2026-11-27 · **Region:** eu  \n"
        "_Generated 2026-11-28 09:00 CET_\n"
        "\n"
        "## Summary\n"
        "\n"
        "**3** services breached 1% errors.\n"
        "\n"
        "- api\n"
        "- web\n"
        "\n"
        "## Key figures\n"
        "\n"
        "| KPI | Value | Note |\n"
        "| --- | ---: | --- |\n"
        "| Worst p95 | 1,234 ms | highest |\n"
        "| Gone | — |  |\n"
        "\n"
        "## By service\n"
        "\n"
        "| Service | Latency \\| ms | Requests | Day |\n"
        "| --- | ---: | ---: | --- |\n"
        "| api | 1,234.6 ms | 0 | 2026-11-21 |\n"
        "| a\\|b | 1,235.6 ms | 1,000 | 2026-11-22 |\n"
        "| two<br>lines \\*x\\* | 1,236.6 ms | 2,000 | 2026-11-23 |\n"
        "\n"
        "## Latency trend\n"
        "\n"
        "![Latency trend](server-health.trend.png)\n"
    )


def test_rows_beyond_max_rows_are_left_out_with_a_note(tmp_path: Path) -> None:
    document = make_document(TableBlock("t", None, COLUMNS, metrics_frame(80)))
    lines = write(document, tmp_path)[1].splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 2 + 50
    assert rows[-1].startswith("| svc-49 |")
    assert lines[-1] == "_Showing 50 of 80 rows._"

    limited = make_document(TableBlock("t", None, COLUMNS, metrics_frame(80), max_rows=5))
    lines = write(limited, tmp_path, max_rows=10)[1].splitlines()
    assert len([line for line in lines if line.startswith("| ")]) == 2 + 5
    assert lines[-1].startswith("_Showing 5 of 80 rows")

    lines = write(make_document(TableBlock("t", None, COLUMNS, metrics_frame(80))), tmp_path, max_rows=100)[1]
    assert "Showing" not in lines


def test_empty_table(tmp_path: Path) -> None:
    block = TableBlock("t", "Incidents", COLUMNS, metrics_frame(0), empty_message="No incidents this week")
    assert write(make_document(block), tmp_path)[1].endswith("## Incidents\n\n_No incidents this week_\n")


def test_chart_pngs_are_written_beside_the_file(tmp_path: Path) -> None:
    document = make_document(chart("trend"), chart("by day", None))
    paths, text = write(document, tmp_path)
    assert paths[1:] == [tmp_path / "server-health.trend.png", tmp_path / "server-health.by day.png"]
    assert all(path.read_bytes() == PNG for path in paths[1:])
    assert "![Latency trend](server-health.trend.png)" in text
    assert "![by day](<server-health.by day.png>)" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary files left


def test_existing_png_is_kept(tmp_path: Path) -> None:
    existing = tmp_path / "server-health.trend.png"
    existing.write_bytes(b"from the png writer")
    paths, _ = write(make_document(chart()), tmp_path)
    assert paths == [tmp_path / "server-health.md", existing]
    assert existing.read_bytes() == b"from the png writer"


def test_missing_chart_image_is_a_render_error(tmp_path: Path) -> None:
    document = replace(make_document(chart()), chart_images={})
    with pytest.raises(RenderError, match=r"^md: cannot write server-health.md: no PNG image of chart 'trend'"):
        MarkdownWriter().write(document, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_second_write_is_byte_identical(tmp_path: Path) -> None:
    document = make_document()
    outputs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        paths, _ = write(document, tmp_path / name)
        outputs.append([(p.name, p.read_bytes()) for p in paths])
    assert outputs[0] == outputs[1]


def test_options() -> None:
    assert MarkdownWriter().options.max_rows == 50
    with pytest.raises(ValidationError):
        MarkdownWriter.Options(max_rows=0)
    with pytest.raises(ValidationError):
        MarkdownWriter.Options(format="html")
    assert {"png"} == MarkdownWriter.CHART_IMAGES


def test_registered_as_a_writer_plugin() -> None:
    [entry] = [ep for ep in entry_points(group="reportctl.writers") if ep.name == "md"]
    assert entry.load() is MarkdownWriter
