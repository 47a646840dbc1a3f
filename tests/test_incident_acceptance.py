"""Issue 14's acceptance, end to end with real parts: a spec reading a real Prometheus renders from it; an
Alertmanager notification posted to the daemon's API renders one incident report over the alert's window, however
often it is sent; and with that Prometheus killed, its section is a placeholder while the rest is delivered.

Prometheus (Debian's package) scrapes the test exporter of ``data.sources.prometheus_server``; the daemon is a real
``reportctl schedule daemon --listen`` process; deliveries go to the file outbox.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from daemon_process import DaemonProcess
from data.sources.prometheus_server import EXPORTED, PrometheusServer, running_prometheus

TOKEN = "incident-token-0123456789"
SPEC = """\
apiVersion: reportctl/v1
name: incident
title: "Incident: {{ service }}"
parameters:
  service: {type: choice, default: all, choices: [all, api, web]}
  incident: {type: period, default: last_24_hours}
sources:
  latency:
    kind: prometheus
    url: PROMETHEUS_URL
    query: 'demo_latency_seconds{service={{ service }}}'
    step: 1s
    retries: 0
    timeout: 3s
  hosts: {kind: sample, rows: 40, seed: 3, period: incident}
alerts: {period: incident, before: 1m, after: 1m}
sections:
  - {id: scope, type: text, template: "Service {{ service }}: {{ incident.start }} to {{ incident.end }}."}
  - {id: latency, type: table, title: Latency from Prometheus, dataset: latency, on_error: placeholder}
  - {id: hosts, type: table, title: Hosts, dataset: hosts}
outputs: [json, csv, md]
delivery:
  - {channel: file, path: outbox, to: [oncall@example.com]}
"""


@pytest.fixture
def prometheus() -> Iterator[PrometheusServer]:
    with running_prometheus() as server:
        yield server


@pytest.fixture
def daemon(tmp_path: Path, prometheus: PrometheusServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("REPORTCTL_SECRET_ONCALL_TOKEN", TOKEN)
    (tmp_path / "specs").mkdir()
    (tmp_path / "reportctl.yaml").write_text("timezone: UTC\napi: {tokens: [oncall_token]}\n")
    (tmp_path / "specs" / "incident.yaml").write_text(SPEC.replace("PROMETHEUS_URL", prometheus.url))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = DaemonProcess(tmp_path, "--listen", f"127.0.0.1:{port}")
    try:
        process.wait_for("api.listening")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def _notification(starts_at: datetime, fingerprint: str) -> dict[str, Any]:
    """A firing one-alert group as Alertmanager's webhook notifier (version 4) sends it."""
    labels = {"alertname": "HighLatency", "service": "api", "severity": "page"}
    alert = {
        "status": "firing", "labels": labels, "annotations": {"summary": "p95 above 250 ms"},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"), "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=demo_latency_seconds", "fingerprint": fingerprint,
    }  # fmt: skip
    return {
        "version": "4", "groupKey": '{}:{alertname="HighLatency"}', "truncatedAlerts": 0, "status": "firing",
        "receiver": "reportctl", "groupLabels": {"alertname": "HighLatency"}, "commonLabels": labels,
        "commonAnnotations": alert["annotations"], "externalURL": "http://alertmanager:9093", "alerts": [alert],
    }  # fmt: skip


def _post(api: str, body: Any) -> requests.Response:
    return requests.post(f"{api}/alerts/incident", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


def _finished(api: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run: dict[str, Any] = requests.get(
            f"{api}/runs/{run_id}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ).json()
        if run["state"] in ("COMPLETED", "COMPLETED_WITH_WARNINGS", "FAILED", "SKIPPED"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end within 120 s")


def _table(document: dict[str, Any], section: str) -> dict[str, Any]:
    (found,) = [s for s in document["sections"] if s["id"] == section]
    return found


def _message_text(project: Path, run_id: str) -> str:
    (message_file,) = (project / "outbox" / "incident").glob(f"{run_id}*/message.eml")
    message = email.message_from_bytes(message_file.read_bytes(), policy=email.policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    return " ".join(body.get_content().split())


def test_an_alert_renders_one_incident_report_from_prometheus_and_a_dead_prometheus_is_a_placeholder(
    daemon: str, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    starts_at = prometheus.ready_at - timedelta(seconds=2)
    first = _post(daemon, _notification(starts_at, "a1"))
    again = _post(daemon, _notification(starts_at, "a1"))  # Alertmanager's group_interval re-send
    assert (first.status_code, again.status_code) == (202, 200), (first.text, again.text)
    run_id = first.json()["run_id"]
    assert again.json()["run_id"] == run_id
    run = _finished(daemon, run_id)
    assert (run["state"], run["trigger"], run["parameters"]["service"]) == ("COMPLETED", "alert", "api")

    # the period is the alert's window: a minute before it fired, to when the notification came
    period = run["parameters"]["incident"]
    start, end = datetime.fromisoformat(period["start"]), datetime.fromisoformat(period["end"])
    assert start == starts_at.replace(microsecond=0) - timedelta(minutes=1)
    assert starts_at < end <= datetime.now(UTC) + timedelta(seconds=1)  # the window's end is rounded up to a second
    folder = tmp_path / "out" / "incident" / run_id
    document = json.loads((folder / "incident.json").read_text())
    latency = _table(document, "latency")
    rows = list(latency["rows"])
    assert rows and {(row["metric"], row["service"]) for row in rows} == {("demo_latency_seconds", "api")}
    exported = {r: v for (metric, service, r), v in EXPORTED.items() if (metric, service) == (rows[0]["metric"], "api")}
    assert {row["region"]: row["value"] for row in rows} == exported
    stamps = [datetime.fromisoformat(row["timestamp"]) for row in rows]
    assert start <= min(stamps) and max(stamps) <= end
    assert "could not be rendered" not in _message_text(tmp_path, run_id)

    os.kill(prometheus.pid, signal.SIGKILL)
    later = _post(daemon, _notification(starts_at + timedelta(minutes=5), "a2"))  # the group fires again
    assert later.status_code == 202, later.text
    second = _finished(daemon, later.json()["run_id"])
    assert second["state"] == "COMPLETED_WITH_WARNINGS"
    assert [w["section"] for w in second["warnings"]] == ["latency"]
    folder = tmp_path / "out" / "incident" / second["id"]
    document = json.loads((folder / "incident.json").read_text())
    assert _table(document, "latency")["failed"] is True
    assert f"source 'latency' (prometheus range {prometheus.url}" in _table(document, "latency")["error"]
    assert _table(document, "hosts")["row_count"] > 0  # the rest of the report is there
    assert "Section 'latency' could not be rendered" in (folder / "incident.md").read_text()
    text = _message_text(tmp_path, second["id"])
    assert "The report has 1 section that could not be rendered: latency." in text
