"""The http source against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from conftest import CliResult
from reportctl.data.sources.base import SourceContext
from reportctl.data.sources.http import HttpSource
from reportctl.errors import SourceError

TOKEN = "tok-7f3a9c-very-secret"
ITEMS = [
    {"id": 1, "service": {"name": "api", "owner": {"team": "core"}}, "latency": 12.5},
    {"id": 2, "service": {"name": "web", "owner": {"team": "edge"}}, "latency": 30.0},
]


class Handler(BaseHTTPRequestHandler):
    """Serves canned JSON by path and remembers what each request carried."""

    requests: ClassVar[list[dict[str, Any]]] = []
    release = threading.Event()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.respond()

    def do_POST(self) -> None:
        self.respond()

    def respond(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        seen = {
            "path": parts.path,
            "query": parse_qs(parts.query),
            "headers": dict(self.headers),
            "body": body,
        }
        self.requests.append(seen)
        calls = sum(1 for r in self.requests if r["path"] == parts.path)
        if parts.path == "/items":
            self.send_json(200, ITEMS)
        elif parts.path == "/nested":
            self.send_json(200, {"data": {"items": ITEMS, "total": 2}, "page": 1})
        elif parts.path == "/flaky":
            self.send_json(500, {"error": "boom"}) if calls == 1 else self.send_json(200, ITEMS)
        elif parts.path == "/down":
            self.send_text(503, "text/plain", "maintenance", {"Retry-After": "0"})
        elif parts.path == "/echo":
            self.send_json(200, [{"method": self.command, "query": parts.query, "body": json.dumps(body)}])
        elif parts.path == "/secret":
            good = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            self.send_json(200, ITEMS) if good else self.send_json(401, {"error": "no"})
        elif parts.path == "/slow":
            # Hold the request until the test is over, then drop it: the client has long given up.
            self.release.wait(5)
        elif parts.path == "/html":
            self.send_text(200, "text/html", "<html>hello</html>")
        elif parts.path == "/scalars":
            self.send_json(200, [1, 2])
        else:
            self.send_json(404, {"error": "not here"})

    def send_json(self, status: int, payload: Any) -> None:
        self.send_text(status, "application/json", json.dumps(payload))

    def send_text(self, status: int, content_type: str, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class JoiningServer(ThreadingHTTPServer):
    # Non-daemon handler threads are joined by server_close, so none outlives the test.
    daemon_threads = False


@pytest.fixture
def server() -> Iterator[str]:
    Handler.requests = []
    Handler.release = threading.Event()
    httpd = JoiningServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        Handler.release.set()
        httpd.shutdown()
        thread.join()
        httpd.server_close()


def make_source(parameters: dict[str, Any] | None = None, **options: Any) -> HttpSource:
    context = SourceContext(
        project_root=Path("."),
        run_time=datetime(2024, 1, 3, tzinfo=UTC),
        timezone="UTC",
        parameters=parameters or {},
    )
    return HttpSource("api", HttpSource.Options.model_validate({"kind": "http", **options}), context)


Cli = Callable[..., CliResult]


def calls_to(path: str) -> int:
    return sum(1 for r in Handler.requests if r["path"] == path)


def test_list_of_records_with_nested_objects_flattened(server: str) -> None:
    frame = make_source(url=f"{server}/items").fetch().collect()

    assert frame.columns == ["id", "latency", "service.name", "service.owner.team"]
    assert frame.rows() == [(1, 12.5, "api", "core"), (2, 30.0, "web", "edge")]


def test_records_path_into_the_response(server: str) -> None:
    frame = make_source(url=f"{server}/nested", records="data.items").fetch().collect()

    assert frame["id"].to_list() == [1, 2]


def test_missing_records_path_lists_the_keys_there(server: str) -> None:
    with pytest.raises(SourceError) as raised:
        make_source(url=f"{server}/nested", records="data.rows").fetch()
    assert str(raised.value).endswith(": response has no key 'data.rows'; keys at 'data': items, total")
    with pytest.raises(SourceError, match="the response is an object, not a list of records"):
        make_source(url=f"{server}/nested").fetch()


def test_parameters_and_literals_in_query_and_body(server: str) -> None:
    parameters = {"since": date(2024, 1, 1), "region": "eu' OR 1=1"}
    source = make_source(
        parameters,
        url=f"{server}/echo",
        method="POST",
        params={"from": ":since", "limit": 100, "raw": "plain"},
        json={"filter": {"region": ":region"}, "fixed": ["a", 1]},
    )

    row = source.fetch().collect().row(0, named=True)

    assert row["method"] == "POST"
    assert parse_qs(row["query"]) == {"from": ["2024-01-01"], "limit": ["100"], "raw": ["plain"]}
    assert json.loads(row["body"]) == {"filter": {"region": "eu' OR 1=1"}, "fixed": ["a", 1]}


def test_missing_parameter(server: str) -> None:
    with pytest.raises(SourceError, match=r"params\.from uses :since but the spec has no parameter since$"):
        make_source(url=f"{server}/echo", params={"from": ":since"}).fetch()


def test_server_error_is_retried_then_succeeds(server: str) -> None:
    frame = make_source(url=f"{server}/flaky").fetch().collect()

    assert frame.height == 2
    assert calls_to("/flaky") == 2


def test_retries_run_out_on_a_server_that_stays_down(server: str) -> None:
    with pytest.raises(SourceError, match=rf"HTTP 503 Service Unavailable from {server}/down$"):
        make_source(url=f"{server}/down", retries=1).fetch()
    assert calls_to("/down") == 2


def test_not_found_is_not_retried(server: str) -> None:
    with pytest.raises(SourceError) as raised:
        make_source(url=f"{server}/nothing?key=abc").fetch()

    assert str(raised.value) == f"source 'api' (http GET {server}/nothing): HTTP 404 Not Found from {server}/nothing"
    assert calls_to("/nothing") == 1


def test_slow_server_times_out(server: str) -> None:
    with pytest.raises(SourceError, match=r"timed out after 0\.5s$"):
        make_source(url=f"{server}/slow", timeout="0.5s").fetch()
    assert calls_to("/slow") == 1


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(SourceError, match=rf"connection refused by 127\.0\.0\.1:{port}$"):
        make_source(url=f"http://127.0.0.1:{port}/items", retries=0).fetch()


def test_invalid_json(server: str) -> None:
    with pytest.raises(SourceError, match=r"the response is not valid JSON \(text/html\)"):
        make_source(url=f"{server}/html").fetch()


def test_records_must_be_objects(server: str) -> None:
    with pytest.raises(SourceError, match="record 0 is a number, not an object"):
        make_source(url=f"{server}/scalars").fetch()


def test_secret_header_reaches_the_server_but_no_message(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORTCTL_SECRET_API_TOKEN", TOKEN)
    good = make_source(url=f"{server}/secret", headers={"Authorization": "Bearer ${secret:API_TOKEN}"})

    assert good.fetch().collect().height == 2
    assert Handler.requests[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in good.describe()

    bad = make_source(url=f"{server}/missing?token=${{secret:API_TOKEN}}", params={"key": "${secret:API_TOKEN}"})
    with pytest.raises(SourceError) as raised:
        bad.fetch()
    assert Handler.requests[-1]["query"] == {"token": [TOKEN], "key": [TOKEN]}
    assert TOKEN not in str(raised.value)
    assert bad.describe() == f"http GET {server}/missing"


def test_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="expected an http:// or https:// URL"):
        HttpSource.Options.model_validate({"kind": "http", "url": "ftp://example.com/x"})
    with pytest.raises(ValidationError, match="less than or equal to 10"):
        HttpSource.Options.model_validate({"kind": "http", "url": "https://example.com", "retries": 50})


# --- validate: an API's columns are noted as unchecked, and --connect asks the API once ---------------------


def _spec_over_api(project: Path, url: str, column: str) -> Path:
    spec = project / "specs" / "api.yaml"
    spec.write_text(
        "apiVersion: reportctl/v1\n"
        "name: api\n"
        "sources:\n"
        f"  items: {{kind: http, url: '{url}'}}\n"
        "sections:\n"
        "  - id: items\n"
        "    type: table\n"
        "    dataset: items\n"
        "    columns:\n"
        f"      {column}: {{format: 'number:1'}}\n"
    )
    return spec


def test_validate_notes_that_an_api_columns_are_unchecked(cli: Cli, project: Path, server: str) -> None:
    spec = _spec_over_api(project, f"{server}/items", "latncy")

    result = cli("validate", str(spec))

    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines() == [
        "specs/api.yaml:4:28: sources.items.url: note: the columns of source 'items' are not checked: an API's records"
        " are known only once it answers; 'reportctl validate --connect' asks the API once",
        "1 file valid (1 note)",
    ]
    assert calls_to("/items") == 0  # validate alone never calls the API


def test_validate_connect_asks_the_api_and_finds_a_column_typo(cli: Cli, project: Path, server: str) -> None:
    spec = _spec_over_api(project, f"{server}/items", "latncy")

    result = cli("validate", str(spec), "--connect")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "specs/api.yaml:10:15: sections[0].columns.latncy: unknown column 'latncy' (did you mean 'latency'?); "
        "'items' has: id, latency, service.name, service.owner.team"
    )
    assert calls_to("/items") == 1
    _spec_over_api(project, f"{server}/items", "latency")
    assert cli("validate", str(spec), "--connect").stdout == "1 file valid\n"


def test_validate_connect_says_when_the_api_fails(cli: Cli, project: Path, server: str) -> None:
    spec = _spec_over_api(project, f"{server}/nothing", "latency")

    result = cli("validate", str(spec), "--connect")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        f"specs/api.yaml:4:10: sources.items: source 'items' (http GET {server}/nothing): HTTP 404 Not Found from "
        f"{server}/nothing"
    )
