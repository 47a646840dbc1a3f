"""A local HTTP source that holds its answer until the test releases it, so a run stays GENERATING meanwhile."""

from __future__ import annotations

import http.server
import json
import threading

SLOW_SPEC = """\
apiVersion: reportctl/v1
name: hourly
sources:
  metrics: {kind: http, url: "URL", timeout: 120s, retries: 0}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "0 * * * *", timezone: UTC, misfire_grace: 2h, overlap: skip, retries: 0}
"""
"""An hourly report whose one source is a ``SlowSource`` (put its ``url`` in place of URL)."""


class SlowSource:
    """A local HTTP source that answers only when the test says so, so a run stays GENERATING meanwhile."""

    def __init__(self) -> None:
        self.asked, self.release = threading.Event(), threading.Event()
        source = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                source.asked.set()
                source.release.wait(120)
                body = json.dumps([{"service": "api", "latency_ms": 120}]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
