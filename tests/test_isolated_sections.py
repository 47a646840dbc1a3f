"""Isolated sections (``on_error: placeholder``): a failed source, dataset, template, KPI or chart becomes a visible
placeholder in every format, the rest of the report is written and delivered, and the run ends
COMPLETED_WITH_WARNINGS; with ``fail`` (the default) the run fails as before and leaves nothing."""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from conftest import CliResult
from delivery.http_peers import HttpPeer, Reply, running

Cli = Callable[..., CliResult]

SPEC = """\
apiVersion: reportctl/v1
name: mixed
title: Mixed health
sources:
  good: {kind: file, path: data/good.csv}
  api: {kind: http, url: "URL", retries: 0, timeout: 5s}
datasets:
  items: {from: api}
  busiest: {sql: "SELECT * FROM items ORDER BY n DESC"}
sections:
  - {id: intro, type: text, template: "Good has {{ datasets.good | length }} rows."}
  - {id: goodtable, type: table, dataset: good}
  - {id: apitable, type: table, dataset: items, on_error: ON_ERROR}
  - {id: apikpi, type: kpis, on_error: ON_ERROR, items: [{label: Busiest, value: "max(busiest.n)"}]}
outputs: [pdf, xlsx, csv, json, html, md]
delivery:
  - {channel: file, to: [ops@example.com]}
"""


def _closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def failing_api() -> Iterator[HttpPeer]:
    """A local HTTP API whose /items answers every request with a 500."""
    with running(HttpPeer()) as api:
        api.script("/items", Reply(500, {"error": "database is down"}))
        yield api


@pytest.fixture
def mixed(project: Path) -> Path:
    (project / "data").mkdir()
    (project / "data" / "good.csv").write_text("day,n\n2026-01-01,3\n2026-01-02,5\n")
    return project


def _write_spec(project: Path, on_error: str, url: str, extra: str = "") -> None:
    text = SPEC.replace("URL", url).replace("ON_ERROR", on_error)
    (project / "specs" / "mixed.yaml").write_text(text.replace("outputs:", extra + "outputs:"))


def _run_folder(project: Path) -> Path:
    (folder,) = [p for p in (project / "out" / "mixed").iterdir() if not p.name.startswith(".")]
    return folder


def _runs(cli: Cli) -> list[dict[str, Any]]:
    result = cli("runs", "list", "--json")
    assert result.exit_code == 0, result.stderr
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _html_text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text())
    return " ".join(" ".join(parser.parts).split())


def _pdf_text(path: Path) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(path).pages).split())


def _xlsx_text(path: Path) -> str:
    book = load_workbook(path)
    cells = [str(c.value) for sheet in book.worksheets for row in sheet.iter_rows() for c in row if c.value]
    return " ".join(" ".join(cells).split())


