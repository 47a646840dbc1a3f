"""The png and svg writers, checked by reading their files back (PNG header, SVG with xml.etree)."""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError
from writer_documents import report_info

from reportctl.chart_export import BROWSER_ENV, export_charts, find_browser
from reportctl.document import ChartBlock, ChartImage, Document, TextBlock
from reportctl.errors import RenderError
from reportctl.writers.images import PngWriter, SvgWriter


def require_browser() -> None:
    """Skip without Chromium, except under REPORTCTL_REQUIRE_SERVICES=1 (CI), where that fails."""
    if find_browser() is not None:
        return
    reason = f"no Chrome/Chromium found (PATH or ${BROWSER_ENV})"
    if os.environ.get("REPORTCTL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and REPORTCTL_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which follows the PNG signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def make_document(*blocks: TextBlock | ChartBlock, images: dict[str, ChartImage] | None = None) -> Document:
    return Document(report_info(), (), blocks, images or {})


def charts() -> list[ChartBlock]:
    frame = pl.DataFrame({"service": ["api", "web"], "requests": [120, 80]})
    return [
        ChartBlock("requests", "Requests", "bar", frame, "service", ("requests",), format="integer"),
        ChartBlock("share", "Share", "donut", frame, "service", ("requests",)),
    ]


def test_registered_under_their_format_names() -> None:
    found = {ep.name: ep.load() for ep in entry_points(group="reportctl.writers") if ep.name in ("png", "svg")}
    assert found == {"png": PngWriter, "svg": SvgWriter}
    embedded = {PngWriter.PLUGIN_NAME: PngWriter.CHART_IMAGES, SvgWriter.PLUGIN_NAME: SvgWriter.CHART_IMAGES}
    assert embedded == {"png": {"png"}, "svg": {"svg"}}


def test_options_take_nothing_but_the_format() -> None:
    assert PngWriter.Options(format="png").format == "png"
    with pytest.raises(ValidationError):
        SvgWriter.Options.model_validate({"format": "svg", "dpi": 300})


def test_no_charts_write_nothing(tmp_path: Path) -> None:
    document = make_document(TextBlock("intro", None, "Hello"))
    assert PngWriter().write(document, tmp_path) == []
    assert SvgWriter().write(document, tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_a_chart_without_its_image_is_a_render_error(tmp_path: Path) -> None:
    document = make_document(*charts(), images={"requests": ChartImage(10, 10, svg=b"<svg/>")})
    with pytest.raises(RenderError, match="png: chart 'requests' was not exported as PNG"):
        PngWriter().write(document, tmp_path)


def test_writers_save_every_chart(tmp_path: Path) -> None:
    require_browser()
    blocks = charts()
    images = export_charts(blocks, {"png", "svg"}, timezone="UTC", width=300, height=200)
    document = make_document(TextBlock("intro", None, "Hello"), *blocks, images=images)

    pngs = PngWriter().write(document, tmp_path)
    svgs = SvgWriter().write(document, tmp_path)

    assert [p.name for p in pngs] == ["server-health.requests.png", "server-health.share.png"]
    assert [p.name for p in svgs] == ["server-health.requests.svg", "server-health.share.svg"]
    assert all(png_size(p.read_bytes()) == (600, 400) for p in pngs)
    texts = ["".join(ET.parse(p).getroot().itertext()) for p in svgs]
    assert "Requests" in texts[0]  # the axis title; chart titles are left to the writers that embed pictures
    assert "api" in texts[1]
