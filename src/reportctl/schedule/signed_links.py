"""Signed, expiring download links to a run's artifacts, served by the daemon's HTTP API.

``/artifacts/<run-id>/<file>?expires=<unix>&sig=<hex>``: ``sig`` is HMAC-SHA256, keyed with the secret named by
``api.signing_key``, over the run id, the file's path in the run's folder and ``expires``, each ended by a newline
(so no two triples sign the same bytes). A link grants that one file until ``expires``; no token is needed with it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from reportctl.errors import ReportctlError


class BadLink(ReportctlError):
    """A download link whose signature does not match, or that has expired."""


def link_signature(key: bytes, run_id: str, filename: str, expires: int) -> str:
    """The hex HMAC-SHA256 of one link."""
    message = f"{run_id}\n{filename}\n{expires}\n".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_path(key: bytes, run_id: str, filename: str, now: datetime, lifetime: timedelta) -> str:
    """The path and query of a link to ``filename`` of run ``run_id``, valid for ``lifetime`` from ``now``."""
    expires = int((now + lifetime).timestamp())
    query = urlencode({"expires": expires, "sig": link_signature(key, run_id, filename, expires)})
    return f"/artifacts/{quote(run_id, safe='')}/{quote(filename)}?{query}"


def check_link(key: bytes, run_id: str, filename: str, expires: str, signature: str, now: datetime) -> None:
    """Raise ``BadLink`` unless the link is signed with ``key`` and ``expires`` lies after ``now``."""
    try:
        deadline = int(expires)
    except ValueError:
        raise BadLink("the link's 'expires' is not a Unix time; ask GET /runs/ID for a fresh link") from None
    expected = link_signature(key, run_id, filename, deadline)
    if not hmac.compare_digest(expected, signature.lower()):
        raise BadLink("the link's signature does not match; ask GET /runs/ID for a fresh link")
    if deadline <= now.timestamp():
        raise BadLink("the link has expired; ask GET /runs/ID for a fresh link")


__all__ = ["BadLink", "check_link", "link_signature", "signed_path"]
