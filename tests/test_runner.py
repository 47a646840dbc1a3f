"""One run end to end, in-process: the report's time zone decides days, buckets and filters."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from reportctl.config import find_project
from reportctl.runner import render_report
from reportctl.spec.loader import load_spec

BERLIN = ZoneInfo("Europe/Berlin")
# The week of 2026-10-25, when Berlin falls back from CEST to CET.
NOW = datetime(2026, 10, 28, 12, tzinfo=UTC)
SPEC = """\
apiVersion: reportctl/v1
name: local-days
timezone: Europe/Berlin
parameters:
  period: {type: period, default: last_7_days}
sources:
  metrics: {kind: sample, rows: 10140, seed: 1, period: period}
datasets:
  daily:
    from: metrics
    every: 1d
    aggregate: {samples: count()}
  since_sunday:
    sql: "SELECT count(*) AS samples FROM metrics WHERE timestamp >= :sunday"
sections:
  - {id: daily, type: table, dataset: daily}
  - {id: since, type: table, dataset: since_sunday}
outputs: [json]
"""


def _render(project: Path, **parameters: str) -> dict[str, pl.DataFrame]:
    path = project / "specs" / "local-days.yaml"
    text = SPEC.replace("parameters:\n", "parameters:\n  sunday: {type: datetime, default: '2026-10-25T00:00'}\n")
    path.write_text(text)
    loaded = load_spec(path, find_project(path))
    result = render_report(loaded, parameters=parameters, now=NOW)
    import json

    document = json.loads((result.directory / "local-days.json").read_text())
    return {s["id"]: pl.DataFrame(s["rows"]) for s in document["sections"]}


def test_daily_buckets_start_at_local_midnight_across_daylight_saving(project: Path) -> None:
    tables = _render(project)
    days = [datetime.fromisoformat(t) for t in tables["daily"]["timestamp"]]
    assert [d.astimezone(BERLIN).hour for d in days] == [0] * 7
    assert days[0] == datetime(2026, 10, 21, tzinfo=BERLIN)
    # 10,140 samples spread evenly over 169 hours (the week has one 25-hour day): one per minute.
    samples = dict(zip([d.date().isoformat() for d in days], tables["daily"]["samples"], strict=True))
    assert samples["2026-10-25"] == 25 * 60
    assert samples["2026-10-24"] == 24 * 60
    assert sum(samples.values()) == 10140


def test_sql_datasets_compare_local_datetimes_as_instants(project: Path) -> None:
    tables = _render(project)
    # From Sunday 00:00 Berlin (22:00 UTC Saturday) to the end of the period, Wednesday 00:00 Berlin:
    # Sunday has 25 hours, Monday and Tuesday 24: 73 hours, one sample a minute.
    assert tables["since"]["samples"].to_list() == [73 * 60]
