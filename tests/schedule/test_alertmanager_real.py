"""The daemon's alert receiver against a real Alertmanager (Debian's prometheus-alertmanager): an alert pushed to
Alertmanager reaches ``POST /alerts/SPEC`` as Alertmanager's own webhook notifier sends it, bearer token included,
and its re-sends (every ``repeat_interval``) render one report.

Alertmanager runs on a free loopback port with clustering off and a temporary storage folder, and is stopped by
its process id.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from daemon_process import DaemonProcess
from data.sources.prometheus_server import free_port
from reportctl.state import audit
from reportctl.state.store import StateStore
from service_binary import running_binary, unavailable

ALERTMANAGER = Path(os.environ.get("REPORTCTL_ALERTMANAGER", "/usr/bin/prometheus-alertmanager"))
TOKEN = "alert-token-0123456789"
SPEC = """\
apiVersion: reportctl/v1
name: incident
parameters:
  service: {type: choice, default: all, choices: [all, api, web]}
  incident: {type: period, default: last_24_hours}
sources:
  metrics: {kind: sample, rows: 30, period: incident}
alerts: {period: incident, before: 10m}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
delivery:
  - {channel: file, path: outbox, to: [oncall@example.com]}
"""


def _config(daemon_port: int) -> str:
    """Group by alert name, send at once, and re-send the unchanged group every 2 s (Alertmanager's minimum of
    repeat_interval is group_interval)."""
    return f"""\
route:
  receiver: reportctl
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: reportctl
    webhook_configs:
      - url: http://127.0.0.1:{daemon_port}/alerts/incident
        send_resolved: false
        http_config: {{authorization: {{credentials: {TOKEN}}}}}
"""


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, int]]:
    monkeypatch.setenv("REPORTCTL_SECRET_AM_TOKEN", TOKEN)
    (tmp_path / "specs").mkdir()
    (tmp_path / "reportctl.yaml").write_text("timezone: UTC\napi: {tokens: [am_token]}\n")
    (tmp_path / "specs" / "incident.yaml").write_text(SPEC)
    port = free_port()
    process = DaemonProcess(tmp_path, "--listen", f"127.0.0.1:{port}")
    try:
        process.wait_for("api.listening")
        yield tmp_path, port
    finally:
        process.stop()


@pytest.fixture
def alertmanager(daemon: tuple[Path, int]) -> Iterator[str]:
    if not ALERTMANAGER.is_file():
        unavailable(f"Alertmanager is not installed at {ALERTMANAGER} (apt-get install prometheus-alertmanager)")
    folder = Path(tempfile.mkdtemp(prefix="reportctl-alertmanager-"))
    (folder / "alertmanager.yml").write_text(_config(daemon[1]))
    url = f"http://127.0.0.1:{free_port()}"
    argv = [
        ALERTMANAGER,
        f"--config.file={folder / 'alertmanager.yml'}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
        "--cluster.listen-address=",  # no gossip port: one instance
    ]
    try:
        with running_binary(argv, "alertmanager", lambda: _ready(url)):
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _webhook_notifications(url: str) -> int:
    """How many notifications Alertmanager says its webhook integration sent (its own counter)."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('alertmanager_notifications_total{integration="webhook"'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_alertmanagers_own_notifications_and_their_resends_render_one_report(
    daemon: tuple[Path, int], alertmanager: str
) -> None:
    project, _ = daemon
    starts_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    alert = {
        "labels": {"alertname": "HighLatency", "service": "api", "severity": "page"},
        "annotations": {"summary": "p95 above 2 s"},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
        "endsAt": (starts_at + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
    }
    pushed = requests.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=5)
    assert pushed.status_code == 200, pushed.text

    deadline = time.monotonic() + 60
    while _webhook_notifications(alertmanager) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    sent = _webhook_notifications(alertmanager)
    assert sent >= 3, f"Alertmanager sent {sent} notifications in 60 s"
    failed = requests.get(f"{alertmanager}/metrics", timeout=5).text
    assert 'alertmanager_notifications_failed_total{integration="webhook"} 0' in failed  # none refused by the daemon

    with StateStore(f"sqlite:///{project / '.reportctl' / 'state.db'}") as store:
        runs = store.list_runs(report="incident")
        triggers = audit.events(store, report="incident", action="trigger")
    assert len(runs) == 1, [run.id for run in runs]  # three notifications, one report
    (run,) = runs
    assert (run.trigger, run.parameters["service"]) == ("alert", "api")
    assert datetime.fromisoformat(run.parameters["incident"]["start"]) == starts_at - timedelta(minutes=10)
    assert [entry.actor for entry in triggers] == ["api:am_token"]
    deadline = time.monotonic() + 60
    while not list((project / "outbox" / "incident").glob("*/message.eml")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(list((project / "outbox" / "incident").glob("*/message.eml"))) == 1
    manifest = json.loads((project / "out" / "incident" / run.id / "manifest.json").read_text())
    assert manifest["parameters"]["service"] == "api"
