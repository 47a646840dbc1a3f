"""The same spec, data and run time give byte-identical files in every format; no browser means nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult

Cli = Callable[..., CliResult]
SPEC = """\
apiVersion: reportctl/v1
name: stable
title: "Stable {{ period.start | format_date }}"
description: "Zürich, 東京 \u2212 and \u2014 in every format."
parameters:
  period: {type: period, default: last_7_days}
sources:
  metrics: {kind: sample, rows: 3000, seed: 5, period: period}
datasets:
  by_service:
    from: metrics
    group_by: [service]
    aggregate: {samples: count(), p95: p95(latency_ms), errors: mean(error_rate)}
  hourly:
    from: metrics
    every: 6h
    aggregate: {p95: p95(latency_ms)}
sections:
  - {id: intro, type: text, template: "**{{ datasets.by_service | length }}** services, *all regions*."}
  - {id: kpis, type: kpis, items: [{label: Samples, value: "sum(by_service.samples)", format: integer}]}
  - id: services
    type: table
    dataset: by_service
    columns:
      p95: {format: "number:1 ms"}
      errors: {format: "percent:2"}
      budget: {formula: "p95 - 250", format: "number:1 ms"}
  - {id: trend, type: chart, dataset: hourly, chart: line, x: timestamp, y: p95, format: "number:0 ms"}
outputs: [pdf, xlsx, html, md, png, svg, csv, json]
"""


def _digests(cli: Cli, spec: Path, out: Path) -> dict[str, str]:
    result = cli("render", str(spec), "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    return {Path(a["path"]).name: a["sha256"] for a in summary["artifacts"]}


def test_same_run_time_gives_identical_files(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = project / "specs" / "stable.yaml"
    spec.write_text(SPEC)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795000000")
    first = _digests(cli, spec, tmp_path / "a")
    second = _digests(cli, spec, tmp_path / "b")
    assert set(first) == {
        "stable.pdf",
        "stable.xlsx",
        "stable.html",
        "stable.md",
        "stable.trend.png",
        "stable.trend.svg",
        "stable.csv",
        "stable.json",
    }
    assert first == second


def test_no_browser_fails_before_writing_anything(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = project / "specs" / "stable.yaml"
    spec.write_text(SPEC)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("REPORTCTL_BROWSER", str(tmp_path / "no-such-chromium"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no browser downloaded by kaleido either
    result = cli("render", str(spec), "-f", "pdf")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: charts need Chromium")
    assert not (project / "out").exists()
    # Formats that draw no pictures still work without a browser.
    assert cli("render", str(spec), "-f", "csv,json,xlsx,html").exit_code == 0
