"""The texts every writer shows alike."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from reportctl.document import ParameterValue, Period
from reportctl.writers.display import parameter_text, rows_note

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("formats", "note"),
    [
        ((), "Showing 1,000 of 48,213 rows."),
        (("pdf", "xlsx"), "Showing 1,000 of 48,213 rows; full data in the Excel output."),
        (("pdf", "csv", "xlsx"), "Showing 1,000 of 48,213 rows; full data in the Excel and CSV outputs."),
        (("json", "csv", "xlsx"), "Showing 1,000 of 48,213 rows; full data in the Excel, CSV and JSON outputs."),
    ],
)
def test_rows_note_names_the_outputs_with_every_row(formats: tuple[str, ...], note: str) -> None:
    assert rows_note(1000, 48213, formats) == note


def test_no_note_when_every_row_is_shown() -> None:
    assert rows_note(12, 12, ("xlsx",)) is None


def test_a_period_reads_as_its_first_and_last_day() -> None:
    period = Period("last_week", datetime(2026, 11, 16, tzinfo=BERLIN), datetime(2026, 11, 23, tzinfo=BERLIN))
    assert parameter_text(ParameterValue("period", "Period", "period", period), "Europe/Berlin") == (
        "2026-11-16 \N{EN DASH} 2026-11-22"
    )


@pytest.mark.parametrize(("value", "text"), [(0.995, "0.995"), (2.5, "2.5"), (1234567.25, "1,234,567.25"), (3, "3")])
def test_numbers_read_as_given(value: float, text: str) -> None:
    assert parameter_text(ParameterValue("objective", "Objective", "float", value), "UTC") == text


def test_a_one_day_period_shows_its_day_once() -> None:
    day = Period("yesterday", datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC))
    assert parameter_text(ParameterValue("period", "Period", "period", day), "UTC") == "2026-12-02"
    week = Period("last_7_days", datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC))
    assert (
        parameter_text(ParameterValue("period", "Period", "period", week), "UTC") == "2026-11-26 \N{EN DASH} 2026-12-02"
    )
