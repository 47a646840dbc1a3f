"""A 10,000-row, 6-column table to PDF: reportctl's pdf writer against a naive fpdf2 ``cell()`` loop.

Both draw every row with the same shipped TrueType font (DejaVu Sans, Droid Sans Fallback registered) on A4:

- writer: ``PdfWriter(max_rows=20000).write`` of a Document holding the table (formatting included);
- cell loop: the cells formatted beforehand (not timed), then one ``FPDF.cell()`` per cell, header repeated;
- table(): fpdf2's ``FPDF.table()`` on the first 500 rows only, extrapolated linearly to 10,000 (info).

Each case runs ``--rounds`` times (default 3, interleaved); figures are medians. Target: the writer takes at
most 3 s. Prints a table and a PASS/FAIL line and exits 0; exits 2 when the writer's PDF misses rows.

    .venv/bin/python benchmarks/bench_pdf.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROWS, TARGET_S, TABLE_SUBSET = 10_000, 3.0, 500
LABELS = ("ID", "Service", "Time", "Revenue", "Error rate", "p95 latency")
FORMATS = (None, None, None, "currency:EUR", "percent:2", "number:1 ms")


def _frame() -> Any:
    import polars as pl

    start = datetime(2026, 11, 21, tzinfo=UTC)
    services = ["api-gateway", "checkout", "search", "payments-eu", "Zürich edge", "東京 cache"]
    return pl.DataFrame(
        {
            "id": list(range(ROWS)),
            "service": [services[i % len(services)] for i in range(ROWS)],
            "ts": pl.Series([start + timedelta(minutes=i) for i in range(ROWS)]).dt.convert_time_zone("Europe/Berlin"),
            "revenue": [(i * 7919 % 100_000) / 7 - 2000 for i in range(ROWS)],
            "error_rate": [(i * 13 % 1000) / 10_000 for i in range(ROWS)],
            "p95": [100 + (i * 31 % 5000) / 10 for i in range(ROWS)],
        }
    )


def _document(frame: Any) -> Any:
    from reportctl.document import Document, ReportInfo, TableBlock, TableColumn

    info = ReportInfo(
        name="bench-pdf",
        title="PDF benchmark",
        description=None,
        run_id="bench",
        generated_at=datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
        timezone="Europe/Berlin",
        spec_path="bench.yaml",
        spec_hash="sha256:0",
    )
    columns = tuple(
        TableColumn(name, label, fmt) for name, label, fmt in zip(frame.columns, LABELS, FORMATS, strict=True)
    )
    return Document(info, (), (TableBlock("rows", "All rows", columns, frame, max_rows=ROWS * 2),))


def _strings(frame: Any) -> list[list[str]]:
    from reportctl.formats import default_format_for, parse_format

    columns = []
    for name, spec in zip(frame.columns, FORMATS, strict=True):
        series = frame.get_column(name)
        fmt = parse_format(spec) if spec else default_format_for(series.dtype)
        columns.append([fmt.format(v, "Europe/Berlin") for v in series.to_list()])
    return [list(row) for row in zip(*columns, strict=True)]


def _naive_pdf() -> Any:
    from fpdf import FPDF

    from reportctl import fonts

    pdf = FPDF(unit="mm", format="A4")
    pdf.add_font("DejaVu", "", str(fonts.REGULAR))
    pdf.add_font("DejaVu", "B", str(fonts.BOLD))
    pdf.add_font("Fallback", "", str(fonts.CJK_FALLBACK))
    pdf.set_fallback_fonts(["Fallback"], exact_match=False)
    pdf.set_creation_date(datetime(2026, 11, 28, tzinfo=UTC))
    pdf.add_page()
    pdf.set_font("DejaVu", "", 7.8)
    return pdf


def cell_loop(rows: list[list[str]]) -> bytes:
    """The naive baseline: one ``cell()`` per cell, header row repeated on each page."""
    pdf = _naive_pdf()
    widths = (18, 34, 40, 32, 24, 30)
    aligns = ("R", "L", "L", "R", "R", "R")

    def header() -> None:
        pdf.set_font("DejaVu", "B", 7.4)
        for label, width in zip(LABELS, widths, strict=True):
            pdf.cell(width, 6, label, fill=False)
        pdf.ln(6)
        pdf.set_font("DejaVu", "", 7.8)

    header()
    for row in rows:
        if pdf.y + 5 > pdf.h - 18:
            pdf.add_page()
            header()
        for text, width, align in zip(row, widths, aligns, strict=True):
            pdf.cell(width, 5, text, align=align)
        pdf.ln(5)
    return bytes(pdf.output())


def table_subset(rows: list[list[str]]) -> bytes:
    """fpdf2's ``table()`` on the first rows only (it is far too slow for all of them)."""
    pdf = _naive_pdf()
    with pdf.table(col_widths=(18, 34, 40, 32, 24, 30), text_align="LEFT") as table:
        table.row(LABELS)
        for row in rows[:TABLE_SUBSET]:
            table.row(row)
    return bytes(pdf.output())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per case (default 3)")
    args = parser.parse_args()

    from pypdf import PdfReader

    from reportctl.writers.pdf import PdfWriter

    frame = _frame()
    document = _document(frame)
    rows = _strings(frame)
    writer = PdfWriter({"format": "pdf", "max_rows": ROWS * 2})
    samples: dict[str, list[float]] = {"writer": [], "cell loop": [], "table() 500 rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        cases: dict[str, Callable[[], object]] = {
            "writer": lambda: writer.write(document, Path(tmp)),
            "cell loop": lambda: cell_loop(rows),
            "table() 500 rows": lambda: table_subset(rows),
        }
        for _ in range(args.rounds):
            for name, run in cases.items():
                started = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - started)
        reader = PdfReader(Path(tmp) / "bench-pdf.pdf")
        text = "\n".join(page.extract_text() for page in reader.pages)
        pages = len(reader.pages)
    missing = [i for i in (0, ROWS // 2, ROWS - 1) if f"\n{i:,}" not in text and f"{i:,} " not in text]
    medians = {name: statistics.median(values) for name, values in samples.items()}
    medians["table() 10,000 rows (extrapolated)"] = medians["table() 500 rows"] * ROWS / TABLE_SUBSET
    print(f"{ROWS:,} rows x 6 columns, A4, DejaVu Sans; median of {args.rounds} (s); writer PDF: {pages} pages")
    print(f"{'case':<38}{'median':>9}{'min':>9}")
    for name, value in medians.items():
        low = min(samples[name]) if name in samples else value
        print(f"{name:<38}{value:>9.3f}{low:>9.3f}")
    verdict = "PASS" if medians["writer"] <= TARGET_S else "FAIL"
    print(f"{verdict} writer {medians['writer']:.3f} s against the {TARGET_S:.0f} s target")
    if missing:
        print(f"writer PDF misses rows {missing}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
