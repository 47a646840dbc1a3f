"""Writing 100,000 rows x 6 columns (one formula column) to xlsx: XlsxWriter against a minimal xlsxwriter script.

Each run is a fresh child process (``--child reportctl|minimal``) that builds the same frame, then times only
the write; the parent reads the child's peak RSS with ``os.wait4``. Runs alternate (ABAB..), median of
``--rounds`` (default 3). The minimal script is what a careful user would write: constant_memory, the same
workbook options, column formats via set_column, a bold header, ``to_list()`` per column, ``write_row`` for
the five plain cells and ``write_formula`` with the cached value for the sixth; datetimes become Excel serial
numbers computed by polars over the column (as the writer computes them), not Python datetimes converted by
xlsxwriter one cell at a time, which made the baseline slower than it needs to be. Targets: XlsxWriter within
1.2x the minimal script's median, peak RSS under 200 MB. Prints a table and PASS/FAIL lines; exits 0 either way
(2 when a child fails).

    .venv/bin/python benchmarks/bench_xlsx.py [--rounds 3] [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RATIO, RSS_MB = 1.2, 200
CASES = ("reportctl", "minimal")


def build_frame(rows: int) -> Any:
    """Six columns: a datetime, text, a float, two integers and the formula column over the float."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(42)
    start = datetime(2026, 11, 27, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": pl.datetime_range(start, start.replace(day=30), interval="1s", eager=True, time_zone="UTC")[:rows],
            "service": rng.choice(["api", "web", "db", "queue", "auth", "search"], rows),
            "p95_latency": rng.gamma(2.0, 80.0, rows).round(2),
            "requests": rng.integers(1, 10_000, rows),
            "errors": rng.integers(0, 50, rows),
        }
    ).with_columns((pl.col("p95_latency") - 250).alias("over_budget"))


def run_reportctl(frame: Any, directory: Path) -> Path:
    from reportctl.document import Document, ReportInfo, TableBlock, TableColumn
    from reportctl.writers.xlsx import XlsxWriter

    columns = (
        TableColumn("ts", "Time", "datetime"),
        TableColumn("service", "Service"),
        TableColumn("p95_latency", "p95", "number:1 ms"),
        TableColumn("requests", "Requests", "integer"),
        TableColumn("errors", "Errors", "integer"),
        TableColumn("over_budget", "Over budget", "number:1 ms", formula="p95_latency - 250"),
    )
    at = datetime(2026, 11, 28, 9, tzinfo=UTC)
    info = ReportInfo("bench", "Bench", None, "run", at, "UTC", "bench.yaml", "sha256:0")
    document = Document(info, (), (TableBlock("rows", "Rows", columns, frame),))
    (path,) = XlsxWriter({"constant_memory": True}).write(document, directory)
    return path


def run_minimal(frame: Any, directory: Path) -> Path:
    import xlsxwriter

    path = directory / "minimal.xlsx"
    options = {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    workbook = xlsxwriter.Workbook(str(path), options)
    sheet = workbook.add_worksheet("Rows")
    codes = ["yyyy-mm-dd hh:mm", "@", '#,##0.0" ms"', "#,##0", "#,##0", '#,##0.0" ms"']
    for index, code in enumerate(codes):
        sheet.set_column(index, index, 14, workbook.add_format({"num_format": code}))
    sheet.write_row(
        0, 0, ["Time", "Service", "p95", "Requests", "Errors", "Over budget"], workbook.add_format({"bold": True})
    )
    # dates as Excel serial numbers computed by polars over the column, as the writer does: handing xlsxwriter
    # Python datetimes one cell at a time would make this baseline slower than it needs to be
    import polars as pl

    serials = frame.select(pl.col("ts").dt.replace_time_zone(None).dt.epoch("us") / 86_400_000_000 + 25_569).to_series()
    plain = [
        serials.to_list(),
        *(frame.get_column(c).to_list() for c in ("service", "p95_latency", "requests", "errors")),
    ]
    cached = frame.get_column("over_budget").to_list()
    for row, (cells, value) in enumerate(zip(zip(*plain, strict=True), cached, strict=True), start=1):
        sheet.write_row(row, 0, cells)
        sheet.write_formula(row, 5, f"=C{row + 1}-250", None, value)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, len(cached), 5)
    workbook.close()
    return path


def child(case: str, rows: int) -> None:
    frame = build_frame(rows)
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        path = (run_reportctl if case == "reportctl" else run_minimal)(frame, Path(directory))
        seconds = time.perf_counter() - started
        size = path.stat().st_size
    print(json.dumps({"seconds": seconds, "bytes": size}))


def measure(case: str, rows: int) -> tuple[float, float, int]:
    """(write seconds, peak RSS in MiB, file bytes) of one child run."""
    with tempfile.TemporaryFile("w+") as out:
        command = [sys.executable, __file__, "--child", case, "--rows", str(rows)]
        process = subprocess.Popen(command, stdout=out)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            print(f"child {case} failed with exit code {process.returncode}", file=sys.stderr)
            raise SystemExit(2)
        out.seek(0)
        result = json.loads(out.read())
    return result["seconds"], usage.ru_maxrss / 1024, result["bytes"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--child", choices=CASES)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows)
        return 0
    samples: dict[str, list[tuple[float, float, int]]] = {case: [] for case in CASES}
    for round_index in range(args.rounds):
        order = CASES if round_index % 2 == 0 else CASES[::-1]
        for case in order:
            samples[case].append(measure(case, args.rows))
    print(f"{args.rows:,} rows x 6 columns (one formula), {args.rounds} rounds alternating; write time in the child")
    print(f"{'case':<10} {'median s':>9} {'min s':>7} {'peak RSS MiB':>13} {'file MiB':>9}")
    medians = {}
    for case in CASES:
        seconds = [s for s, _, _ in samples[case]]
        rss = max(r for _, r, _ in samples[case])
        medians[case] = statistics.median(seconds)
        size = samples[case][0][2] / 2**20
        print(f"{case:<10} {medians[case]:>9.3f} {min(seconds):>7.3f} {rss:>13.1f} {size:>9.2f}")
    ratio = medians["reportctl"] / medians["minimal"]
    peak = max(r for _, r, _ in samples["reportctl"])
    print(f"{'PASS' if ratio <= RATIO else 'FAIL'} time: XlsxWriter / minimal = {ratio:.2f} (target <= {RATIO})")
    print(
        f"{'PASS' if peak < RSS_MB else 'FAIL'} memory: XlsxWriter child peak RSS {peak:.0f} MiB (target < {RSS_MB} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
