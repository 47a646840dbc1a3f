"""A real Prometheus on 127.0.0.1 scraping a small exporter of the test's own, for the prometheus source's tests.

Use it from a module-scoped fixture, so one server serves a whole test file::

    @pytest.fixture(scope="module")
    def prometheus() -> Iterator[PrometheusServer]:
        with running_prometheus() as server:
            yield server

The exporter (an http.server thread) serves the fixed samples in ``EXPORTED``; Prometheus (Debian's package,
/usr/bin/prometheus) scrapes it every second into a temporary TSDB, and the block is entered once a query returns
every exported series. Both are stopped when the block ends, Prometheus by its process id. Without the binary the
test is skipped, or failed under REPORTCTL_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from service_binary import running_binary, unavailable

PROMETHEUS = Path(os.environ.get("REPORTCTL_PROMETHEUS", "/usr/bin/prometheus"))

EXPORTED: dict[tuple[str, str, str], float] = {
    ("demo_latency_seconds", "api", "eu"): 0.25,
    ("demo_latency_seconds", "api", "us"): 0.5,
    ("demo_latency_seconds", "web", "eu"): 1.75,
    ("demo_requests_total", "api", "eu"): 1200.0,
    ("demo_requests_total", "web", "eu"): 300.0,
    ("demo_saturation_ratio", "api", "eu"): float("nan"),
    ("demo_saturation_ratio", "web", "eu"): float("inf"),
}
"""What the exporter serves, constant while it runs: (metric, service, region) -> value."""
# How many series there are, once the target has been scraped three times (``up`` has a sample per scrape):
# then even a point 2 s before the ready time has data.
_EVERY_SERIES = 'count({__name__=~"demo_.+"}) and on() (count_over_time(up{job="exporter"}[1m]) >= 3)'
_TYPES = {"demo_latency_seconds": "gauge", "demo_requests_total": "counter", "demo_saturation_ratio": "gauge"}


def exposition() -> str:
    """``EXPORTED`` in Prometheus' text format, one HELP/TYPE header per metric."""
    lines = []
    for metric, kind in _TYPES.items():
        lines += [f"# HELP {metric} A fixed value for reportctl's tests.", f"# TYPE {metric} {kind}"]
        for (name, service, region), value in EXPORTED.items():
            if name == metric:
                text = "NaN" if math.isnan(value) else "+Inf" if value == float("inf") else repr(value)
                lines.append(f'{metric}{{service="{service}",region="{region}"}} {text}')
    return "\n".join(lines) + "\n"


class _Exporter(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        data = exposition().encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class PrometheusServer:
    url: str
    pid: int
    ready_at: datetime
    """A time at which every exported series had been scraped three times, 1 s apart (UTC, whole milliseconds)."""

    def query(self, promql: str) -> Any:
        """The API's ``data`` for an instant query, asked with urllib (independent of reportctl)."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(address, timeout=5) as response:
            return json.loads(response.read())["data"]


@contextmanager
def running_prometheus() -> Iterator[PrometheusServer]:
    """The exporter and a Prometheus scraping it, both on free loopback ports; stopped when the block ends."""
    if not PROMETHEUS.is_file():
        unavailable(f"Prometheus is not installed at {PROMETHEUS} (apt-get install prometheus, or make prometheus)")
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    exporter.daemon_threads = False  # joined by server_close, so none outlives the block
    thread = threading.Thread(target=exporter.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    folder = Path(tempfile.mkdtemp(prefix="reportctl-prometheus-"))
    try:
        config = folder / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: exporter\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{exporter.server_address[1]}']}}]\n"
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        scraped: list[datetime] = []
        argv = [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with running_binary(argv, "prometheus", lambda: _scraped(url, scraped), cwd=folder) as process:
            yield PrometheusServer(url, process.pid, scraped[0])
    finally:
        exporter.shutdown()
        thread.join()
        exporter.server_close()
        shutil.rmtree(folder, ignore_errors=True)


def _scraped(url: str, at: list[datetime]) -> bool:
    """Whether every exported series has three samples; the first time it had is appended to ``at``."""
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': _EVERY_SERIES})}"
    try:
        with urllib.request.urlopen(address, timeout=1) as response:
            result = json.loads(response.read())["data"]["result"]
    except (urllib.error.URLError, OSError, KeyError, ValueError):
        return False
    if not result or int(float(result[0]["value"][1])) != len(EXPORTED):
        return False
    now = datetime.now(UTC)
    at.append(now.replace(microsecond=now.microsecond // 1000 * 1000))
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (also a port nothing listens on, for refused connections)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
