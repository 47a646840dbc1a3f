"""Small value types shared by the spec models and plugin options."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

from reportctl.errors import did_you_mean


class StrictModel(BaseModel):
    """A spec object: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """'90s', '5m', '1h30m', '2d', '1w', a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 5m, 1h30m or 2d, got {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    text = str(value).strip().replace(" ", "")
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"expected a duration such as 5m, 1h30m or 2d, got {value!r}")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text)))


def format_duration_spec(value: timedelta) -> str:
    """The compact spec form of a duration, the inverse of ``parse_duration``."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, int(_UNIT_SECONDS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration_spec, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|w|d|h|m|s))+$", "examples": ["5m", "1h30m"]}),
]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("expected a positive duration such as 30s or 5m")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


def check_timezone(value: Any) -> str:
    """An IANA time zone name such as Europe/Berlin."""
    if not isinstance(value, str):
        raise ValueError(f"expected a time zone name such as Europe/Berlin, got {value!r}")
    name = value
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone '{name}'{did_you_mean(name, available_timezones())}; "
            "use an IANA name such as Europe/Berlin or UTC"
        ) from None
    return name


TimeZoneName = Annotated[str, BeforeValidator(check_timezone), WithJsonSchema({"type": "string"})]

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
NAME = r"^[a-z0-9][a-z0-9-]*$"
