"""The PDF writer, checked by reading its file back with pdfplumber and pypdf."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path

import pdfplumber
import polars as pl
import pytest
from PIL import Image
from pydantic import ValidationError
from pypdf import PdfReader
from writer_documents import last_7_days, report_info

from reportctl.document import (
    ChartBlock,
    ChartImage,
    Document,
    KpiBlock,
    KpiValue,
    ReportInfo,
    TableBlock,
    TableColumn,
    TextBlock,
)
from reportctl.errors import RenderError
from reportctl.writers.pdf import PdfWriter

BERLIN = "Europe/Berlin"
EN_DASH, MINUS, EM_DASH = "\u2013", "\u2212", "\u2014"
ROWS = 300


def info(name: str = "ops-weekly") -> ReportInfo:
    return report_info(
        timezone=BERLIN,
        name=name,
        title="Operations weekly",
        description="Traffic and reliability",
        spec_path="specs/ops.yaml",
        version="1.2",
        owner="SRE team",
    )


def rows_table(rows: int = ROWS, max_rows: int | None = None) -> TableBlock:
    """Unique ids ("row-00042") in the first column, then numbers, a datetime and text."""
    start = datetime(2026, 11, 21, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "id": [f"row-{i:05d}" for i in range(rows)],
            "requests": [i * 1000 for i in range(rows)],
            "ratio": [i / 1000 for i in range(rows)],
            "at": pl.Series([start + timedelta(hours=i) for i in range(rows)]).dt.convert_time_zone(BERLIN),
            "city": ["Zürich" if i % 2 else "東京" for i in range(rows)],
        }
    )
    columns = (
        TableColumn("id", "Row id"),
        TableColumn("requests", "Requests", "integer"),
        TableColumn("ratio", "Error rate", "percent:1"),
        TableColumn("at", "Hour"),
        TableColumn("city", "City"),
    )
    return TableBlock("rows", "All rows", columns, frame, max_rows=max_rows)


def png(width: int = 400, height: int = 200) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (31, 58, 95)).save(buffer, format="PNG")
    return buffer.getvalue()


def full_document(*tables: TableBlock) -> Document:
    parameters = (last_7_days(),)
    text = TextBlock("summary", "Summary", f"Traffic **grew** in *Zürich* and 東京 {MINUS} {EM_DASH}.\n\n- one\n- two")
    kpis = KpiBlock("kpis", "Key figures", (KpiValue("Requests", 48213, "integer"), KpiValue("Ratio", 0.5, "percent")))
    frame = pl.DataFrame({"x": [1, 2], "y": [3, 4]})
    chart = ChartBlock("trend", "Trend", "line", frame, "x", ("y",))
    blocks = (text, kpis, chart, *tables)
    return Document(info(), parameters, blocks, {"trend": ChartImage(400, 200, png=png(800, 400))})


def write(document: Document, directory: Path, **options: object) -> Path:
    paths = PdfWriter({"format": "pdf", **options}).write(document, directory)
    assert paths == [directory / f"{document.info.name}.pdf"]
    return paths[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(full_document(rows_table()), tmp_path_factory.mktemp("pdf"))


@pytest.fixture(scope="module")
def pages(rendered: Path) -> list[str]:
    with pdfplumber.open(rendered) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


def test_registered_as_entry_point() -> None:
    found = {e.name: e for e in entry_points(group="reportctl.writers")}
    assert found["pdf"].load() is PdfWriter
    assert frozenset({"png"}) == PdfWriter.CHART_IMAGES


def test_options_are_validated() -> None:
    with pytest.raises(ValidationError):
        PdfWriter({"format": "pdf", "page_size": "A3"})
    with pytest.raises(ValidationError):
        PdfWriter({"format": "pdf", "max_rows": 0})


def test_every_row_appears_exactly_once_with_its_cells_on_one_page(rendered: Path) -> None:
    seen: dict[str, int] = {}
    with pdfplumber.open(rendered) as pdf:
        for page in pdf.pages:
            for line in (page.extract_text() or "").splitlines():
                match = re.match(r"(row-\d{5}) ", line)
                if match:
                    row = int(match.group(1)[4:])
                    assert f"{row * 1000:,}" in line, f"row {row} split: {line!r}"
                    assert f"{row / 10:.1f}%" in line
                    seen[match.group(1)] = seen.get(match.group(1), 0) + 1
    assert seen == {f"row-{i:05d}": 1 for i in range(ROWS)}


def test_header_row_repeats_on_every_page_of_the_table(pages: list[str]) -> None:
    table_pages = [text for text in pages if "row-" in text]
    assert len(table_pages) >= 3
    for text in table_pages:
        lines = text.splitlines()
        header = next(i for i, line in enumerate(lines) if "Row id" in line)
        first_row = next(i for i, line in enumerate(lines) if line.startswith("row-"))
        assert header < first_row
        assert "Requests" in lines[header] and "City" in lines[header]


def test_title_block_header_and_footer(pages: list[str]) -> None:
    first = pages[0]
    assert "Operations weekly" in first and "Traffic and reliability" in first
    assert f"2026-11-21 {EN_DASH} 2026-11-27" in first
    assert "Generated 2026-11-28 10:00 CET" in first
    assert "SRE team" in first and "1.2" in first
    total = len(pages)
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {total}" in text
        assert text.count("Operations weekly") >= 1


def test_page_count_is_plausible(pages: list[str]) -> None:
    assert 6 <= len(pages) <= 12


def test_text_kpis_and_non_latin_text(pages: list[str]) -> None:
    first = pages[0]
    assert "Zürich" in first and "東京" in first and MINUS in first and EM_DASH in first
    assert "48,213" in first and "50.0%" in first
    assert "• one" in first or "one" in first


def test_fonts_are_embedded(rendered: Path) -> None:
    reader = PdfReader(rendered)
    names = set()
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            descendant = font.get_object()["/DescendantFonts"][0].get_object()
            descriptor = descendant["/FontDescriptor"].get_object()
            assert "/FontFile2" in descriptor
            names.add(str(font.get_object()["/BaseFont"]))
    assert any("DejaVuSans" in name for name in names)
    assert any("Droid" in name for name in names)


def test_metadata(rendered: Path) -> None:
    meta = PdfReader(rendered).metadata
    assert meta is not None
    assert meta.title == "Operations weekly"
    assert meta.creator == "reportctl"
    assert meta.author == "SRE team"
    assert meta.subject == "Traffic and reliability"
    assert meta.creation_date == datetime(2026, 11, 28, 9, 0, 1, tzinfo=UTC)


def test_same_document_gives_identical_bytes(rendered: Path, tmp_path: Path) -> None:
    again = write(full_document(rows_table()), tmp_path)
    assert again.read_bytes() == rendered.read_bytes()


def test_max_rows_truncates_with_a_note(tmp_path: Path) -> None:
    document = Document(info(), (), (rows_table(rows=1200),))
    path = write(document, tmp_path, max_rows=50)
    with pdfplumber.open(path) as pdf:
        text = "\n".join(page.extract_text() or "" for page in pdf.pages)
    assert "row-00049" in text and "row-00050" not in text
    assert "Showing 50 of 1,200 rows." in text
    table_limit = Document(info(), (), (rows_table(rows=1200, max_rows=20),))
    with pdfplumber.open(write(table_limit, tmp_path, max_rows=50)) as pdf:
        text = "\n".join(page.extract_text() or "" for page in pdf.pages)
    assert "Showing 20 of 1,200 rows" in text


def test_empty_table_shows_its_message(tmp_path: Path) -> None:
    empty = TableBlock(
        "none", "Incidents", (TableColumn("id", "ID"),), pl.DataFrame({"id": []}), empty_message="No incidents"
    )
    with pdfplumber.open(write(Document(info(), (), (empty,)), tmp_path)) as pdf:
        text = pdf.pages[0].extract_text() or ""
        italic = [c for c in pdf.pages[0].chars if c["text"] == "N" and "Oblique" in c["fontname"]]
    assert "Incidents" in text and "No incidents" in text
    assert italic


def test_wide_table_turns_the_page_in_auto_orientation(tmp_path: Path) -> None:
    frame = pl.DataFrame({f"metric_{i}": [i * 123.4567 + j for j in range(5)] for i in range(14)})
    columns = tuple(TableColumn(name, f"Metric {i}", "number:2") for i, name in enumerate(frame.columns))
    document = Document(info(), (), (TableBlock("wide", "Wide", columns, frame),))
    with pdfplumber.open(write(document, tmp_path)) as pdf:
        assert pdf.pages[0].width < pdf.pages[0].height
        wide = pdf.pages[-1]
        assert wide.width > wide.height
        text = wide.extract_text() or ""
    assert "1,608.94" in text  # the widest number, not cut
    with pdfplumber.open(write(document, tmp_path, orientation="portrait")) as pdf:
        assert all(page.width < page.height for page in pdf.pages)


def test_long_text_is_cut_with_an_ellipsis(tmp_path: Path) -> None:
    frame = pl.DataFrame({"name": ["x" * 400], "n": [1]})
    columns = (TableColumn("name", "Name"), TableColumn("n", "N"))
    with pdfplumber.open(write(Document(info(), (), (TableBlock("t", None, columns, frame),)), tmp_path)) as pdf:
        assert "xxx…" in (pdf.pages[0].extract_text() or "")


def test_missing_chart_image_is_a_render_error(tmp_path: Path) -> None:
    document = full_document()
    without = Document(document.info, document.parameters, document.blocks, {})
    with pytest.raises(RenderError, match="trend"):
        PdfWriter().write(without, tmp_path)
    assert not (tmp_path / "ops-weekly.pdf").exists()


def test_chart_is_inside_the_page(rendered: Path) -> None:
    with pdfplumber.open(rendered) as pdf:
        images = [(page, image) for page in pdf.pages for image in page.images]
    assert len(images) == 1
    page, image = images[0]
    assert 0 <= image["x0"] < image["x1"] <= page.width
    assert 0 <= image["top"] < image["bottom"] <= page.height
    assert abs((image["x1"] - image["x0"]) / (image["bottom"] - image["top"]) - 2) < 0.01


def test_a_wide_table_turns_landscape_and_wraps_long_names_instead_of_cutting(tmp_path: Path) -> None:
    names = ["checkout service in the primary region", "payments gateway behind the edge proxy", "search"]
    frame = pl.DataFrame({"name": names} | {f"metric_{i}": [1234.5 * i, 2.0, 3.0] for i in range(8)})
    columns = (TableColumn("name", "Service name"), *(TableColumn(f"metric_{i}", f"Metric {i}") for i in range(8)))
    document = Document(info(), (), (TableBlock("t", "Wide", columns, frame),))
    with pdfplumber.open(write(document, tmp_path)) as pdf:
        landscape = [page for page in pdf.pages if page.width > page.height]
        assert landscape, "a 9-column table is set on a landscape page"
        for page in pdf.pages:  # each footer's page count ends at the right margin of its own page
            footer = [w for w in page.extract_words() if w["top"] > page.height - 40]
            count = max(footer, key=lambda word: word["x1"])
            assert count["text"] == str(len(pdf.pages))
            assert abs(page.width - count["x1"] - 16 * 72 / 25.4) < 1
        text = " ".join((page.extract_text() or "") for page in landscape)
    assert "…" not in text
    words = set(text.split())
    for name in names:  # every word of every name is there, on however many lines
        assert set(name.split()) <= words, name


def test_key_figure_labels_and_notes_wrap_instead_of_being_cut(tmp_path: Path) -> None:
    items = (
        KpiValue("Refunded or cancelled orders in the period", 1234, "integer", "Revenue of orders refunded or "
                 "cancelled in the period, by the day they were refunded"),
        KpiValue("Orders", 5, "integer"),
        KpiValue("Revenue", 1.5, "number:1"),
        KpiValue("Margin", None, "percent"),
    )  # fmt: skip
    document = Document(info(), (), (KpiBlock("k", "Key figures", items),))
    with pdfplumber.open(write(document, tmp_path)) as pdf:
        text = pdf.pages[0].extract_text() or ""
    assert "…" not in text
    words = set(text.split())
    assert {"REFUNDED", "CANCELLED", "ORDERS", "PERIOD"} <= words
    assert {"refunded", "by", "day", "they", "were"} <= words
    assert "—" in words  # a key figure without a value


def test_a_chart_that_mostly_fits_is_drawn_smaller_rather_than_leave_the_page_half_empty(tmp_path: Path) -> None:
    frame = pl.DataFrame({"x": [1, 2], "y": [3, 4]})
    filler = TextBlock("filler", None, "\n\n".join(f"Paragraph {i} of the introduction." for i in range(16)))
    chart = ChartBlock("trend", "Trend", "line", frame, "x", ("y",))
    images = {"trend": ChartImage(900, 450, png=png(900, 450))}
    document = Document(info(), (), (filler, chart), images)
    with pdfplumber.open(write(document, tmp_path)) as pdf:
        assert len(pdf.pages) == 1  # the chart stayed on the page the text left room on
        [image] = pdf.pages[0].images
        assert image["bottom"] <= pdf.pages[0].height
        assert abs((image["x1"] - image["x0"]) / (image["bottom"] - image["top"]) - 2) < 0.01  # not distorted
    tall = TextBlock("filler", None, "\n\n".join(f"Paragraph {i} of the introduction." for i in range(30)))
    second = tmp_path / "second"
    second.mkdir()
    with pdfplumber.open(write(Document(info(), (), (tall, chart), images), second)) as pdf:
        assert len(pdf.pages) == 2  # too little room left: the chart starts the next page, at full size


def _fonts(path: Path) -> set[str]:
    reader = PdfReader(path)
    names = set()
    for page in reader.pages:
        resources = page["/Resources"]
        for font in resources.get("/Font", {}).values():
            names.add(str(font.get_object()["/BaseFont"]))
    return names


def test_the_cjk_fallback_font_is_embedded_only_when_the_text_needs_it(tmp_path: Path) -> None:
    latin = Document(info(), (), (TextBlock("t", "Notes", "Only Latin text, Zürich and naïve."),))
    assert not any("Droid" in name for name in _fonts(write(latin, tmp_path)))
    cjk_folder = tmp_path / "cjk"
    cjk_folder.mkdir()
    cjk = Document(info(), (), (TextBlock("t", "Notes", "Tokyo is 東京."),))
    path = write(cjk, cjk_folder)
    assert any("Droid" in name for name in _fonts(path))
    with pdfplumber.open(path) as pdf:
        assert "東京" in (pdf.pages[0].extract_text() or "")


def test_a_document_of_over_a_thousand_pages_counts_them_without_a_warning() -> None:
    import warnings

    from reportctl.writers.pdf_canvas import Canvas, Furniture

    canvas = Canvas("A4", "P", Furniture("Long", "2026-11-28 09:00 CET", "long"), datetime(2026, 11, 28, tzinfo=UTC))
    for _ in range(1100):
        canvas.new_page()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fpdf2's "wider than the reserved alias width" would fail here
        data = canvas.output()
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1100
    assert "Page 1100 of 1100" in reader.pages[-1].extract_text()
    assert "Page 7 of 1100" in reader.pages[6].extract_text()
