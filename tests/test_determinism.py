"""The same spec, data and run time give byte-identical files in every format; no browser means nothing written.

Every demo spec (specs/) and example spec (examples/*/specs) is rendered several times, in this process and in
fresh ones with other numbers of Polars threads, and every file's SHA-256 must be the same each time.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import CliResult

Cli = Callable[..., CliResult]
ROOT = Path(__file__).resolve().parents[1]
EPOCH = "1795000000"
RENDERS = 3
FORMATS = "csv,json,xlsx,md,html"  # the chart formats (pdf, png, svg) are covered by the spec below
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


def _digests(cli: Cli, spec: Path, out: Path, *options: str) -> dict[str, str]:
    """Render ``spec`` into ``out``; each file's SHA-256 from the bytes on disk, checked against the run's."""
    result = cli("render", str(spec), "-o", str(out), "--json", "--no-state", *options)
    assert result.exit_code == 0, result.stderr
    return _read_back(json.loads(result.stdout))


def _read_back(summary: dict[str, object]) -> dict[str, str]:
    artifacts = summary["artifacts"]
    assert isinstance(artifacts, list)
    digests = {}
    for artifact in artifacts:
        path = Path(artifact["path"])
        digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digests[path.name] == artifact["sha256"]
    return digests


def _concrete(folder: Path) -> list[Path]:
    specs = []
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if "apiVersion" in document and not document.get("abstract", False):
            specs.append(path)
    return specs


SPECS = [
    *_concrete(ROOT / "specs"),
    *(s for project in sorted((ROOT / "examples").glob("*/specs")) for s in _concrete(project)),
]


def test_every_demo_and_example_spec_is_found() -> None:
    names = {str(s.relative_to(ROOT)) for s in SPECS}
    assert {"specs/error-budget.yaml", "specs/server-health.yaml", "examples/sales/specs/monthly-revenue.yaml"} <= names
    assert len(names) >= 9


@pytest.mark.parametrize("spec", SPECS, ids=[str(s.relative_to(ROOT)) for s in SPECS])
def test_each_demo_and_example_spec_renders_to_the_same_bytes(
    cli: Cli, spec: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    monkeypatch.chdir(spec.parent)  # the spec's project, as a user renders it
    renders = [_digests(cli, spec, tmp_path / str(i), "-f", FORMATS) for i in range(RENDERS)]
    assert {Path(name).suffix for name in renders[0]} >= {".csv", ".json", ".xlsx", ".md", ".html"}
    assert all(render == renders[0] for render in renders[1:])


@pytest.mark.parametrize("threads", ["1", "3"])
def test_other_thread_counts_give_the_same_bytes(
    cli: Cli, threads: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The spec of the report that first showed differing means, in a fresh process with its own thread pool."""
    spec = ROOT / "specs" / "error-budget.yaml"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    monkeypatch.chdir(spec.parent)
    here = _digests(cli, spec, tmp_path / "here", "-f", FORMATS)
    command = [sys.executable, "-m", "reportctl", "render", str(spec), "-o", str(tmp_path / threads)]
    environment = {**os.environ, "POLARS_MAX_THREADS": threads}
    done = subprocess.run(
        [*command, "-f", FORMATS, "--json", "--no-state"], capture_output=True, text=True, env=environment, check=False
    )
    assert done.returncode == 0, done.stderr
    assert _read_back(json.loads(done.stdout)) == here


def test_same_run_time_gives_identical_files(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = project / "specs" / "stable.yaml"
    spec.write_text(SPEC)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    first, *others = [_digests(cli, spec, tmp_path / str(i)) for i in range(RENDERS)]
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
    assert others == [first] * (RENDERS - 1)


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
