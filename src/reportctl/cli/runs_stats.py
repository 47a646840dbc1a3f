"""``reportctl runs stats``: how the project's reports have been running, as a table, JSON or a small HTML page."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reportctl.cli.output import aligned_columns, as_typed, echo, moment_option, print_json

if TYPE_CHECKING:
    from reportctl.state.stats import Figures, RunStats


def stats(
    report: Annotated[str | None, typer.Option("--report", help="Only runs of this report.")] = None,
    since: Annotated[
        str, typer.Option("--since", help="Runs since a time (ISO, e.g. 2026-11-01) or for a duration (30d).")
    ] = "30d",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Also write the figures as an HTML page with charts to FILE.")
    ] = None,
) -> None:
    """Runs, failure rate and p50/p95 duration per report and per ISO week, delivery success per channel, and
    trends worth a look (a failure streak, generation time doubled against the previous 7 days)."""
    from datetime import UTC, datetime

    from reportctl.cli.runs import _store
    from reportctl.config import find_project
    from reportctl.state import NoStateStore
    from reportctl.state.stats import RunStats, run_stats

    start = moment_option("--since", since, "30d")
    now = datetime.now(UTC)
    project = find_project()
    try:
        with _store(project) as store:
            figures = run_stats(store, since=start, until=now, report=report)
    except NoStateStore:
        figures = RunStats(start, now, [], [])
    if html_file is not None:
        _write_page(figures, html_file, project.config.timezone)
    if as_json:
        print_json(figures.as_dict())
        return
    for line in describe(figures):
        echo(line)
    if html_file is not None:
        echo(f"wrote {as_typed(html_file)}")


def describe(figures: RunStats) -> list[str]:
    """The figures as text: a line per report, then per report and week, then per channel."""
    if not figures.reports:
        return [f"no runs recorded since {figures.since:%Y-%m-%d %H:%M} UTC"]
    lines = [f"runs since {figures.since:%Y-%m-%d %H:%M} UTC"]
    header = ("REPORT", "RUNS", "FAILED", "FAIL RATE", "P50", "P95", "FLAGS")
    rows = [(r.report, *_row(r.figures), "; ".join(r.flags)) for r in figures.reports]
    lines += aligned_columns(header, rows)
    lines += ["", "per week"]
    weekly = [(r.report, week, *_row(f)) for r in figures.reports for week, f in r.weeks.items()]
    lines += aligned_columns(("REPORT", "WEEK", "RUNS", "FAILED", "FAIL RATE", "P50", "P95"), weekly)
    if figures.channels:
        lines += ["", "deliveries"]
        channel_rows = [
            (c.channel, *(str(c.counts.get(s, 0)) for s in ("sent", "failed", "bounced", "unknown", "pending")),
             _rate(c.success_rate))
            for c in figures.channels
        ]  # fmt: skip
        lines += aligned_columns(
            ("CHANNEL", "SENT", "FAILED", "BOUNCED", "UNKNOWN", "PENDING", "SUCCESS"), channel_rows
        )
    return lines


def _row(figures: Figures) -> tuple[str, ...]:
    return (
        str(figures.runs),
        str(figures.failed),
        _rate(figures.failure_rate),
        _seconds(figures.p50_seconds),
        _seconds(figures.p95_seconds),
    )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _write_page(figures: RunStats, path: Path, timezone: str) -> None:
    """A page of its own (plotly.js inlined, nothing fetched): the tables, weekly p95 duration and failure rate."""
    import plotly.graph_objects as go

    from reportctl.atomic import replacing

    duration, failures = go.Figure(), go.Figure()
    for report in figures.reports:
        weeks = list(report.weeks)
        duration.add_trace(go.Scatter(x=weeks, y=[f.p95_seconds for f in report.weeks.values()], name=report.report))
        failures.add_trace(
            go.Bar(x=weeks, y=[(f.failure_rate or 0) * 100 for f in report.weeks.values()], name=report.report)
        )
    duration.update_layout(title="p95 run duration per week (s)", template="plotly_white", height=360)
    failures.update_layout(title="Failure rate per week (%)", template="plotly_white", height=360, barmode="group")
    table = "\n".join(describe(figures))
    body = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>reportctl run statistics</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1f2937}"
        "pre{overflow-x:auto;background:#f3f4f6;padding:1rem;border-radius:6px}</style></head><body>"
        f"<h1>Run statistics</h1><p>Runs since {figures.since:%Y-%m-%d %H:%M} UTC (times in UTC; the project's "
        f"zone is {html.escape(timezone)}).</p><pre>{html.escape(table)}</pre>"
        + duration.to_html(full_html=False, include_plotlyjs=True)
        + failures.to_html(full_html=False, include_plotlyjs=False)
        + "</body></html>"
    )
    with replacing(path) as file:
        file.write(body.encode("utf-8"))
