"""A 6-column table to PDF at 10,000 and 100,000 rows: reportctl's pdf writer against a floor made of the same
fpdf2 calls.

Both draw every row with the same shipped TrueType font (DejaVu Sans regular and bold) on A4, striped rows, the
header repeated on every page and "Page N of M" footers drawn once the page count is known:

- writer: ``PdfWriter(max_rows=...).write`` of a Document holding the table: formatting the values from the
  Polars frame, measuring and fitting the columns, drawing, writing the file;
- floor: the same values formatted beforehand (not timed), then the calls the writer's table makes: ``rect()``
  for the header and every second row, ``text()`` per cell at a position computed from the font's advance widths
  (cached per distinct string, as the writer caches them), ``line()`` under each page's table, and the footers;
  ``output()`` to bytes. Nothing a table needs is left out, nothing else is drawn. Its text is black, which
  fpdf2 writes around every ``text()`` as one grey number; the writer's dark grey ink is an RGB colour whose
  operator its canvas builds once (fpdf2 would format its three numbers anew on each call);
- ``cell()`` loop (10,000 rows only, info): one ``FPDF.cell()`` per cell, fpdf2's general-purpose API, shown so
  the floor's size can be judged; it is not the baseline.

The data holds Latin text with accents (no CJK: the fallback font would be a different code path in each) and
times in Europe/Berlin. After one untimed round of the writer and the floor (the writer's first call in a
process imports its modules and loads locale data once), cases alternate within each round; ``--rounds``
(default 3) rounds; min / median / max.
Target (issue 11): the writer within 1.15x of the floor at each size, judged on medians. Prints a table with
PASS/FAIL and exits 0; exits 2 when the writer's PDF misses rows. ``--json`` prints the figures as JSON.

    .venv/bin/python benchmarks/bench_pdf.py [--rows 10000,100000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from childproc import spread

TARGET = 1.15
LABELS = ("ID", "Service", "Time", "Revenue", "Error rate", "p95 latency")
FORMATS = (None, None, None, "currency:EUR", "percent:2", "number:1 ms")
RIGHT = (True, False, False, True, True, True)
WIDTHS = (18.0, 34.0, 40.0, 32.0, 24.0, 30.0)
BODY, HEAD, ROW, PAD, LEFT, TOP = 7.8, 7.4, 5.0, 1.6, 15.0, 20.0
MM_PER_PT = 25.4 / 72


def _frame(rows: int) -> Any:
    import polars as pl

    start = datetime(2026, 11, 21, tzinfo=UTC)
    services = ["api-gateway", "checkout", "search", "payments-eu", "Zürich edge", "Kraków cache"]
    return pl.DataFrame(
        {
            "id": list(range(rows)),
            "service": [services[i % len(services)] for i in range(rows)],
            "ts": pl.Series([start + timedelta(minutes=i) for i in range(rows)]).dt.convert_time_zone("Europe/Berlin"),
            "revenue": [(i * 7919 % 100_000) / 7 - 2000 for i in range(rows)],
            "error_rate": [(i * 13 % 1000) / 10_000 for i in range(rows)],
            "p95": [100 + (i * 31 % 5000) / 10 for i in range(rows)],
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
    return Document(info, (), (TableBlock("rows", "All rows", columns, frame, max_rows=frame.height * 2),))


def _strings(frame: Any) -> list[list[str]]:
    from reportctl.formats import default_format_for, parse_format

    columns = []
    for name, spec in zip(frame.columns, FORMATS, strict=True):
        series = frame.get_column(name)
        fmt = parse_format(spec) if spec else default_format_for(series.dtype)
        columns.append([fmt.format(v, "Europe/Berlin") for v in series.to_list()])
    return [list(row) for row in zip(*columns, strict=True)]


def _fpdf() -> Any:
    from fpdf import FPDF

    from reportctl import fonts

    pdf = FPDF(unit="mm", format="A4")
    pdf.add_font("DejaVu", "", str(fonts.REGULAR))
    pdf.add_font("DejaVu", "B", str(fonts.BOLD))
    pdf.set_creation_date(datetime(2026, 11, 28, tzinfo=UTC))
    pdf.set_auto_page_break(False)
    return pdf


def floor(rows: list[list[str]]) -> bytes:
    """The table drawn with the calls the writer uses, and nothing else."""
    pdf = _fpdf()
    advance: dict[str, dict[int, int]] = {"": pdf.fonts["dejavu"].cw, "B": pdf.fonts["dejavuB"].cw}
    cache: dict[tuple[str, str], float] = {}

    def width(text: str, style: str, size: float) -> float:
        key = (style, text)
        found = cache.get(key)
        if found is None:
            found = cache[key] = sum(advance[style][o] for o in map(ord, text)) * size * MM_PER_PT / 1000
        return found

    xs = [LEFT + sum(WIDTHS[:i]) for i in range(len(WIDTHS))]
    total, bottom = sum(WIDTHS), pdf.h - 18
    columns = list(zip(xs, WIDTHS, RIGHT, strict=True))

    def header() -> float:
        pdf.add_page()
        pdf.set_fill_color(226, 232, 240)
        pdf.rect(LEFT, TOP, total, 6, style="F")
        pdf.set_font("DejaVu", "B", HEAD)
        for label, (x, w, right) in zip(LABELS, columns, strict=True):
            pdf.text(x + w - PAD - width(label, "B", HEAD) if right else x + PAD, TOP + 4.4, label)
        pdf.set_font("DejaVu", "", BODY)
        pdf.set_fill_color(245, 247, 250)
        return TOP + 6

    y = header()
    for number, row in enumerate(rows):
        if y + ROW > bottom:
            pdf.line(LEFT, y, LEFT + total, y)
            y = header()
        if number % 2:
            pdf.rect(LEFT, y, total, ROW, style="F")
        base = y + ROW / 2 + BODY * MM_PER_PT * 0.36
        for value, (x, w, right) in zip(row, columns, strict=True):
            pdf.text(x + w - PAD - width(value, "", BODY) if right else x + PAD, base, value)
        y += ROW
    pdf.line(LEFT, y, LEFT + total, y)
    last = pdf.page
    for page in range(1, last + 1):
        pdf.page = page
        pdf.current_font_is_set_on_page = False
        pdf.set_font("DejaVu", "", 7.5)
        pdf.text(LEFT, pdf.h - 10, "bench-pdf")
        pdf.text(pdf.w - 40, pdf.h - 10, f"Page {page} of {last}")
    pdf.page = last
    return bytes(pdf.output())


def cell_loop(rows: list[list[str]]) -> bytes:
    """fpdf2's general-purpose API: one ``cell()`` per cell, header row repeated on each page."""
    pdf = _fpdf()
    pdf.add_page()

    def header() -> None:
        pdf.set_font("DejaVu", "B", HEAD)
        for label, w in zip(LABELS, WIDTHS, strict=True):
            pdf.cell(w, 6, label)
        pdf.ln(6)
        pdf.set_font("DejaVu", "", BODY)

    header()
    for row in rows:
        if pdf.y + ROW > pdf.h - 18:
            pdf.add_page()
            header()
        for text, w, right in zip(row, WIDTHS, RIGHT, strict=True):
            pdf.cell(w, ROW, text, align="R" if right else "L")
        pdf.ln(ROW)
    return bytes(pdf.output())


