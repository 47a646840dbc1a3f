"""Cron expressions, parsed once per process: the spec check and the schedule ask about the same few thousand
times when the daemon reads thousands of specs."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=4096)
def parsed_cron(expression: str) -> Any | None:
    """croniter's parse of ``expression`` (from 2000-01-01; copy it and set its start), or None when croniter
    refuses the expression."""
    from croniter import CroniterError, croniter

    try:
        return croniter(expression, datetime(2000, 1, 1))
    except CroniterError:
        return None
