"""Column formats: one table of (format, value, expected text), the grammar's errors, and the helpers."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from reportctl.document import Period
from reportctl.errors import ReportctlError
from reportctl.formats import (
    AUTO,
    FORMAT_NAMES,
    ColumnFormat,
    FormatError,
    default_format_for,
    export_frame,
    format_bytes,
    format_currency,
    format_date,
    format_datetime,
    format_duration,
    format_number,
    format_percent,
    machine_value,
    parse_format,
)

BERLIN = ZoneInfo("Europe/Berlin")
WINTER = datetime(2026, 11, 28, 13, 5, tzinfo=UTC)
SUMMER = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)

CASES: list[tuple[str | None, Any, str]] = [
    ("number", 1234.5, "1,235"),
    ("number", 1234, "1,234"),
    ("number:1", 1234.56, "1,234.6"),
    ("number:2", 2.675, "2.68"),
    ("number:2", -1234.5, "-1,234.50"),
    ("number:2", -0.001, "0.00"),
    ("number:0 ms", 1234.4, "1,234 ms"),
    ("number:1 req/s", 12.25, "12.3 req/s"),
    ("number:3", Decimal("1.0005"), "1.001"),
    ("number", 10**20 + 1, "100,000,000,000,000,000,001"),
    ("number", float("inf"), "∞"),
    ("number", float("-inf"), "-∞"),
    ("number", None, ""),
    ("number", float("nan"), ""),
    ("integer", 1234.5, "1,235"),
    ("integer", -1234.5, "-1,235"),
    ("integer", 42, "42"),
    ("integer items", 3, "3 items"),
    ("percent", 0.853, "85.3%"),
    ("percent:0", 0.853, "85%"),
    ("percent:2", 0.00125, "0.13%"),
    ("percent", 12.5, "1,250.0%"),
    ("percent", -0.05, "-5.0%"),
    ("currency", 1234.5, "$1,234.50"),
    ("currency", -1234.5, "-$1,234.50"),
    ("currency:EUR", 12, "€12.00"),
    ("currency:gbp", 0.5, "£0.50"),
    ("currency:JPY", 1234.5, "¥1,235"),
    ("currency:USD:0", 1234.5, "$1,235"),
    ("currency:CHF", 3.1, "CHF 3.10"),
    ("currency:CHF:0", -1234.5, "-CHF 1,235"),
    ("currency", -0.001, "$0.00"),
    ("date", date(2026, 11, 28), "2026-11-28"),
    ("date:%d %b %Y", date(2026, 11, 28), "28 Nov 2026"),
    ("date", datetime(2026, 11, 28, 23, 30, tzinfo=UTC), "2026-11-29"),
    ("date", datetime(2026, 11, 28, 23, 30), "2026-11-28"),
    ("date", "2026-11-28", "2026-11-28"),
    ("datetime", WINTER, "2026-11-28 14:05 CET"),
    ("datetime", SUMMER, "2026-07-02 00:30 CEST"),
    ("datetime", datetime(2026, 11, 28, 14, 5), "2026-11-28 14:05"),
    ("datetime", date(2026, 11, 28), "2026-11-28 00:00"),
    ("datetime:%H:%M", WINTER, "14:05"),
    ("datetime:%Y-%m-%dT%H:%M%z", WINTER, "2026-11-28T14:05+0100"),
    ("duration", 3723, "1h 2m 3s"),
    ("duration", 3600, "1h"),
    ("duration", 3603, "1h 0m 3s"),
    ("duration", 59.6, "1m"),
    ("duration", 0, "0s"),
    ("duration", 0.25, "250ms"),
    ("duration", -90, "-1m 30s"),
    ("duration", timedelta(days=2, seconds=5), "2d 0h 0m 5s"),
    ("duration", timedelta(minutes=5), "5m"),
    ("bytes", 1536, "1.5 KiB"),
    ("bytes", 512, "512 B"),
    ("bytes", 0, "0 B"),
    ("bytes", 1048575, "1.0 MiB"),
    ("bytes:2", 5 * 1024**3 + 1, "5.00 GiB"),
    ("bytes", -2048, "-2.0 KiB"),
    ("text", "as is", "as is"),
    ("text", 1.5, "1.5"),
    ("text", None, ""),
    (None, 2.5, "2.50"),
    (None, 3, "3"),
    (None, "x", "x"),
    (None, WINTER, "2026-11-28 14:05 CET"),
    (None, date(2026, 1, 2), "2026-01-02"),
    (None, timedelta(seconds=61), "1m 1s"),
    ("", 1000, "1,000"),
]


@pytest.mark.parametrize(("spec", "value", "expected"), CASES)
def test_format(spec: str | None, value: Any, expected: str) -> None:
    assert parse_format(spec).format(value, tz="Europe/Berlin") == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("numbr", "unknown format 'numbr' (did you mean 'number'?); valid formats: bytes, currency, date,"),
        ("percentage:1", "unknown format 'percentage' (did you mean 'percent'?)"),
        ("zzz", "unknown format 'zzz'; valid formats: " + ", ".join(sorted(FORMAT_NAMES))),
        ("42", "unknown format '42'"),
        ("number:x", "format 'number:x': decimals must be a whole number from 0 to 12"),
        ("number:13", "decimals must be a whole number from 0 to 12"),
        ("number:1:2", "too many ':' parts; expected number:N"),
        ("integer:2", "too many ':' parts; expected integer"),
        ("percent:1 ms", "only number and integer take a unit"),
        ("currency:EURO", "currency code must be three letters"),
        ("currency:EUR:x", "decimals must be a whole number"),
        ("date:", "expected date or date:PATTERN"),
        ("number-1", "expected ':' after 'number'"),
    ],
)
def test_bad_format_is_explained(spec: str, message: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse_format(spec)
    assert message in str(caught.value)
    assert isinstance(caught.value, ReportctlError)
    assert "\n" not in str(caught.value)


def test_parsed_fields_are_resolved_and_printable() -> None:
    assert parse_format("currency:JPY") == ColumnFormat("currency", decimals=0, currency="JPY")
    assert parse_format("number:0 ms") == ColumnFormat("number", decimals=0, unit="ms")
    assert parse_format("date:%d %b %Y") == ColumnFormat("date", pattern="%d %b %Y")
    for spec in ("number:1 ms", "percent:2", "currency:EUR:2", "date:%d %b", "datetime", "duration", "text"):
        assert str(parse_format(spec)) == spec
        assert parse_format(str(parse_format(spec))) == parse_format(spec)


@pytest.mark.parametrize(
    ("value", "message"),
    [("abc", "format_number expects a number, got str 'abc'"), (True, "expects a number, got bool")],
)
def test_values_of_the_wrong_kind_are_refused(value: Any, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_format("number").format(value)


def test_wrong_kind_for_dates_and_unknown_zone() -> None:
    with pytest.raises(FormatError, match="format_date expects a date or datetime, got int 5"):
        format_date(5)
    with pytest.raises(FormatError, match="unknown time zone 'Mars/Olympus'"):
        format_datetime(WINTER, tz="Mars/Olympus")


def test_helpers_match_column_formats() -> None:
    assert format_number(1234.5, 1, "ms") == parse_format("number:1 ms").format(1234.5) == "1,234.5 ms"
    assert format_percent(0.853) == "85.3%"
    assert format_currency(-1234.5) == "-$1,234.50"
    assert format_currency(5, "EUR", 0) == "€5"
    assert format_date(WINTER, "%d.%m.%Y", tz="Asia/Tokyo") == "28.11.2026"
    assert format_datetime(WINTER, tz="UTC") == "2026-11-28 13:05 UTC"
    assert format_datetime(WINTER) == "2026-11-28 13:05 UTC"
    assert format_duration(timedelta(hours=25)) == "1d 1h"
    assert format_bytes(1536, 0) == "2 KiB"
    assert [f(None) for f in (format_number, format_percent, format_currency, format_duration)] == [""] * 4


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (pl.Float64, "number:2"),
        (pl.Float32(), "number:2"),
        (pl.Decimal(10, 3), "number:3"),
        (pl.Int64, "integer"),
        (pl.UInt8(), "integer"),
        (pl.Date, "date"),
        (pl.Datetime("us", "Europe/Berlin"), "datetime"),
        (pl.Datetime, "datetime"),
        (pl.Duration("ms"), "duration"),
        (pl.String, "text"),
        (pl.Boolean, "text"),
    ],
)
def test_default_format_for(dtype: Any, expected: str) -> None:
    assert str(default_format_for(dtype)) == expected


def test_machine_value() -> None:
    period = Period("last_7_days", datetime(2026, 11, 21, tzinfo=BERLIN), datetime(2026, 11, 28, tzinfo=BERLIN))
    assert machine_value(period) == {
        "name": "last_7_days",
        "start": "2026-11-21T00:00:00+01:00",
        "end": "2026-11-28T00:00:00+01:00",
    }
    assert machine_value(datetime(2026, 1, 2, 3, 4, tzinfo=BERLIN)) == "2026-01-02T03:04:00+01:00"
    assert machine_value(date(2026, 1, 2)) == "2026-01-02"
    assert machine_value(timedelta(minutes=1, milliseconds=500)) == 60.5
    assert machine_value(Decimal("1.25")) == 1.25
    assert machine_value(float("nan")) is None
    assert machine_value(float("inf")) is None
    assert machine_value(["eu", 1, True]) == ["eu", 1, True]
    assert machine_value({"a": date(2026, 1, 1)}) == {"a": "2026-01-01"}


def test_export_frame_shapes_values_for_csv_and_json() -> None:
    frame = pl.DataFrame(
        {
            "aware": [datetime(2026, 3, 29, 0, 30, tzinfo=UTC), None],
            "naive": [datetime(2026, 1, 1, 1, 2, 3, 456789), None],
            "took": [timedelta(seconds=1.5), None],
            "blob": [b"ab", None],
            "tags": [["x", "y"], None],
            "amount": pl.Series([Decimal("1.50"), None], dtype=pl.Decimal(10, 2)),
        }
    )
    csv = export_frame(frame, "Europe/Berlin", "csv")
    assert csv.schema["aware"] == pl.Datetime("us", "Europe/Berlin")
    assert csv.row(0) == (
        datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN),
        "2026-01-01T01:02:03.456789",
        1.5,
        "YWI=",
        '["x","y"]',
        Decimal("1.50"),
    )
    assert csv.row(1) == (None,) * 6
    json = export_frame(frame, "Europe/Berlin", "json")
    assert json["tags"].to_list() == [["x", "y"], None]
    assert json["amount"].to_list() == [1.5, None]
    assert math.isclose(json["took"][0], 1.5)


# -- locales, rounding edges and defaults (issue 10) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "locale", "expected"),
    [
        ("currency:EUR", 1234.56, "de_DE", "1.234,56 €"),
        ("currency:EUR", -1234.5, "de_DE", "-1.234,50 €"),
        ("currency:EUR", 1234.56, "en_US", "€1,234.56"),
        ("currency:CHF", 1234.5, "fr_CH", "1'234,50 CHF"),
        ("currency:JPY", 1234.5, "ja_JP", "￥1,235"),
        ("currency:SEK", 1021349, "sv_SE", "1\xa0021\xa0349,00 kr"),
        ("currency:SEK", 1021349, "en_US", "SEK 1,021,349.00"),
        ("currency:INR", 1234567, "en_IN", "₹12,34,567.00"),
        ("currency:KWD", 1.2345, "en_US", "KWD 1.235"),
        ("number:2", 1234567.891, "de_DE", "1.234.567,89"),
        ("number:1 ms", 1234.56, "de_DE", "1.234,6 ms"),
        ("percent", 0.853, "de_DE", "85,3 %"),
        ("percent", 0.853, "fr_FR", "85,3 %"),
        ("bytes", 1536, "de_DE", "1,5 KiB"),
        ("date:%d %B %Y", date(2026, 12, 3), "de_DE", "03 Dezember 2026"),
        ("date:%a %d %b", date(2026, 12, 3), "fr_FR", "jeu. 03 déc."),
        ("date:medium", date(2026, 12, 3), "de_DE", "03.12.2026"),
        ("date:long", date(2026, 12, 3), "en_US", "December 3, 2026"),
        ("date:%d %B %Y", date(2026, 12, 3), "en_GB", "03 December 2026"),
    ],
)
def test_locales_through_babel(spec: str, value: Any, locale: str, expected: str) -> None:
    assert parse_format(spec).format(value, locale=locale) == expected


def test_the_locale_sign_is_used_and_there_is_never_a_negative_zero() -> None:
    assert parse_format("number:1").format(-1234.5, locale="sv_SE") == "\u22121\xa0234,5"
    assert parse_format("number:1").format(-0.04, locale="de_DE") == "0,0"
    assert parse_format("currency:EUR").format(-0.001, locale="de_DE") == "0,00 €"


def test_every_iso_currency_is_known_and_an_unknown_one_is_refused_at_parse() -> None:
    assert parse_format("currency:BHD") == ColumnFormat("currency", decimals=3, currency="BHD")
    with pytest.raises(FormatError, match="unknown currency 'EUX'"):
        parse_format("currency:EUX")


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (162.04999999999995, 1, "162.1"),  # a linear p95 of 162.05 as stored; Excel and LibreOffice show 162.1
        (2.675, 2, "2.68"),
        (1.005, 2, "1.01"),
        (0.1 + 0.2, 12, "0.300000000000"),
        (-0.0, 2, "0.00"),
        (1e15 + 0.3, 0, "1,000,000,000,000,000"),
    ],
)
def test_floats_round_at_15_significant_digits_then_half_up(value: float, decimals: int, expected: str) -> None:
    assert format_number(value, decimals) == expected


def test_floats_without_a_format_show_significant_digits_never_a_false_zero() -> None:
    column = pl.Series([0.0012, 12.5, 1234.5678, None, 0.0])
    fmt = default_format_for(column.dtype, column)
    assert [fmt.format(v) for v in column.to_list()] == ["0.0012", "12.50", "1,234.5678", "", "0.00"]
    plain = default_format_for(pl.Float64, pl.Series([0.5, 12.345]))
    assert [plain.format(v) for v in (0.5, 12.345)] == ["0.50", "12.35"]
    assert AUTO.format(0.0012) == "0.0012"
    assert AUTO.format(1e-7) == "0.0000001"
    assert AUTO.format(3.14159) == "3.14"


def test_booleans_read_yes_and_no() -> None:
    assert [AUTO.format(True), AUTO.format(False), parse_format("text").format(True)] == ["Yes", "No", "Yes"]
    assert default_format_for(pl.Boolean).format(False) == "No"


_LOCALES = ("en_US", "de_DE", "en_IN", "sv_SE", "fr_CH")
_FLOAT_FORMATS = (
    "number:0",
    "number:1 ms",
    "number:3",
    "percent",
    "percent:2",
    "currency",
    "currency:EUR",
    "currency:JPY",
)


@pytest.mark.parametrize("locale", _LOCALES)
@pytest.mark.parametrize("spec", [*_FLOAT_FORMATS, None])
def test_a_column_formatter_of_floats_writes_what_format_writes(spec: str | None, locale: str) -> None:
    """``formatter`` skips the checks a float column makes needless: for every kind of float (halves, ties at
    15 significant digits, tiny and huge, negative zero, NaN, infinities, None) it writes what ``format`` does."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    series = pl.Series([0.0012, 0.5, -0.5, 2.675, 162.04999999999995, -1234.5, 1e17, 1e-9])
    fmt = parse_format(spec) if spec else default_format_for(pl.Float64, series)
    fast = fmt.formatter(pl.Float64, "Europe/Berlin", locale)
    for fixed in [*series.to_list(), -0.0, math.nan, math.inf, -math.inf, None, 1.005, -2.5, 0.125, 999999.995]:
        assert fast(fixed) == fmt.format(fixed, "Europe/Berlin", locale), fixed

    halves = st.builds(lambda whole, digits: whole + digits / 1000, st.integers(-(10**6), 10**6), st.integers(0, 999))

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), halves, st.none()))
    def same(value: float | None) -> None:
        assert fast(value) == fmt.format(value, "Europe/Berlin", locale)

    same()


