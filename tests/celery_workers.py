"""Celery workers for the tests of ``executor: celery``: a project that queues on Redis, real ``reportctl worker``
processes and Redis servers of a test's own, each started and stopped by its process id."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import require_service

REDIS = "redis://127.0.0.1:6379/0"
SPEC = """\
apiVersion: reportctl/v1
name: hourly
sources:
  metrics: {kind: sample, rows: 200}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "0 * * * *", timezone: UTC, misfire_grace: 30m, priority: PRIORITY}
"""


def make_celery_project(project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``project`` with ``executor: celery`` on the machine's Redis, queues of its own, runs in ``store_url``."""
    require_service("Redis", "127.0.0.1", 6379)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    (project / "reportctl.yaml").write_text(
        "timezone: UTC\n"
        f"executor: {{kind: celery, broker: '{REDIS}', "
        f"queues: {{critical: {prefix}.critical, standard: {prefix}.standard}}}}\n"
    )
    monkeypatch.setenv("REPORTCTL_STATE_URL", store_url)
    (project / "specs" / "hourly.yaml").write_text(SPEC.replace("PRIORITY", "standard"))
    return project


def own_broker(celery_project: Path) -> int:
    """A free loopback port for a Redis of the test's own, made the project's broker; the port."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port: int = free.getsockname()[1]
    config = celery_project / "reportctl.yaml"
    config.write_text(config.read_text().replace(REDIS, f"redis://127.0.0.1:{port}/0"))
    return port


@contextmanager
def running_worker(project: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """``reportctl worker -c 1`` in ``project``, stopped by its process id (SIGTERM, then SIGKILL)."""
    command = [sys.executable, "-m", "reportctl", "worker", "--concurrency", "1", "--name", name]
    with subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def own_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A Redis server of the test's own on ``port`` (nothing kept on disk), stopped by its process id."""
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server:
        try:
            deadline = time.monotonic() + 10
            while not _listening(port):
                assert time.monotonic() < deadline and server.poll() is None, "redis-server did not start"
                time.sleep(0.05)
            yield server
        finally:
            server.kill()
            server.wait()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
