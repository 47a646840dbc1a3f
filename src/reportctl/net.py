"""What went wrong on the network, found under the layers of exceptions that HTTP and S3 clients wrap it in."""

from __future__ import annotations

from typing import Any


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps: requests, urllib3 and botocore nest the real cause in args and ``reason``."""
    seen: list[BaseException] = []
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None), *current.args])
    return seen
