"""The daemon's HTTP API (``schedule daemon --listen HOST:PORT``) on the standard library's ThreadingHTTPServer.

Routes: ``GET /healthz`` and ``GET /metrics`` (open, for probes and Prometheus); ``POST /runs``, ``GET /runs/ID``
and ``POST /alerts/SPEC`` (a bearer token: the value of a secret named in ``api.tokens``); ``GET /artifacts/RUN/FILE``
(open with a valid signed link, ``schedule.signed_links``). What a run request does is ``schedule.api_runs``.

Loopback by default. Another address needs TLS (``--tls-cert``/``--tls-key``) or ``--insecure-listen`` (a
TLS-terminating proxy in front): tokens and links must not cross a network in clear text by accident. Only the
leading daemon accepts runs; a standby answers 503 with ``Retry-After``, so a client retries (or its load balancer
moves on) until the leader takes it. Tokens and the signing key are read from their secrets at start.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from reportctl.errors import ReportctlError, UsageError, first_line
from reportctl.schedule.logs import log_event

if TYPE_CHECKING:
    from reportctl.config import Project
    from reportctl.schedule.daemon_service import DaemonService
    from reportctl.schedule.metrics import DaemonMetrics
    from reportctl.state.models import RunRecord

MAX_BODY = 1_000_000
"""The largest request body accepted (bytes); larger gets 413."""
REQUEST_TIMEOUT = 30.0
"""Seconds a connection may stay silent before it is dropped (a slow client never holds a thread for ever)."""
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ApiSetupError(UsageError):
    """The API cannot start: a bad --listen, TLS files that do not load, a token secret that is not set."""


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as a host and a port."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ApiSetupError(f"--listen: '{value}' is not HOST:PORT; use e.g. 127.0.0.1:8080")
    return host, int(port)


class DaemonApi:
    """The API's server, bound at construction (so a port in use fails the command at once), served from ``start``
    until ``close`` in a thread of its own."""

    def __init__(
        self,
        project: Project,
        metrics: DaemonMetrics,
        *,
        listen: str = "127.0.0.1:0",
        tls: tuple[Path, Path] | None = None,
        insecure_listen: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        from reportctl.schedule.logs import LOGGER_NAME
        from reportctl.secrets import SecretError, resolve_secret

        host, port = parse_listen(listen)
        if host not in LOOPBACK and tls is None and not insecure_listen:
            raise ApiSetupError(
                f"--listen {listen}: only loopback is served without TLS; give --tls-cert and --tls-key, or "
                "--insecure-listen when a TLS-terminating proxy sits in front"
            )
        self.project, self.metrics, self.tls = project, metrics, tls is not None
        self.log = logger or logging.getLogger(LOGGER_NAME)
        settings = project.config.api
        where = f"api in {project.config_file or 'reportctl.yaml'}"
        try:
            self.tokens = [(resolve_secret(name).encode(), name) for name in settings.tokens]
            key = settings.signing_key
            self.signing_key = resolve_secret(key).encode() if key else None
        except SecretError as exc:
            raise ApiSetupError(f"{where}: {exc}") from None
        if any(not value for value, _ in self.tokens) or self.signing_key == b"":
            raise ApiSetupError(f"{where}: a token or signing key secret is empty; set it to a long random value")
        self.link_expiry = settings.link_expiry
        self.service: DaemonService | None = None
        server_class = _IPv6Server if ":" in host else _Server
        try:
            self.server = server_class((host, port), ApiHandler)
        except OSError as exc:
            raise ApiSetupError(f"--listen: cannot serve on {listen}: {exc}") from None
        self.server.api = self
        if tls is not None:
            self.server.socket = _tls_context(*tls).wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The host and port served (the port the system chose for port 0)."""
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self, service: DaemonService) -> None:
        """Serve in a background thread, acting through ``service``."""
        self.service = service
        self._thread = threading.Thread(target=self.server.serve_forever, name="http-api", daemon=True)
        self._thread.start()
        host, port = self.address
        scheme = "https" if self.tls else "http"
        log_event(self.log, logging.INFO, "api.listening", f"HTTP API on {scheme}://{host}:{port}", port=port)

    def close(self) -> None:
        """Stop accepting requests and release the port."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server.server_close()

    def token_name(self, header: str | None) -> str | None:
        """The secret name of the bearer token in an ``Authorization`` header, or None (compared in constant
        time against every token, so the time taken does not tell which one nearly matched)."""
        if not header or not header.startswith("Bearer "):
            return None
        given = header.removeprefix("Bearer ").strip().encode()
        found = None
        for value, name in self.tokens:
            if hmac.compare_digest(given, value):
                found = name
        return found

    def link(self, base: str, run: RunRecord, path: str) -> str | None:
        """A signed download link to the artifact ``path`` of ``run``; None without a signing key."""
        from reportctl.schedule.signed_links import signed_path

        if self.signing_key is None:
            return None
        return base + signed_path(self.signing_key, run.id, path, datetime.now(UTC), self.link_expiry)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: DaemonApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (a failed TLS handshake, a port scan): one debug line, not a traceback."""
        import sys

        self.api.log.debug("connection from %s failed: %s", client_address[0], sys.exc_info()[1])


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


