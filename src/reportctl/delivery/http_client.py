"""What the HTTP channels (webhook, slack) share: sessions per thread, and HTTP answers read as ``Outcome`` values.

A 2xx is sent; 429 and 5xx are worth retrying (honouring Retry-After, in seconds or as an HTTP date); a redirect
or any other 4xx is final. Failures below HTTP (refused, timed out, unknown host) are retried too.
"""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from reportctl.delivery.base import ChannelCheckError, Outcome
from reportctl.net import exception_chain
from reportctl.secrets import redact

if TYPE_CHECKING:
    import requests

BODY_EXCERPT = 200
"""Characters of a response body kept in the ledger: enough for the provider's error, not a whole HTML page."""


class SessionPerThread:
    """A ``requests.Session`` for each thread that sends, so concurrent ``send`` calls never share a connection."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []

    def get(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = user_agent()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close every thread's session; a thread that sends afterwards gets a new one."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()


@cache
def user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"reportctl/{version('reportctl')}"
    except PackageNotFoundError:
        from reportctl import __version__

        return f"reportctl/{__version__}"


def response_text(response: requests.Response) -> str:
    """'<code> <reason>', then ': ' and the start of the body on one line when there is one."""
    status = f"{response.status_code} {response.reason or ''}".strip()
    body = " ".join(response.text.split())[:BODY_EXCERPT]
    return f"{status}: {body}" if body else status


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def http_outcome(response: requests.Response, url: str) -> Outcome:
    """The outcome an HTTP answer means for its recipient; ``url`` is where the request went, for redirects."""
    code = response.status_code
    text = response_text(response)
    if 200 <= code < 300:
        return Outcome("sent", f"{code} {response.reason or ''}".strip())
    if code == 429 or code >= 500:
        return Outcome("retry", text, retry_after(response.headers.get("Retry-After")))
    if 300 <= code < 400:
        location = response.headers.get("Location")
        if location:
            target = redact(urljoin(url, location))
            return Outcome("failed", f"{code} {response.reason or ''}: redirects to {target}; point url there")
        return Outcome("failed", f"{text} (a redirect without a Location)")
    return Outcome("failed", text)


def transport_outcome(exc: Exception, url: str, timeout: float) -> Outcome:
    """The outcome of a request that got no HTTP answer: retried, except when retrying cannot help."""
    import requests
    from urllib3 import exceptions as u3

    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    chain = exception_chain(exc)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return Outcome("failed", f"'{redact(url)}' is not a valid http or https URL")
    # Before timeouts: urllib3's NewConnectionError subclasses ConnectTimeoutError.
    if any(isinstance(e, ConnectionRefusedError) or "Connection refused" in str(e) for e in chain):
        return Outcome("retry", f"connection refused by {where}")
    if any(isinstance(e, u3.NameResolutionError | socket.gaierror) for e in chain):
        return Outcome("retry", f"unknown host {parts.hostname}")
    if isinstance(exc, requests.Timeout) or any(isinstance(e, u3.TimeoutError | TimeoutError) for e in chain):
        return Outcome("retry", f"timed out after {timeout:g} s")
    if any(isinstance(e, u3.SSLError) for e in chain):
        # A certificate the client rejects stays rejected however often we try.
        return Outcome("failed", f"TLS with {where} failed; check the server's certificate")
    if any(isinstance(e, u3.ProtocolError) for e in chain):
        return Outcome("retry", f"{where} closed the connection without a valid HTTP response")
    return Outcome("retry", f"request to {where} failed: {type(exc).__name__}")


def resolve_host(url: str, option: str) -> str:
    """'<host> resolves to <address>', found by the resolver alone; ``ChannelCheckError`` naming ``option`` if not."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise ChannelCheckError(f"{option}: '{redact(url)}' is not an http or https URL; write https://host/path")
    try:
        found = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ChannelCheckError(
            f"{option}: host {host} does not resolve ({reason}); correct the host name in {option} or the DNS setup"
        ) from None
    return f"{host} resolves to {found[0][4][0]}"
