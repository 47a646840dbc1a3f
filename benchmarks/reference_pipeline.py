"""The reference pipeline reportctl replaces, written as a competent engineer would with pandas, openpyxl and ReportLab.

Reads a Parquet file of metrics (timestamp, service, region, latency_ms, cpu) and writes the same four outputs as
the benchmark's spec: CSV, JSON (records), XLSX (a bold header, a number format on every cell, a live formula
column ``=E2-250``, frozen header, column widths) and a PDF of every row (A4, a title, a table per page with its
header, alternating row shading), then prints the seconds each step took as JSON.

    python benchmarks/reference_pipeline.py DATA.parquet OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROWS_PER_PAGE = 34


def main(source: Path, out: Path) -> None:
    import pandas as pd

    timings: dict[str, float] = {}
    t = time.perf_counter()
    frame = pd.read_parquet(source)
    frame["over_budget"] = frame["latency_ms"] - 250
    timings["read"] = time.perf_counter() - t
    out.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    frame.to_csv(out / "report.csv", index=False)
    timings["csv"] = time.perf_counter() - t
    t = time.perf_counter()
    frame.to_json(out / "report.json", orient="records", date_format="iso")
    timings["json"] = time.perf_counter() - t
    t = time.perf_counter()
    _xlsx(frame, out / "report.xlsx")
    timings["xlsx"] = time.perf_counter() - t
    t = time.perf_counter()
    _pdf(frame, out / "report.pdf")
    timings["pdf"] = time.perf_counter() - t
    print(json.dumps(timings))


def _xlsx(frame, path: Path) -> None:  # frame: a pandas DataFrame
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "Metrics"
    bold = Font(bold=True)
    headers = ["Time", "Service", "Region", "Latency (ms)", "CPU (%)", "Over budget"]
    for column, text in enumerate(headers, start=1):
        cell = sheet.cell(row=1, column=column, value=text)
        cell.font = bold
    formats = ["yyyy-mm-dd hh:mm", "@", "@", "#,##0.0", "0.0", "#,##0.0"]
    timestamps = frame["timestamp"].dt.tz_localize(None).dt.to_pydatetime()
    for index, (when, service, region, latency, cpu) in enumerate(
        zip(timestamps, frame["service"], frame["region"], frame["latency_ms"], frame["cpu"], strict=True), start=2
    ):
        values = [when, service, region, float(latency), float(cpu), f"=D{index}-250"]
        for column, (value, number_format) in enumerate(zip(values, formats, strict=True), start=1):
            cell = sheet.cell(row=index, column=column, value=value)
            cell.number_format = number_format
    sheet.freeze_panes = "A2"
    for letter, width in zip("ABCDEF", [18, 14, 12, 14, 8, 12], strict=True):
        sheet.column_dimensions[letter].width = width
    book.save(path)


def _pdf(frame, path: Path) -> None:  # frame: a pandas DataFrame
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Table, TableStyle

    header = ["Time", "Service", "Region", "Latency (ms)", "CPU (%)", "Over budget"]
    rows = [
        [when.strftime("%Y-%m-%d %H:%M"), service, region, f"{latency:,.1f}", f"{cpu:.1f}", f"{over:,.1f}"]
        for when, service, region, latency, cpu, over in zip(
            frame["timestamp"], frame["service"], frame["region"], frame["latency_ms"], frame["cpu"],
            frame["over_budget"], strict=True,
        )
    ]  # fmt: skip
    style = TableStyle(
        [
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("ALIGN", (3, 0), (-1, -1), "RIGHT"),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.whitesmoke]),
            ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
        ]
    )
    story: list = [Paragraph("Metrics", getSampleStyleSheet()["Title"])]
    for start in range(0, len(rows), ROWS_PER_PAGE):
        story.append(Table([header, *rows[start : start + ROWS_PER_PAGE]], style=style, repeatRows=1))
        story.append(PageBreak())
    SimpleDocTemplate(str(path), pagesize=A4).build(story)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