def _tls_context(cert: Path, key: Path) -> Any:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ApiSetupError(f"--tls-cert {cert} / --tls-key {key}: cannot load them: {exc}") from None
    return context


class ApiHandler(BaseHTTPRequestHandler):
    """One request: routed by method and path (``api_routes``)."""

    server: _Server
    timeout = REQUEST_TIMEOUT
    disable_nagle_algorithm = True  # headers and body go out as two writes: without it, 40 ms of delayed ACK each
    server_version = "reportctl"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    @property
    def api(self) -> DaemonApi:
        return self.server.api

    def setup(self) -> None:
        super().setup()
        import ssl

        if isinstance(self.connection, ssl.SSLSocket):  # the handshake here, in the request's thread
            try:
                self.connection.do_handshake()
            except (OSError, ssl.SSLError):
                self.close_connection = True
                raise

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def do_GET(self) -> None:
        from reportctl.schedule.api_routes import route_get

        route_get(self)

    def do_POST(self) -> None:
        from reportctl.schedule.api_routes import route_post

        route_post(self)

    def log_message(self, format: str, *args: Any) -> None:
        self.api.log.debug("%s " + format, self.client_address[0], *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(self.path).path  # never the query: a link's signature stays out of the log
        log_event(
            self.api.log, logging.INFO, "api.request", f"{self.command} {path} {code}",
            method=self.command, path=path, status=int(code) if str(code).isdigit() else None,
            client=self.client_address[0],
        )  # fmt: skip

    # --- answers --------------------------------------------------------------------------------------------------

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = (json.dumps(body, default=str) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error_json(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.send_json(status, {"error": first_line(message, "error")}, headers)

    def base_url(self) -> str:
        """The API's own address as the client reached it, for links."""
        scheme = "https" if self.api.tls else "http"
        host = self.headers.get("Host")
        if not host:
            address, port = self.api.address
            host = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        return f"{scheme}://{host}"

    def read_json(self) -> Any:
        """The request's JSON body; ``BadRequest`` (413 too large, 411 no length, 400 malformed)."""
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                raise BadRequest(411, "send the body with a Content-Length (chunked bodies are not read)")
            length = "0"
        if not length.isdigit():
            raise BadRequest(400, f"Content-Length '{length}' is not a number of bytes")
        if int(length) > MAX_BODY:
            self.close_connection = True  # the unread body must not be taken for the next request
            raise BadRequest(413, f"the body is {int(length)} bytes; at most {MAX_BODY} are accepted")
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(400, f"the body is not JSON: {exc}") from None

    def retry_after(self) -> str:
        """Seconds a standby asks a client to wait: about when a leader renews or a standby takes over."""
        service = self.api.service
        every = service.lease.renew_every if service is not None else 5.0
        return str(max(1, math.ceil(every)))


class BadRequest(ReportctlError):
    """A request that cannot be read: its status and its one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def path_parts(path: str) -> list[str]:
    """The path's segments, percent-decoded: ``/runs/abc`` -> ``["runs", "abc"]``."""
    return [unquote(part) for part in urlsplit(path).path.split("/") if part]


def query_of(path: str) -> dict[str, str]:
    """The query's parameters, the first value of each."""
    return {name: values[0] for name, values in parse_qs(urlsplit(path).query).items()}


__all__ = [
    "MAX_BODY",
    "ApiHandler",
    "ApiSetupError",
    "BadRequest",
    "DaemonApi",
    "parse_listen",
    "path_parts",
    "query_of",
]
