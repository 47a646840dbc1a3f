"""Redirects in the http source, against two real servers on 127.0.0.1 (two ports: two origins)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from reportctl.data.sources.base import SourceContext
from reportctl.data.sources.http import HttpSource
from reportctl.errors import SourceError

KEY = "key-5d2e8b-very-secret"
ROWS = [{"id": 1}]


class Handler(BaseHTTPRequestHandler):
    """Answers by path; '/to/<url>' redirects there with status ?status=, default 302. Records every request."""

    seen: ClassVar[list[dict[str, Any]]] = []
    other: ClassVar[str] = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.respond()

    def do_POST(self) -> None:
        self.respond()

    def respond(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else None
        port = self.server.server_address[1]
        self.seen.append(
            {"port": port, "path": self.path, "method": self.command, "headers": dict(self.headers), "body": body}
        )
        routes = {
            "/same": ("302", "/rows"),
            "/away": ("302", f"{self.other}/rows"),
            "/see-other": ("303", f"{self.other}/echo"),
            "/keep": ("307", f"{self.other}/echo"),
            "/loop-a": ("302", "/loop-b"),
            "/loop-b": ("302", "/loop-a"),
            "/to-closed": ("302", "http://127.0.0.1:9/rows"),
            "/away-missing": ("302", f"{self.other}/missing"),
        }
        path = self.path.split("?", 1)[0]
        if path in routes:
            status, location = routes[path]
            self.send_response(int(status))
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/rows":
            self.send_json(200, ROWS)
        elif path == "/echo":
            self.send_json(200, [{"method": self.command, "body": body or ""}])
        else:
            self.send_json(404, {"error": "not here"})

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class JoiningServer(ThreadingHTTPServer):
    daemon_threads = False


@pytest.fixture
def origins() -> Iterator[tuple[str, str]]:
    """Two servers on free ports, the first redirecting to the second: ('http://127.0.0.1:A', '...:B')."""
    Handler.seen = []
    servers = [JoiningServer(("127.0.0.1", 0), Handler) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}) for s in servers]
    for thread in threads:
        thread.start()
    first, second = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    Handler.other = second
    try:
        yield first, second
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            thread.join()
            server.server_close()


def source(**options: Any) -> HttpSource:
    context = SourceContext(
        project_root=Path("."), run_time=datetime(2024, 1, 3, tzinfo=UTC), timezone="UTC", parameters={}
    )
    return HttpSource("api", HttpSource.Options.model_validate({"kind": "http", "retries": 0, **options}), context)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_a_redirect_within_the_origin_is_followed_with_its_headers(origins: tuple[str, str]) -> None:
    first, _ = origins
    frame = source(url=f"{first}/same", headers={"X-Api-Key": KEY}).fetch().collect()

    assert frame.rows() == [(1,)]
    assert [(r["path"], r["headers"].get("X-Api-Key")) for r in Handler.seen] == [("/same", KEY), ("/rows", KEY)]


def test_a_redirect_to_another_origin_is_refused_by_default(origins: tuple[str, str]) -> None:
    first, second = origins

    with pytest.raises(SourceError) as caught:
        source(url=f"{first}/away", headers={"X-Api-Key": KEY}).fetch()

    message = str(caught.value)
    assert f"redirects to {second}/rows" in message
    assert f"({first} -> {second})" in message
    assert "set follow_redirects: any to follow it" in message
    assert "\n" not in message
    assert [r["port"] for r in Handler.seen] == [port_of(first)]


def test_none_follows_no_redirect(origins: tuple[str, str]) -> None:
    first, _ = origins

    with pytest.raises(SourceError, match="set follow_redirects: same-origin or any"):
        source(url=f"{first}/same", follow_redirects="none").fetch()


def test_any_follows_without_secret_bearing_headers(origins: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = origins
    monkeypatch.setenv("REPORTCTL_SECRET_API_KEY", KEY)
    headers = {
        "X-Api-Key": "${secret:API_KEY}",
        "Authorization": "Bearer plain",
        "Cookie": "session=1",
        "Proxy-Authorization": "Basic eA==",
        "X-Trace": "t-1",
    }

    frame = source(url=f"{first}/away", headers=headers, follow_redirects="any").fetch().collect()

    assert frame.rows() == [(1,)]
    [at_first, at_second] = Handler.seen
    assert at_first["port"] == port_of(first) and at_first["headers"]["X-Api-Key"] == KEY
    assert at_second["port"] == port_of(second)
    received = {name.lower() for name in at_second["headers"]}
    assert not received & {"x-api-key", "authorization", "cookie", "proxy-authorization"}
    assert at_second["headers"]["X-Trace"] == "t-1"
    assert KEY not in json.dumps(at_second)


def test_303_turns_a_post_into_a_get_without_its_body(origins: tuple[str, str]) -> None:
    first, _ = origins

    frame = source(url=f"{first}/see-other", method="POST", json={"q": 1}, follow_redirects="any").fetch().collect()

    assert frame.rows() == [("GET", "")]


def test_307_keeps_the_method_and_the_body(origins: tuple[str, str]) -> None:
    first, _ = origins

    frame = source(url=f"{first}/keep", method="POST", json={"q": 1}, follow_redirects="any").fetch().collect()

    assert frame.rows() == [("POST", '{"q": 1}')]


def test_a_redirect_loop_is_an_error(origins: tuple[str, str]) -> None:
    first, _ = origins

    with pytest.raises(SourceError, match=r"redirect loop: .*/loop-b redirects to .*/loop-a, which was already"):
        source(url=f"{first}/loop-a").fetch()
    assert len(Handler.seen) == 2


def test_errors_name_the_host_that_failed(origins: tuple[str, str]) -> None:
    first, second = origins

    with pytest.raises(SourceError) as status:
        source(url=f"{first}/away-missing?token=abc", follow_redirects="any").fetch()
    with pytest.raises(SourceError) as refused:
        source(url=f"{first}/to-closed", follow_redirects="any").fetch()

    assert f"HTTP 404 Not Found from {second}/missing" in str(status.value)
    assert "token=abc" not in str(status.value)
    assert "connection refused by 127.0.0.1:9" in str(refused.value)


def test_follow_redirects_is_part_of_the_cache_identity() -> None:
    same = source(url="http://127.0.0.1:1/rows").cache_identity()
    any_origin = source(url="http://127.0.0.1:1/rows", follow_redirects="any").cache_identity()

    assert same != any_origin and any_origin["follow_redirects"] == "any"
