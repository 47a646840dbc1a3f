"""Typed parameters: coercion of spec defaults and ``-p KEY=VALUE`` values, and named periods.

A period is a half-open range [start, end) computed from the run time in the report's time zone, so
``yesterday`` in Europe/Berlin is Berlin's yesterday, 23 or 25 hours long on daylight-saving days.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from reportctl.document import Period
from reportctl.spec.models import Parameter
from reportctl.spec.types import parse_duration

PERIOD_NAMES = (
    "today",
    "yesterday",
    "last_24_hours",
    "last_7_days",
    "last_30_days",
    "this_week",
    "last_week",
    "month_to_date",
    "last_month",
    "quarter_to_date",
    "last_quarter",
    "year_to_date",
    "last_year",
)
_ROLLING = re.compile(r"^last_(\d+)_(hours|days)$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _quarter_start(day: date, quarters_back: int = 0) -> date:
    month_index = day.year * 12 + (day.month - 1) // 3 * 3 - 3 * quarters_back
    return date(month_index // 12, month_index % 12 + 1, 1)


def resolve_period(value: str, now: datetime, timezone: str) -> Period:
    """The period called ``value`` (a name above, last_N_days, last_N_hours, or START..END) at ``now``."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone).replace(microsecond=0)
    today = local.date()
    name = value.strip()
    if ".." in name:
        first, _, last = name.partition("..")
        start, end = _parse_instant(first, zone), _parse_instant(last, zone)
        if end <= start:
            raise ValueError(f"period '{value}' ends before it starts")
        return Period(name, start, end)
    rolling = _ROLLING.match(name)
    if rolling:
        count, unit = int(rolling.group(1)), rolling.group(2)
        if unit == "hours":
            return Period(name, local - timedelta(hours=count), local)
        return Period(name, _midnight(today - timedelta(days=count), zone), _midnight(today, zone))
    monday = today - timedelta(days=today.weekday())
    ranges: dict[str, Callable[[], tuple[datetime, datetime]]] = {
        "today": lambda: (_midnight(today, zone), _midnight(today + timedelta(days=1), zone)),
        "yesterday": lambda: (_midnight(today - timedelta(days=1), zone), _midnight(today, zone)),
        "this_week": lambda: (_midnight(monday, zone), local),
        "last_week": lambda: (_midnight(monday - timedelta(days=7), zone), _midnight(monday, zone)),
        "month_to_date": lambda: (_midnight(_month_start(today), zone), local),
        "last_month": lambda: (_midnight(_month_start(today, 1), zone), _midnight(_month_start(today), zone)),
        "quarter_to_date": lambda: (_midnight(_quarter_start(today), zone), local),
        "last_quarter": lambda: (
            _midnight(_quarter_start(today, 1), zone),
            _midnight(_quarter_start(today), zone),
        ),
        "year_to_date": lambda: (_midnight(date(today.year, 1, 1), zone), local),
        "last_year": lambda: (
            _midnight(date(today.year - 1, 1, 1), zone),
            _midnight(date(today.year, 1, 1), zone),
        ),
    }
    if name not in ranges:
        raise ValueError(
            f"unknown period '{value}'; use one of {', '.join(PERIOD_NAMES)}, last_N_days, last_N_hours, "
            "or START..END (e.g. 2026-01-01..2026-02-01)"
        )
    start, end = ranges[name]()
    return Period(name, start, end)


def _parse_instant(text: str, zone: ZoneInfo) -> datetime:
    text = text.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO date or datetime such as 2026-01-31 or 2026-01-31T09:00") from None
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


def coerce_parameter(parameter: Parameter, value: Any, now: datetime, timezone: str) -> Any:
    """``value`` (from YAML or the command line) as the parameter's type; ValueError says what is wrong."""
    value = _coerce_type(parameter.type, value, now, timezone)
    if parameter.choices is not None and parameter.type != "period":
        allowed = [_coerce_type(parameter.type, c, now, timezone) for c in parameter.choices]
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of: {', '.join(str(c) for c in parameter.choices)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if parameter.min is not None and value < parameter.min:
            raise ValueError(f"{value} is below the minimum {parameter.min:g}")
        if parameter.max is not None and value > parameter.max:
            raise ValueError(f"{value} is above the maximum {parameter.max:g}")
    return value


def _coerce_type(kind: str, value: Any, now: datetime, timezone: str) -> Any:
    if isinstance(value, dict | list):
        raise ValueError(f"expected a single {kind} value, got a {'mapping' if isinstance(value, dict) else 'list'}")
    if kind in ("string", "choice"):
        return str(value)
    if kind == "int":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(f"expected true or false, got {value!r}")
    if kind == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"expected a date such as 2026-01-31, got {value!r}") from None
    if kind == "datetime":
        zone = ZoneInfo(timezone)
        if isinstance(value, datetime):
            return value.replace(tzinfo=zone) if value.tzinfo is None else value
        return _parse_instant(str(value), zone)
    if kind == "duration":
        return parse_duration(value)
    if kind == "period":
        return resolve_period(str(value), now, timezone)
    raise ValueError(f"unknown parameter type {kind!r}")


def bind_names(parameters: Mapping[str, Parameter]) -> set[str]:
    """Every name a query may bind, whether or not its parameter has a value now (the names of ``bind_values``)."""
    periods = [name for name, p in parameters.items() if p.type == "period"]
    names = {name for name in parameters if name not in periods}
    names.update(f"{name}_{end}" for name in periods for end in ("start", "end"))
    return names | ({"start", "end"} if len(periods) == 1 else set())


def bind_values(parameters: Mapping[str, Parameter], values: Mapping[str, Any]) -> dict[str, Any]:
    """Values as queries bind them: a period ``p`` gives ``p_start`` and ``p_end`` (and ``start``/``end`` when it
    is the only period)."""
    bound: dict[str, Any] = {}
    periods = [name for name, p in parameters.items() if p.type == "period"]
    for name, value in values.items():
        if isinstance(value, Period):
            bound[f"{name}_start"], bound[f"{name}_end"] = value.start, value.end
            if len(periods) == 1:
                bound.setdefault("start", value.start)
                bound.setdefault("end", value.end)
        else:
            bound[name] = value
    return bound