def measure(rows: int, rounds: int) -> dict[str, Any]:
    """Min / median / max seconds of each case at ``rows`` rows; ``missing`` lists rows the writer's PDF lacks."""
    from pypdf import PdfReader

    from reportctl.writers.pdf import PdfWriter

    frame = _frame(rows)
    document = _document(frame)
    strings = _strings(frame)
    writer = PdfWriter({"format": "pdf", "max_rows": rows * 2})
    samples: dict[str, list[float]] = {"writer": [], "floor": []}
    with tempfile.TemporaryDirectory() as tmp:
        cases: dict[str, Callable[[], object]] = {
            "writer": lambda: writer.write(document, Path(tmp)),
            "floor": lambda: floor(strings),
        }
        if rows <= 10_000:
            cases["cell() loop"] = lambda: cell_loop(strings)
            samples["cell() loop"] = []
        for name in ("writer", "floor"):  # a warm-up round: imports and locale data are loaded once per process
            cases[name]()
        for round_number in range(rounds):
            order = list(cases) if round_number % 2 == 0 else list(reversed(cases))
            for name in order:
                started = time.perf_counter()
                cases[name]()
                samples[name].append(time.perf_counter() - started)
        reader = PdfReader(Path(tmp) / "bench-pdf.pdf")
        pages = len(reader.pages)
        first, last = reader.pages[0].extract_text(), reader.pages[pages - 1].extract_text()
    missing = [i for i, text in ((0, first), (rows - 1, last)) if f"{i:,}" not in text]
    figures = {name: dict(zip(("min", "median", "max"), spread(v), strict=True)) for name, v in samples.items()}
    ratio = figures["writer"]["median"] / figures["floor"]["median"]
    return {"rows": rows, "pages": pages, "cases": figures, "ratio": ratio, "pass": ratio <= TARGET, "missing": missing}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000", help="table sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per case (default 3)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(int(rows), args.rounds) for rows in args.rows.split(",")]
    if args.json:
        print(json.dumps(results))
    else:
        print(f"6-column table to A4 PDF, DejaVu Sans; {args.rounds} rounds, seconds min / median / max")
        print(f"{'rows':>8}  {'pages':>6}  {'case':<12}{'min':>9}{'median':>9}{'max':>9}")
        for result in results:
            for name, figure in result["cases"].items():
                values = "".join(f"{figure[k]:>9.3f}" for k in ("min", "median", "max"))
                print(f"{result['rows']:>8,}  {result['pages']:>6,}  {name:<12}{values}")
        for result in results:
            verdict = "PASS" if result["pass"] else "FAIL"
            print(f"{verdict} {result['rows']:,} rows: writer {result['ratio']:.2f}x the floor (target <= {TARGET}x)")
    for result in results:
        if result["missing"]:
            print(f"the writer's PDF of {result['rows']:,} rows misses rows {result['missing']}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
