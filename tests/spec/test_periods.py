"""Named periods resolve in the report's time zone, including across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reportctl.spec.models import Parameter
from reportctl.spec.parameters import bind_values, coerce_parameter, resolve_period

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# 2026-11-28 is a Saturday.
NOW = datetime(2026, 11, 28, 14, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("today", datetime(2026, 11, 28, tzinfo=BERLIN), datetime(2026, 11, 29, tzinfo=BERLIN)),
        ("yesterday", datetime(2026, 11, 27, tzinfo=BERLIN), datetime(2026, 11, 28, tzinfo=BERLIN)),
        ("last_7_days", datetime(2026, 11, 21, tzinfo=BERLIN), datetime(2026, 11, 28, tzinfo=BERLIN)),
        ("last_week", datetime(2026, 11, 16, tzinfo=BERLIN), datetime(2026, 11, 23, tzinfo=BERLIN)),
        (
            "this_week",
            datetime(2026, 11, 23, tzinfo=BERLIN),
            datetime(2026, 11, 28, 15, 30, 15, tzinfo=BERLIN),
        ),
        (
            "month_to_date",
            datetime(2026, 11, 1, tzinfo=BERLIN),
            datetime(2026, 11, 28, 15, 30, 15, tzinfo=BERLIN),
        ),
        ("last_month", datetime(2026, 10, 1, tzinfo=BERLIN), datetime(2026, 11, 1, tzinfo=BERLIN)),
        ("last_quarter", datetime(2026, 7, 1, tzinfo=BERLIN), datetime(2026, 10, 1, tzinfo=BERLIN)),
        (
            "quarter_to_date",
            datetime(2026, 10, 1, tzinfo=BERLIN),
            datetime(2026, 11, 28, 15, 30, 15, tzinfo=BERLIN),
        ),
        ("last_year", datetime(2025, 1, 1, tzinfo=BERLIN), datetime(2026, 1, 1, tzinfo=BERLIN)),
        ("last_3_days", datetime(2026, 11, 25, tzinfo=BERLIN), datetime(2026, 11, 28, tzinfo=BERLIN)),
    ],
)
def test_named_periods_in_berlin(name: str, start: datetime, end: datetime) -> None:
    period = resolve_period(name, NOW, "Europe/Berlin")
    assert (period.start, period.end) == (start, end)


def test_last_24_hours_is_rolling() -> None:
    period = resolve_period("last_24_hours", NOW, "UTC")
    assert period.end - period.start == timedelta(hours=24)
    assert period.end == NOW


def _hours(start: datetime, end: datetime) -> float:
    # Python subtracts datetimes sharing a tzinfo by wall clock; elapsed time needs UTC.
    return (end.astimezone(UTC) - start.astimezone(UTC)) / timedelta(hours=1)


def test_yesterday_on_spring_forward_day_is_23_hours() -> None:
    # 2026-03-29: Berlin moves from 02:00 to 03:00.
    period = resolve_period("yesterday", datetime(2026, 3, 30, 9, tzinfo=UTC), "Europe/Berlin")
    assert _hours(period.start, period.end) == 23


def test_yesterday_on_fall_back_day_is_25_hours() -> None:
    # 2026-11-01: New York repeats 01:00-02:00.
    period = resolve_period("yesterday", datetime(2026, 11, 2, 15, tzinfo=UTC), "America/New_York")
    assert period.start == datetime(2026, 11, 1, tzinfo=NEW_YORK)
    assert _hours(period.start, period.end) == 25


def test_the_time_zone_decides_which_day_is_yesterday() -> None:
    late_utc = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)  # already the 29th in Berlin
    assert resolve_period("yesterday", late_utc, "Europe/Berlin").start.date() == date(2026, 11, 28)
    assert resolve_period("yesterday", late_utc, "UTC").start.date() == date(2026, 11, 27)


def test_explicit_range() -> None:
    period = resolve_period("2026-01-01..2026-02-01", NOW, "Europe/Berlin")
    assert period.start == datetime(2026, 1, 1, tzinfo=BERLIN)
    assert period.end == datetime(2026, 2, 1, tzinfo=BERLIN)


@pytest.mark.parametrize("text", ["last_fortnight", "2026-02-01..2026-01-01", "soon..later"])
def test_bad_periods_say_what_is_valid(text: str) -> None:
    with pytest.raises(ValueError, match=r"period|ISO date"):
        resolve_period(text, NOW, "UTC")


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("int", "42", 42),
        ("float", "2.5", 2.5),
        ("bool", "yes", True),
        ("bool", "false", False),
        ("date", "2026-03-01", date(2026, 3, 1)),
        ("datetime", "2026-03-01T09:00", datetime(2026, 3, 1, 9, tzinfo=BERLIN)),
        ("duration", "1h30m", timedelta(minutes=90)),
        ("string", 7, "7"),
    ],
)
def test_parameter_coercion(kind: str, raw: object, expected: object) -> None:
    parameter = Parameter.model_validate({"type": kind})
    assert coerce_parameter(parameter, raw, NOW, "Europe/Berlin") == expected


@pytest.mark.parametrize(
    ("spec", "raw", "message"),
    [
        ({"type": "int"}, "4.5", "expected an integer, got '4.5'"),
        ({"type": "int"}, True, "expected an integer"),
        ({"type": "bool"}, "maybe", "expected true or false"),
        ({"type": "date"}, "31/01/2026", "expected a date such as 2026-01-31"),
        ({"type": "string", "choices": ["eu", "us"]}, "ap", "'ap' is not one of: eu, us"),
        ({"type": "float", "min": 0, "max": 1}, "1.5", "above the maximum 1"),
    ],
)
def test_parameter_errors_name_the_value_and_what_is_valid(spec: dict[str, object], raw: object, message: str) -> None:
    parameter = Parameter.model_validate(spec)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        coerce_parameter(parameter, raw, NOW, "UTC")


def test_bind_values_expand_the_only_period() -> None:
    parameters = {"period": Parameter(type="period"), "region": Parameter()}
    period = resolve_period("yesterday", NOW, "UTC")
    bound = bind_values(parameters, {"period": period, "region": "eu"})
    assert bound == {
        "period_start": period.start,
        "period_end": period.end,
        "start": period.start,
        "end": period.end,
        "region": "eu",
    }
