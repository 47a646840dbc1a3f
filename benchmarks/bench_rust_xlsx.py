"""Stretch measurement (issue 11): a Rust-backed writer, rustpy-xlsxwriter, against XlsxWriter on the same workbook.

Not part of ``make bench`` and not a dependency: run it in a virtual environment of its own with both packages
(``pip install rustpy-xlsxwriter xlsxwriter``). The workbook: 100,000 rows x 6 columns (integer, text, datetime and
three floats with number formats), a formula column (``=F{row}-250``), a frozen header, column widths and a native
line chart of every row. XlsxWriter writes it the way reportctl's writer does (``constant_memory``,
``write_row`` and ``write_formula``, one format per column); rustpy-xlsxwriter through ``write_worksheet`` with
``column_formats``, ``formula_columns`` and ``charts``. Each in a fresh child process, alternating, ``--rounds``
rounds; min / median / max seconds and the files' sizes.

    python benchmarks/bench_rust_xlsx.py [--rows 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from childproc import spread

HEADERS = ["ID", "Service", "Time", "Revenue", "Error rate", "p95 latency"]


def rows(count: int) -> list[list[object]]:
    start = datetime(2026, 11, 21)
    services = ["api-gateway", "checkout", "search", "payments-eu", "Zürich edge", "Kraków cache"]
    return [
        [i, services[i % 6], start + timedelta(minutes=i), (i * 7919 % 100_000) / 7 - 2000, (i * 13 % 1000) / 10_000,
         100 + (i * 31 % 5000) / 10]
        for i in range(count)
    ]  # fmt: skip


def with_xlsxwriter(path: str, count: int) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(path, {"constant_memory": True})
    sheet = book.add_worksheet("Rows")
    bold = book.add_format({"bold": True})
    formats = [book.add_format({"num_format": f}) for f in ("#,##0", "@", "yyyy-mm-dd hh:mm", '#,##0.00" €"',
                                                          "0.00%", '#,##0.0" ms"')]  # fmt: skip
    over = book.add_format({"num_format": '#,##0.0" ms"'})
    sheet.write_row(0, 0, [*HEADERS, "Over budget"], bold)
    for column, width in enumerate((8, 14, 17, 13, 10, 12, 12)):
        sheet.set_column(column, column, width, formats[column] if column < 6 else over)
    sheet.freeze_panes(1, 0)
    for number, row in enumerate(rows(count), start=1):
        sheet.write_row(number, 0, row)
        sheet.write_formula(number, 6, f"=F{number + 1}-250")
    chart = book.add_chart({"type": "line"})
    chart.add_series(
        {"name": "p95 latency", "categories": ["Rows", 1, 2, count, 2], "values": ["Rows", 1, 5, count, 5]}
    )
    sheet.insert_chart("I2", chart)
    book.close()


def with_rust(path: str, count: int) -> None:
    from rustpy_xlsxwriter import Format, write_worksheet

    records = [dict(zip(HEADERS, row, strict=True)) for row in rows(count)]
    formats = {
        "ID": Format().set_num_format("#,##0"),
        "Time": Format().set_num_format("yyyy-mm-dd hh:mm"),
        "Revenue": Format().set_num_format('#,##0.00" €"'),
        "Error rate": Format().set_num_format("0.00%"),
        "p95 latency": Format().set_num_format('#,##0.0" ms"'),
    }
    chart = {
        "type": "line",
        "series": ["p95 latency"],
        "categories": "Time",
        "title": "p95 latency",
        "row": 1,
        "col": 8,
    }
    write_worksheet(
        records, path, sheet_name="Rows", column_formats=formats, formula_columns={"Over budget": "=F{row}-250"},
        freeze_row=1, column_widths=[8, 14, 17, 13, 10, 12, 12], charts=[chart],
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=("xlsxwriter", "rust"))
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        (with_xlsxwriter if args.child == "xlsxwriter" else with_rust)(args.out, args.rows)
        return 0
    samples: dict[str, list[float]] = {"xlsxwriter": [], "rust": []}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(args.rounds):
            order = ["xlsxwriter", "rust"] if round_number % 2 == 0 else ["rust", "xlsxwriter"]
            for name in order:
                out = str(Path(folder) / f"{name}.xlsx")
                began = time.perf_counter()
                command = [sys.executable, __file__, "--child", name, "--out", out, "--rows", str(args.rows)]
                subprocess.run(command, check=True)
                samples[name].append(time.perf_counter() - began)
                sizes[name] = Path(out).stat().st_size
    print(f"{args.rows:,} rows x 6 columns + a formula column and a chart; fresh process each; seconds")
    for name, values in samples.items():
        low, mid, high = spread(values)
        print(f"{name:<12}{low:>8.2f}{mid:>8.2f}{high:>8.2f}  {sizes[name] / 2**20:.2f} MiB")
    ratio = statistics.median(samples["xlsxwriter"]) / statistics.median(samples["rust"])
    print(
        f"rustpy-xlsxwriter takes 1/{ratio:.2f} of XlsxWriter's time (medians, process start and row building included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