def test_an_unreachable_source_becomes_a_placeholder_in_every_format_and_the_rest_is_delivered(
    cli: Cli, mixed: Path
) -> None:
    port = _closed_port()
    _write_spec(mixed, "placeholder", f"http://127.0.0.1:{port}/items")
    result = cli("render", "specs/mixed.yaml", "--deliver")
    assert result.exit_code == 0, result.stderr
    assert "warning: section 'apitable' rendered as a placeholder: dataset 'items' failed: source 'api'" in (
        result.stderr
    )
    folder = _run_folder(mixed)
    assert sorted(p.suffix for p in folder.iterdir()) == [".csv", ".html", ".json", ".json", ".md", ".pdf", ".xlsx"]
    reason = f"source 'api' (http GET http://127.0.0.1:{port}/items): connection refused"
    for read in (_pdf_text(folder / "mixed.pdf"), _xlsx_text(folder / "mixed.xlsx"), _html_text(folder / "mixed.html")):
        assert "Section 'apitable' could not be rendered (table): dataset 'items' failed: " + reason in read
        assert "Section 'apikpi' could not be rendered (kpis)" in read
        assert "Good has 2 rows." in read and "2026-01-02" in read
    assert "**Section 'apitable' could not be rendered** (table)" in (folder / "mixed.md").read_text()
    # the HTML marks the failed sections for its callout style, and only those
    html = (folder / "mixed.html").read_text()
    failed_html = re.findall(r'class="block block-\w+ block-failed" id="([^"]+)"', html)
    assert failed_html == ["section-apitable", "section-apikpi"]
    # CSV has the good table only; JSON and the manifest say which sections failed and why
    assert (folder / "mixed.csv").read_text().splitlines()[-1] == "2026-01-02,5"
    document = json.loads((folder / "mixed.json").read_text())
    failed = {s["id"]: s for s in document["sections"] if s.get("failed")}
    assert sorted(failed) == ["apikpi", "apitable"]
    assert failed["apitable"]["type"] == "table" and reason in failed["apitable"]["error"]
    assert [w["section"] for w in document["warnings"]] == ["apitable", "apikpi"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [w["section"] for w in manifest["warnings"]] == ["apitable", "apikpi"]
    assert manifest["warnings"][1]["error"] == "dataset 'busiest' failed: " + reason + f" by 127.0.0.1:{port}"
    (run,) = _runs(cli)
    assert run["state"] == "COMPLETED_WITH_WARNINGS"
    (message_file,) = (mixed / "outbox" / "mixed").glob("*/message.eml")
    message = email.message_from_bytes(message_file.read_bytes(), policy=email.policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    text = " ".join(body.get_content().split())
    assert "The report has 2 sections that could not be rendered: apitable, apikpi." in text


def test_with_fail_the_same_source_fails_the_run_and_writes_nothing(cli: Cli, mixed: Path) -> None:
    port = _closed_port()
    _write_spec(mixed, "fail", f"http://127.0.0.1:{port}/items")
    result = cli("render", "specs/mixed.yaml", "--deliver")
    assert result.exit_code != 0
    assert f"source 'api' (http GET http://127.0.0.1:{port}/items): connection refused" in result.stderr
    assert not (mixed / "out" / "mixed").exists() or not any((mixed / "out" / "mixed").iterdir())
    assert not (mixed / "outbox").exists()
    (run,) = _runs(cli)
    assert run["state"] == "FAILED"


def test_a_failing_dataset_read_by_two_sections_is_read_once(cli: Cli, mixed: Path, failing_api: HttpPeer) -> None:
    _write_spec(mixed, "placeholder", failing_api.url("/items"))
    result = cli("render", "specs/mixed.yaml", "--json")
    assert result.exit_code == 0, result.stderr
    assert len(failing_api.received("/items")) == 1  # items and busiest (sql over items) fail together, from one read
    payload = json.loads(result.stdout)
    assert [w["section"] for w in payload["warnings"]] == ["apitable", "apikpi"]
    assert all("HTTP 500" in w["error"] for w in payload["warnings"]), payload["warnings"]


def test_the_project_default_makes_sections_placeholders(cli: Cli, mixed: Path, failing_api: HttpPeer) -> None:
    (mixed / "reportctl.yaml").write_text("timezone: UTC\non_error: placeholder\n")
    spec = SPEC.replace("URL", failing_api.url("/items")).replace(", on_error: ON_ERROR", "")
    (mixed / "specs" / "mixed.yaml").write_text(spec)
    assert cli("render", "specs/mixed.yaml").exit_code == 0
    # a section may still insist on failing the run
    (mixed / "specs" / "mixed.yaml").write_text(spec.replace("dataset: items}", "dataset: items, on_error: fail}"))
    result = cli("render", "specs/mixed.yaml")
    assert result.exit_code != 0 and "HTTP 500" in result.stderr


def test_a_chart_without_a_browser_becomes_a_placeholder(
    cli: Cli, mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORTCTL_BROWSER", "/nonexistent/chromium")
    chart = "  - {id: trend, type: chart, dataset: good, chart: line, x: day, y: [n], on_error: ON_ERROR}\n"
    spec = SPEC.replace("  api:", "  #api:").replace("  items:", "  #items:").replace("  busiest:", "  #busiest:")
    spec = spec.replace("  - {id: apitable", "  #").replace("  - {id: apikpi", "  #") + ""
    spec = spec.replace("outputs:", chart + "outputs:")
    (mixed / "specs" / "mixed.yaml").write_text(spec.replace("datasets:\n", "").replace("ON_ERROR", "placeholder"))
    result = cli("render", "specs/mixed.yaml", "-f", "pdf,html,md,csv")
    assert result.exit_code == 0, result.stderr
    folder = _run_folder(mixed)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json", "mixed.csv", "mixed.html", "mixed.md", "mixed.pdf",
    ]  # fmt: skip
    pdf = _pdf_text(folder / "mixed.pdf")
    assert "Section 'trend' could not be rendered (chart): cannot export the chart: charts need Chromium" in pdf
    assert "Good has 2 rows." in pdf
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [w["section"] for w in manifest["warnings"]] == ["trend"]
    # with fail, the missing browser fails the run as before, and no file is left
    (mixed / "specs" / "mixed.yaml").write_text(spec.replace("datasets:\n", "").replace("ON_ERROR", "fail"))
    result = cli("render", "specs/mixed.yaml", "-f", "pdf,csv")
    assert result.exit_code != 0 and "charts need Chromium" in result.stderr
    assert [p.name for p in (mixed / "out" / "mixed").iterdir()] == [folder.name]


TEMPLATE_SPEC = """\
apiVersion: reportctl/v1
name: mixed
sources:
  good: {kind: file, path: data/good.csv}
sections:
  - {id: ratio, type: text, on_error: ON_ERROR, template: "Ratio {{ 1 / (datasets.good | length - 2) }}"}
  - {id: kpi, type: kpis, on_error: ON_ERROR, items: [{label: Odd, value: "sum(good.day)"}]}
  - {id: goodtable, type: table, dataset: good}
outputs: [csv, json, md]
"""


def test_a_template_that_raises_and_a_bad_kpi_become_placeholders(cli: Cli, mixed: Path) -> None:
    (mixed / "specs" / "mixed.yaml").write_text(TEMPLATE_SPEC.replace("ON_ERROR", "placeholder"))
    result = cli("render", "specs/mixed.yaml", "--json")
    assert result.exit_code == 0, result.stderr
    warnings = {w["section"]: w["error"] for w in json.loads(result.stdout)["warnings"]}
    assert sorted(warnings) == ["kpi", "ratio"]
    assert "ZeroDivisionError: division by zero" in warnings["ratio"]
    assert warnings["kpi"] == "cannot evaluate 'sum(good.day)': `sum` operation not supported for dtype `date`"
    folder = _run_folder(mixed)
    assert (folder / "mixed.csv").is_file()
    assert "**Section 'ratio' could not be rendered** (text)" in (folder / "mixed.md").read_text()
    # with fail, today's behaviour: no file at all, not even the CSV
    (mixed / "specs" / "mixed.yaml").write_text(TEMPLATE_SPEC.replace("ON_ERROR", "fail"))
    assert cli("render", "specs/mixed.yaml").exit_code != 0
    assert [p.name for p in (mixed / "out" / "mixed").iterdir()] == [folder.name]


def test_validate_accepts_on_error_and_suggests_for_a_typo(cli: Cli, mixed: Path) -> None:
    _write_spec(mixed, "placeholder", "http://127.0.0.1:9/items")
    assert cli("validate", "specs/mixed.yaml").exit_code == 0
    _write_spec(mixed, "placehodler", "http://127.0.0.1:9/items")
    result = cli("validate", "specs/mixed.yaml")
    assert result.exit_code != 0
    assert "sections[2].on_error" in result.stdout + result.stderr
    assert "placeholder" in result.stdout + result.stderr


SCHEDULED = """\
apiVersion: reportctl/v1
name: hourly
sources:
  metrics: {kind: sample, rows: 20}
  api: {kind: http, url: "URL", timeout: 2s, retries: 0}
sections:
  - {id: t, type: table, dataset: metrics}
  - {id: remote, type: table, dataset: api, on_error: placeholder}
outputs: [csv, json]
schedule: {cron: "0 * * * *", timezone: UTC, misfire_grace: 30m, retries: 0}
"""


def test_a_scheduled_run_with_placeholders_is_a_success_with_warnings(project: Path, store_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from reportctl.config import find_project
    from reportctl.schedule.tick import run_tick
    from reportctl.state import RunState, StateStore
    from reportctl.state.lifecycle import succeeded
    from reportctl.state.stats import run_stats

    spec = project / "specs" / "hourly.yaml"
    spec.write_text(SCHEDULED.replace("URL", f"http://127.0.0.1:{_closed_port()}/x"))
    now = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)
    with StateStore(store_url) as store:  # PostgreSQL too: its state column holds the 23-character name
        outcomes, problems = run_tick(find_project(spec), store, now, sleep=lambda _seconds: None)
        (run,) = store.list_runs(report="hourly")
        last = store.timeline(run.id)[-1]
        stats = run_stats(store, since=now - timedelta(days=1), until=now + timedelta(days=1))
    assert problems == [] and [o.state for o in outcomes] == ["COMPLETED_WITH_WARNINGS"]
    assert run.state is RunState.COMPLETED_WITH_WARNINGS and run.state.terminal and run.state.succeeded
    assert (last.state, last.detail) == (RunState.COMPLETED_WITH_WARNINGS, "1 section not rendered: remote")
    (report,) = stats.reports
    assert (report.figures.completed, report.figures.with_warnings, report.figures.failure_rate) == (1, 1, 0.0)
    assert succeeded("COMPLETED_WITH_WARNINGS")  # the last-success gauge counts it


def test_the_webhook_event_and_the_slack_text_name_the_failed_sections(
    delivery_context: Callable[..., Any],
) -> None:
    from reportctl.delivery.slack import SlackChannel, SlackOptions
    from reportctl.delivery.webhook import WebhookChannel, WebhookOptions

    context = delivery_context()
    warnings = [{"section": "trend", "error": "cannot export the chart: charts need Chromium"}]
    (context.directory / "manifest.json").write_text(json.dumps({"warnings": warnings}))
    webhook = WebhookChannel(WebhookOptions(channel="webhook", url="https://hooks.example.com/r"), context)
    slack = SlackChannel(
        SlackOptions.model_validate({"channel": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"}),
        context,
    )
    try:
        assert webhook.payload()["data"]["warnings"] == warnings
        lines = slack.message_text().splitlines()
        assert lines[1] == ":warning: The report has 1 section that could not be rendered: trend."
    finally:
        webhook.close()
        slack.close()