@pytest.mark.parametrize("locale", _LOCALES)
def test_column_formatters_of_integers_text_and_times_write_what_format_writes(locale: str) -> None:
    from hypothesis import strategies as st

    moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
    columns: list[tuple[Any, str | None, Any]] = [
        (pl.Int64, None, st.integers(-(2**63), 2**63 - 1)),
        (pl.Int64, "integer req", st.integers(-(10**12), 10**12)),
        (pl.Int64, "number:2", st.integers(-(10**12), 10**12)),
        (pl.UInt8, None, st.integers(0, 255)),
        (pl.String, None, st.text()),
        (pl.String, "text", st.text()),
        (pl.Datetime("us", "UTC"), None, moments.map(lambda m: m.replace(tzinfo=UTC))),
        (
            pl.Datetime("us", "America/New_York"),
            None,
            moments.map(lambda m: m.replace(tzinfo=ZoneInfo("America/New_York"))),
        ),
        (pl.Datetime("us"), None, moments),
        (pl.Datetime("us", "UTC"), "datetime:%d.%m.%Y %H:%M", moments.map(lambda m: m.replace(tzinfo=UTC))),
        (pl.Date, None, st.dates()),
        (pl.Date, "datetime", st.dates()),
        (pl.Duration("us"), None, st.timedeltas()),
        (pl.Boolean, None, st.booleans()),
    ]
    for dtype, spec, values in columns:
        fmt = parse_format(spec) if spec else default_format_for(dtype)
        _writes_what_format_writes(fmt, fmt.formatter(dtype, "Europe/Berlin", locale), values, locale)


def _writes_what_format_writes(fmt: Any, fast: Any, values: Any, locale: str) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(st.one_of(values, st.none()))
    def same(value: Any) -> None:
        assert fast(value) == fmt.format(value, "Europe/Berlin", locale), (fmt, value)

    same()
