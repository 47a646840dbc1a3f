"""Schedule presets: ``every: weekdays at 07:30`` read as the five-field cron it means.

A preset is translated once, when the spec is read, so everything that reads ``schedule.cron`` (the daemon, tick,
Celery, jitter, misfire grace, the daylight-saving rules of ``reportctl.schedule.triggers``) treats it as that cron.
Only what a cron can say is a preset; anything else is refused, not scheduled some other way.

The grammar (case-insensitive; extra spaces and a leading ``every`` are ignored):

    hour at :MM                               MM * * * *
    day at TIME                               M H * * *
    weekdays at TIME (or weekday)             M H * * MON-FRI
    monday at TIME (or mondays, mon)          M H * * MON
    month on [the] first day at TIME          M H 1 * *
    month on [the] last day at TIME           M H L * *
    month on [the] 15th at TIME               M H 15 * *   (days 1 to 28: a later day is not in every month)
    month on day 15 at TIME                   M H 15 * *
    month on [the] first monday at TIME       M H * * MON#1   (first, second, third, fourth or 1st .. 4th)
    month on [the] last friday at TIME        M H * * L5

TIME is 24-hour ``08:00`` or ``8:00``, or 12-hour ``8am``, ``8:30pm``; a bare ``8`` is refused (08:00 or 20:00?).
"""

from __future__ import annotations

import re

from reportctl.errors import did_you_mean

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EXAMPLES = ("day at 08:00", "weekdays at 07:30", "monday at 09:00", "month on last day at 18:00", "hour at :15")
_UNITS = ("day", "hour", "month", "weekdays")
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4}
_CLOCK_24 = re.compile(r"(\d{1,2}):(\d{2})")
_CLOCK_12 = re.compile(r"(\d{1,2})(?::(\d{2}))? ?([ap])\.?m\.?")
_DAY_OF_MONTH = re.compile(r"(?:day (\d{1,2})|(\d{1,2})(?:st|nd|rd|th))")


class PresetError(ValueError):
    """A preset that is not in the grammar; the message is one line and shows what would be."""


def preset_cron(preset: str) -> str:
    """The five-field cron that ``preset`` (e.g. 'month on first monday at 09:00') means; ``PresetError`` if none."""
    text = " ".join(preset.lower().split()).removeprefix("every ")
    when, at, time = text.rpartition(" at ")
    if not at:
        raise _unreadable(preset, text)
    if when == "hour":
        past = re.fullmatch(r":(\d{2})", time)
        if past is None or int(past[1]) > 59:
            raise _unreadable(preset, text, " (an hourly time is :MM, e.g. ':15')")
        return f"{int(past[1])} * * * *"
    days = _days(when.removeprefix("month on ").removeprefix("the "))
    if days is None:
        raise _unreadable(preset, text)
    clock = _clock(time)
    if clock is None:
        raise _unreadable(preset, text, f" ('{time}' is not a time such as 09:00 or 9am)")
    hour, minute = clock
    day_of_month = days.split()[0]
    if day_of_month.isdigit() and int(day_of_month) > 28:
        raise PresetError(
            f"cannot read '{preset}' as a schedule: day {day_of_month} is not in every month, so it would skip "
            f"some; write 'month on last day at {hour:02}:{minute:02}', or a cron such as "
            f"'{minute} {hour} {day_of_month} * *'"
        )
    return f"{minute} {hour} {days}"


def _days(when: str) -> str | None:
    """The day-of-month, month and day-of-week fields for ``when`` (any 'month on the' removed), or None."""
    if when == "day":
        return "* * *"
    if when in ("weekday", "weekdays"):
        return "* * MON-FRI"
    if day := _day_name(when):
        return f"* * {day[:3].upper()}"
    if when in ("first day", "last day"):
        return "1 * *" if when == "first day" else "L * *"
    if number := _DAY_OF_MONTH.fullmatch(when):
        day_of_month = int(number[1] or number[2])
        return f"{day_of_month} * *" if 1 <= day_of_month <= 31 else None
    nth, _, name = when.partition(" ")
    day = _day_name(name)
    if day and nth in _ORDINALS:
        return f"* * {day[:3].upper()}#{_ORDINALS[nth]}"
    if day and nth == "last":
        return f"* * L{DAYS.index(day) + 1}"  # croniter's 'last <weekday> of the month'; Monday is 1, Sunday 7
    return None


def _day_name(word: str) -> str | None:
    """``word`` as a day name ('mondays' and 'mon' too), or None."""
    singular = word.removesuffix("s")
    return next((day for day in DAYS if singular in (day, day[:3])), None)


def _clock(time: str) -> tuple[int, int] | None:
    """(hour, minute) of '08:00', '8:00', '8am' or '8:30 pm', or None."""
    if match := _CLOCK_24.fullmatch(time):
        hour, minute = int(match[1]), int(match[2])
        return (hour, minute) if hour <= 23 and minute <= 59 else None
    if match := _CLOCK_12.fullmatch(time):
        hour, minute = int(match[1]), int(match[2] or 0)
        if not 1 <= hour <= 12 or minute > 59:
            return None
        return (hour % 12 + (12 if match[3] == "p" else 0), minute)
    return None


def _unreadable(preset: str, text: str, hint: str = "") -> PresetError:
    """The one-line error for a preset out of the grammar, with a did-you-mean for a misspelt day or unit."""
    if not hint:
        known = {*DAYS, *(f"{day}s" for day in DAYS), *_UNITS, "weekday", "every", "on", "the", "at", "first", "last"}
        words = [w for w in re.findall(r"[a-z]+", text.partition(" at ")[0]) if w not in known and w not in _ORDINALS]
        hint = next((h for w in words if (h := did_you_mean(w, [*DAYS, *_UNITS]))), "")
    examples = ", ".join(f"'{example}'" for example in EXAMPLES)
    return PresetError(f"cannot read '{preset}'{hint}; write e.g. {examples}")


__all__ = ["DAYS", "EXAMPLES", "PresetError", "preset_cron"]
