"""Exporting a report's charts: the browser start and the per-chart export, in one session per run.

A report with 4 charts (a line chart with 4 series, a stacked bar chart, a donut and a heatmap) over one
week of hourly data for 4 services (672 rows) is exported with ``reportctl.chart_export.export_charts`` as a run
would do it: one Chromium for all charts. Each run reports, from ``export_charts``'s ``stats``:

- browser start: launching Chromium and loading plotly.js into its page (kaleido's ``open``);
- export: all charts, each as PNG (2x) and SVG; per chart = export / charts exported;
- figures: building the 4 Plotly figures (pure Python, no browser);
- total: the whole ``export_charts`` call, including stopping the browser.

Figures are the median and minimum of ``--runs`` runs (default 3). Plotly is imported by a first figure build
before the runs (its time is printed separately), so the runs compare like with like. Exits 0; 2 when no
browser is found or an export fails (the figures would mean nothing).

    .venv/bin/python benchmarks/bench_charts.py [--runs 3] [--formats png,svg] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from childproc import summarise


def report_charts() -> list[Any]:
    import polars as pl

    from reportctl.document import ChartBlock

    start = datetime(2026, 11, 21, tzinfo=UTC)
    services = ["api", "web", "db", "queue"]
    rows = [(start + timedelta(hours=h), s, i) for h in range(7 * 24) for i, s in enumerate(services)]
    frame = pl.DataFrame(
        {
            "hour": [r[0] for r in rows],
            "service": [r[1] for r in rows],
            "p95_latency": [80.0 + 20 * r[2] + (r[0].hour * 7 + r[2] * 13) % 50 for r in rows],
            "requests": [1000 + (r[0].hour * 37 + r[2] * 101) % 700 for r in rows],
        }
    )
    daily = frame.group_by(pl.col("hour").dt.truncate("1d").alias("day"), "service", maintain_order=True).agg(
        pl.col("requests").sum()
    )
    totals = frame.group_by("service", maintain_order=True).agg(pl.col("requests").sum())
    return [
        ChartBlock("latency", "p95 latency", "line", frame, "hour", ("p95_latency",), "service", format="number:0 ms"),
        ChartBlock("daily", "Requests per day", "bar", daily, "day", ("requests",), "service", stacked=True),
        ChartBlock("share", "Share of requests", "donut", totals, "service", ("requests",), format="integer"),
        ChartBlock("heat", "p95 by hour", "heatmap", frame, "hour", ("p95_latency",), "service", format="number:0 ms"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="export runs, one browser session each (default 3)")
    parser.add_argument("--formats", default="png,svg", help="image formats per chart (default png,svg)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    formats = {f.strip() for f in args.formats.split(",") if f.strip()}

    t = time.perf_counter()
    from reportctl.chart_export import export_charts, find_browser
    from reportctl.charts import ChartError, build_figure

    import_seconds = time.perf_counter() - t
    browser = find_browser()
    if browser is None:
        print("bench_charts: no Chrome/Chromium found; no figures", file=sys.stderr)
        return 2
    blocks = report_charts()
    t = time.perf_counter()
    for block in blocks:
        build_figure(block, "Europe/Berlin")
    first_build = time.perf_counter() - t

    samples: list[dict[str, float]] = []
    for _ in range(args.runs):
        stats: dict[str, float] = {}
        t = time.perf_counter()
        try:
            images = export_charts(blocks, formats, timezone="Europe/Berlin", stats=stats)
        except ChartError as exc:
            print(f"bench_charts: {exc}; no figures", file=sys.stderr)
            return 2
        total = time.perf_counter() - t
        if len(images) != len(blocks):
            print(f"bench_charts: {len(images)} images for {len(blocks)} charts; no figures", file=sys.stderr)
            return 2
        samples.append(
            {
                "browser start": stats["browser_start"],
                "export (all charts)": stats["export"],
                "export per chart": stats["export"] / stats["exported"],
                "figures + stop (rest)": total - stats["browser_start"] - stats["export"],
                "total": total,
            }
        )

    summary = summarise(samples)
    result = {
        "benchmark": "bench_charts",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "browser": str(browser),
        "charts": len(blocks),
        "formats": sorted(formats),
        "runs": args.runs,
        "import reportctl.chart_export (s)": round(import_seconds, 4),
        "first figure build incl. plotly import (s)": round(first_build, 4),
        "summary": summary,
        "samples": samples,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{len(blocks)} charts as {'+'.join(sorted(formats))}, browser {browser}, {args.runs} runs (seconds)")
    print(f"first figure build (imports plotly): {first_build:.3f}")
    print(f"{'phase':<24}{'median':>9}{'min':>9}")
    for name, figures in summary.items():
        print(f"{name:<24}{figures['median']:>9.3f}{figures['min']:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
