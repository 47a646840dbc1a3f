"""`reportctl schedule daemon` as a real process: start, SIGHUP, SIGTERM; its log lines and its metrics."""

from __future__ import annotations

import io
import json
import logging
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from reportctl.schedule.logs import configure_logging, log_event
from reportctl.schedule.metrics import DaemonMetrics

SPEC = """\
apiVersion: reportctl/v1
name: weekly
sources:
  metrics: {kind: sample, rows: 20}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "0 9 * * MON", timezone: Europe/Berlin}
"""


def _lines(stream: IO[str]) -> queue.Queue[str | None]:
    """The stream's lines as they come, read by a thread, so a silent daemon can never hang the test."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _wait_for(
    lines: queue.Queue[str | None], event: str, seen: list[dict[str, Any]], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            break
        record = json.loads(line)
        seen.append(record)
        if record["event"] == event:
            return record
    raise AssertionError(f"no {event} line within {timeout:g}s; saw {seen}")


def test_the_daemon_starts_reloads_on_sighup_and_stops_cleanly_on_sigterm(project: Path) -> None:
    (project / "specs" / "weekly.yaml").write_text(SPEC)
    command = [sys.executable, "-m", "reportctl", "schedule", "daemon", "--log-format", "json", "--grace", "5s"]
    seen: list[dict[str, Any]] = []
    with subprocess.Popen(command, cwd=project, stderr=subprocess.PIPE, text=True) as daemon:
        _drive(daemon, seen)
    assert all({"time", "level", "event", "report", "run_id"} <= set(record) for record in seen)


def _drive(daemon: subprocess.Popen[str], seen: list[dict[str, Any]]) -> None:
    try:
        assert daemon.stderr is not None
        lines = _lines(daemon.stderr)
        started = _wait_for(lines, "daemon.started", seen)
        assert (started["jobs"], started["message"]) == (1, "scheduled 1 jobs")
        daemon.send_signal(signal.SIGHUP)
        reloaded = _wait_for(lines, "daemon.reloaded", seen)
        assert reloaded["message"] == "specs re-read (SIGHUP)"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
        stopped = _wait_for(lines, "daemon.stopped", seen)
        assert stopped["cut_off"] == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def test_an_unreachable_store_stops_the_start_with_one_line(project: Path) -> None:
    command = [sys.executable, "-m", "reportctl", "schedule", "daemon"]
    env = {"REPORTCTL_STATE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, check=False, cwd=project, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: state store") and "cannot connect" in lines[0]


def test_json_and_text_log_lines() -> None:
    stream = io.StringIO()
    logger = configure_logging("json", stream)
    log_event(logger, logging.INFO, "run.completed", "done", report="weekly", run_id="r1", seconds=2)
    line = json.loads(stream.getvalue())
    assert {k: line[k] for k in ("level", "event", "report", "run_id", "message", "seconds")} == {
        "level": "info",
        "event": "run.completed",
        "report": "weekly",
        "run_id": "r1",
        "message": "done",
        "seconds": 2,
    }
    text = io.StringIO()
    log_event(configure_logging("text", text), logging.WARNING, "spec.kept", "last valid", report="weekly")
    assert text.getvalue().split(" ", 1)[1] == "WARNING spec.kept weekly last valid\n"


def test_metrics_are_served_on_loopback() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics = DaemonMetrics()
    metrics.serve(port)
    try:
        metrics.run_finished("weekly", "COMPLETED", duration=1.5, at=1_800_000_000)
        metrics.queued("critical", 1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        metrics.close()
    assert 'reportctl_runs_total{report="weekly",state="COMPLETED"} 1.0' in body
    assert 'reportctl_run_duration_seconds_count{report="weekly"} 1.0' in body
    assert 'reportctl_queue_depth{priority="critical"} 1.0' in body
    assert 'reportctl_last_success_timestamp_seconds{report="weekly"} 1.8e+09' in body


def test_a_burst_of_signals_never_wedges_the_daemon(project: Path) -> None:
    """Signal handlers only set flags: a handler that took a lock could deadlock with the main loop."""
    (project / "specs" / "weekly.yaml").write_text(SPEC)
    command = [sys.executable, "-m", "reportctl", "schedule", "daemon", "--log-format", "json", "--grace", "5s"]
    seen: list[dict[str, Any]] = []
    with subprocess.Popen(command, cwd=project, stderr=subprocess.PIPE, text=True) as daemon:
        try:
            assert daemon.stderr is not None
            lines = _lines(daemon.stderr)
            _wait_for(lines, "daemon.started", seen)
            for _ in range(200):
                daemon.send_signal(signal.SIGHUP)
                time.sleep(0.001)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=15) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
