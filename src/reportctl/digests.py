"""Content hashes of files, as manifests, snapshots and object storage record them, and the JSON values that
signed and hashed documents (webhook bodies, query cache keys) are written with."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any


def file_sha256(path: Path) -> str:
    """The hex sha256 of the file's bytes, read in 1 MiB chunks so a large artifact is never held whole."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def json_value(value: Any) -> Any:
    """``json.dumps``'s ``default``: times ISO 8601, durations in seconds, decimals as text, sets sorted, else text."""
    if isinstance(value, date | datetime | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    return str(value)
