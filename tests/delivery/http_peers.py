"""Local HTTP peers for the delivery tests: a scriptable webhook receiver and a fake Slack Web API, on 127.0.0.1.

Each peer records every request it receives, so tests assert on what arrived, not on what the client meant to send.
Replies are scripted per path: ``peer.script("/hook", Reply(500), Reply(200))`` answers 500 then 200 (the last
reply repeats); ``Reply(hang=5)`` holds the request without answering until the peer stops or 5 s pass.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    """One request as the peer saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass(frozen=True)
class Reply:
    """What the peer answers: a status, headers and a body (a dict or list is sent as JSON)."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    """Hold the request this many seconds (or until the peer stops), then close it without an answer."""

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict | list):
            return json.dumps(self.body).encode(), "application/json; charset=utf-8"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return bytes(self.body), "text/plain"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = Received(self.command, urlsplit(self.path).path, dict(self.headers), self.rfile.read(length))
        peer = self.server.peer
        reply = peer.record(request)
        if reply.hang:
            peer.stopping.wait(reply.hang)
            self.close_connection = True
            return
        data, content_type = reply.encoded()
        self.send_response(reply.status)
        headers = {"Content-Type": content_type, "Content-Length": str(len(data)), **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    # Handler threads are joined by server_close, so none outlives the test that started the peer.
    daemon_threads = False
    # Room for many clients connecting at once; the default backlog of 5 makes the rest wait a second to retry.
    request_queue_size = 128
    peer: HttpPeer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a held request leaves a broken pipe behind; that is the test's point.
        pass


class HttpPeer:
    """An HTTP server on a free port of 127.0.0.1; ``reply`` decides answers, by default from the script."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.stopping = threading.Event()
        self._scripts: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.peer = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01})
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def script(self, path: str, *replies: Reply) -> None:
        """Answer requests to ``path`` with ``replies`` in order; the last one repeats."""
        with self._lock:
            self._scripts[path] = list(replies)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def record(self, request: Received) -> Reply:
        with self._lock:
            self.requests.append(request)
            script = self._scripts.get(request.path)
            scripted = (script.pop(0) if len(script) > 1 else script[0]) if script else None
        return scripted or self.reply(request)

    def reply(self, request: Received) -> Reply:
        """The answer to a request with no script: 200 with an empty body."""
        return Reply(200)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


Peer = TypeVar("Peer", bound=HttpPeer)


@contextmanager
def running(peer: Peer) -> Iterator[Peer]:
    """``peer`` serving for the duration of the block, stopped (held requests released) after it."""
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


class FakeSlack(HttpPeer):
    """The parts of Slack reportctl uses: incoming webhooks, chat.postMessage, external uploads and auth.test.

    ``channel_errors`` maps a channel id to the error Slack gives for it (channel_not_found, not_in_channel, ...).
    """

    WEBHOOK_PATH = "/services/T000/B000/webhooksecret"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.channel_errors: dict[str, str] = {}
        self.uploads: dict[str, bytes] = {}
        self.upload_names: dict[str, str] = {}
        self.messages: list[dict[str, Any]] = []
        self._file_ids = itertools.count(1)

    @property
    def api_url(self) -> str:
        return self.url("/api")

    @property
    def webhook_url(self) -> str:
        return self.url(self.WEBHOOK_PATH)

    def reply(self, request: Received) -> Reply:
        if request.path == self.WEBHOOK_PATH:
            message = request.json()
            if not message.get("text"):
                return Reply(400, "invalid_payload")
            self.messages.append(message)
            return Reply(200, "ok")
        if request.path.startswith("/upload/"):
            file_id = request.path.removeprefix("/upload/")
            if file_id not in self.upload_names:
                return Reply(404, "unknown upload")
            self.uploads[file_id] = request.body
            return Reply(200, f"OK - {len(request.body)}")
        method = request.path.removeprefix("/api/")
        if request.header("Authorization") != f"Bearer {self.token}":
            return Reply(200, {"ok": False, "error": "invalid_auth"})
        if method == "auth.test":
            return Reply(200, {"ok": True, "user": "reportbot", "team": "Acme", "url": "https://acme.slack.com/"})
        if method == "files.getUploadURLExternal":
            form = request.form()
            if not form.get("filename") or not form.get("length", "").isdigit():
                return Reply(200, {"ok": False, "error": "invalid_arguments"})
            file_id = f"F{next(self._file_ids):08d}"
            self.upload_names[file_id] = form["filename"]
            return Reply(200, {"ok": True, "upload_url": self.url(f"/upload/{file_id}"), "file_id": file_id})
        if method in ("chat.postMessage", "files.completeUploadExternal"):
            message = request.json()
            channel = message.get("channel") or message.get("channel_id")
            if channel in self.channel_errors:
                return Reply(200, {"ok": False, "error": self.channel_errors[channel]})
            if method == "files.completeUploadExternal" and any(f["id"] not in self.uploads for f in message["files"]):
                return Reply(200, {"ok": False, "error": "file_not_found"})
            self.messages.append(message)
            return Reply(200, {"ok": True, "channel": channel, "ts": "1700000000.000100"})
        return Reply(404, {"ok": False, "error": "unknown_method"})
