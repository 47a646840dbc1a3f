"""Fire times across daylight-saving changes, jitter, due fires after downtime, and the scheduled specs of a project."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reportctl.schedule import Fire, due_fires, fire_times, jitter_offset, planned_time, scheduled_specs

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def iso(fires: list[datetime]) -> list[str]:
    return [f.isoformat() for f in fires]


def fires_on(cron: str, zone: ZoneInfo, year: int, month: int, day: int) -> list[datetime]:
    """The fires during one local calendar day."""
    start = datetime(year, month, day, tzinfo=zone)
    end = start + timedelta(days=1)
    return fire_times(cron, str(zone), start - timedelta(microseconds=1), until=end - timedelta(microseconds=1))


# --- daylight saving ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        # spring forward in Berlin: 02:30 does not exist; it fires once, at 03:00 CEST (01:00 UTC)
        (
            "30 2 * * *",
            BERLIN,
            datetime(2026, 3, 28, 12, tzinfo=BERLIN),
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        # fall back in Berlin: 02:30 occurs twice; it fires once, at the first (summer time) occurrence
        (
            "30 2 * * *",
            BERLIN,
            datetime(2026, 10, 24, 12, tzinfo=BERLIN),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        # spring forward in New York: 02:30 does not exist; it fires once, at 03:00 EDT
        (
            "30 2 * * *",
            NEW_YORK,
            datetime(2026, 3, 7, 12, tzinfo=NEW_YORK),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
        ),
        # fall back in New York: 01:30 occurs twice; it fires once, in daylight time
        (
            "30 1 * * *",
            NEW_YORK,
            datetime(2026, 10, 31, 12, tzinfo=NEW_YORK),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        # times around the change are untouched
        (
            "0 9 * * *",
            BERLIN,
            datetime(2026, 3, 28, 12, tzinfo=BERLIN),
            ["2026-03-29T09:00:00+02:00", "2026-03-30T09:00:00+02:00"],
        ),
    ],
)
def test_wall_clock_schedules_fire_once_across_daylight_saving(
    cron: str, zone: ZoneInfo, after: datetime, expected: list[str]
) -> None:
    assert iso(fire_times(cron, str(zone), after, count=2)) == expected


def test_every_fire_of_a_missing_hour_collapses_into_one_after_the_gap() -> None:
    fires = fires_on("0,30 2,3 * * *", BERLIN, 2026, 3, 29)
    assert iso(fires) == ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]


@pytest.mark.parametrize(
    ("zone", "day", "count"),
    [
        (BERLIN, (2026, 3, 29), 23),
        (BERLIN, (2026, 10, 25), 25),
        (BERLIN, (2026, 6, 1), 24),
        (NEW_YORK, (2026, 3, 8), 23),
        (NEW_YORK, (2026, 11, 1), 25),
    ],
)
def test_hourly_schedules_fire_every_real_hour(zone: ZoneInfo, day: tuple[int, int, int], count: int) -> None:
    fires = fires_on("0 * * * *", zone, *day)
    assert len(fires) == count
    gaps = {(b.astimezone(UTC) - a.astimezone(UTC)) for a, b in pairwise(fires)}
    assert gaps == {timedelta(hours=1)}


def test_the_repeated_hour_fires_at_both_of_its_instants() -> None:
    fires = fire_times("0 * * * *", "Europe/Berlin", datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN), count=4)
    assert iso(fires) == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    assert [f.astimezone(UTC).hour for f in fires] == [23, 0, 1, 2]


def test_a_start_inside_the_first_of_two_repeated_hours_still_sees_the_second() -> None:
    after = datetime(2026, 10, 25, 2, 10, tzinfo=BERLIN)  # summer time, before the clock goes back to 02:00
    fires = fire_times("5 * * * *", "Europe/Berlin", after, count=2)
    assert iso(fires) == ["2026-10-25T02:05:00+01:00", "2026-10-25T03:05:00+01:00"]
    assert iso(fire_times("5 2 * * *", "Europe/Berlin", after, count=1)) == ["2026-10-26T02:05:00+01:00"]


def test_sub_hourly_schedules_keep_their_interval_in_new_york() -> None:
    fires = fire_times("*/30 * * * *", "America/New_York", datetime(2026, 11, 1, 0, 45, tzinfo=NEW_YORK), count=5)
    assert iso(fires) == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]


def test_fire_times_are_strictly_after_and_up_to_until_inclusive() -> None:
    fires = fire_times("0 9 * * *", "UTC", utc(2026, 1, 1, 9), until=utc(2026, 1, 3, 9))
    assert iso(fires) == ["2026-01-02T09:00:00+00:00", "2026-01-03T09:00:00+00:00"]


def test_fire_times_accept_any_zone_for_after() -> None:
    after = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # 09:00 in Berlin: not after itself
    assert iso(fire_times("0 9 * * *", "Europe/Berlin", after, count=1)) == ["2026-12-01T09:00:00+01:00"]


def test_a_cron_that_never_matches_has_no_fires() -> None:
    assert fire_times("0 0 30 2 *", "UTC", utc(2026, 1, 1), count=3) == []


def test_fire_times_needs_a_bound_and_aware_times() -> None:
    with pytest.raises(ValueError, match="count or an until"):
        fire_times("0 9 * * *", "UTC", utc(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        fire_times("0 9 * * *", "UTC", datetime(2026, 1, 1), count=1)


# --- jitter ------------------------------------------------------------------------------------------------------


def test_jitter_is_stable_and_within_the_window() -> None:
    fire = datetime(2026, 11, 30, 9, tzinfo=BERLIN)
    offset = jitter_offset("sales", fire, timedelta(minutes=5))
    assert timedelta(0) <= offset < timedelta(minutes=5)
    assert jitter_offset("sales", fire.astimezone(UTC), timedelta(minutes=5)) == offset  # the instant, not the zone
    assert jitter_offset("sales", fire + timedelta(days=1), timedelta(minutes=5)) != offset
    assert jitter_offset("sales", fire, timedelta(0)) == timedelta(0)
    assert planned_time("sales", fire, timedelta(minutes=5)) == fire + offset


def test_five_thousand_reports_due_the_same_minute_spread_over_the_window() -> None:
    fire = datetime(2026, 11, 30, 9, tzinfo=BERLIN)
    window = timedelta(minutes=5)
    offsets = [jitter_offset(f"spec-{i}", fire, window) for i in range(5000)]
    assert all(timedelta(0) <= o < window for o in offsets)
    buckets = Counter(int(o.total_seconds() // 10) for o in offsets)
    mean = 5000 / 30
    assert sorted(buckets) == list(range(30))
    assert max(buckets.values()) <= 2 * mean
    assert min(buckets.values()) >= mean / 2


def test_planned_time_keeps_real_time_across_the_gap() -> None:
    fire = datetime(2026, 3, 29, 1, 59, tzinfo=BERLIN)
    assert jitter_offset("sales", fire, timedelta(minutes=30)) == timedelta(minutes=9, seconds=1)
    # naive aware arithmetic would give 02:08:01+01:00, a wall time that does not exist
    assert planned_time("sales", fire, timedelta(minutes=30)).isoformat() == "2026-03-29T03:08:01+02:00"


# --- due fires ---------------------------------------------------------------------------------------------------


def due(
    since: datetime | None,
    now: datetime,
    *,
    cron: str = "0 * * * *",
    report: str = "sales",
    jitter: timedelta = timedelta(0),
    misfire_grace: timedelta = timedelta(hours=1),
) -> list[Fire]:
    return due_fires(
        cron, "Europe/Berlin", report=report, jitter=jitter, since=since, now=now, misfire_grace=misfire_grace
    )


def test_a_restart_after_downtime_runs_only_the_latest_fire() -> None:
    fires = due(utc(2026, 6, 1, 8, 0, 30), utc(2026, 6, 1, 11, 0, 30))
    assert [(f.scheduled.astimezone(UTC).hour, f.misfired) for f in fires] == [(9, True), (10, True), (11, False)]
    assert fires[-1].late == timedelta(seconds=30)
    assert fires[-1].scheduled.isoformat() == "2026-06-01T13:00:00+02:00"
    assert fires[0].late == timedelta(hours=2, seconds=30)


def test_outside_the_grace_every_missed_fire_is_misfired() -> None:
    fires = due(utc(2026, 6, 1, 8), utc(2026, 6, 1, 12), cron="0 9 * * *")  # 09:00 Berlin = 07:00 UTC
    assert fires == []
    fires = due(utc(2026, 6, 1, 6), utc(2026, 6, 1, 9, 0, 1), cron="0 9 * * *")
    assert [(f.scheduled.isoformat(), f.misfired) for f in fires] == [("2026-06-01T09:00:00+02:00", True)]
    assert fires[0].late == timedelta(hours=2, seconds=1)
    fires = due(utc(2026, 6, 1, 5), utc(2026, 6, 1, 9, 30), misfire_grace=timedelta(minutes=10))
    assert [f.misfired for f in fires] == [True] * 4


def test_without_an_earlier_tick_only_fires_within_the_grace_are_due() -> None:
    fires = due(None, utc(2026, 6, 1, 11, 30))
    assert [(f.scheduled.astimezone(UTC).hour, f.misfired) for f in fires] == [(11, False)]
    assert due(None, utc(2026, 6, 1, 11, 30), misfire_grace=timedelta(minutes=10)) == []


def test_consecutive_ticks_never_return_a_fire_twice() -> None:
    jitter = timedelta(minutes=7)
    seen: list[datetime] = []
    previous = utc(2026, 10, 24, 20)
    for minute in range(0, 12 * 60, 13):  # ticks every 13 minutes across the Berlin fall-back night
        now = utc(2026, 10, 24, 20) + timedelta(minutes=minute + 13)
        fires = due(previous, now, cron="*/20 * * * *", jitter=jitter, report="ops")
        seen += [f.scheduled for f in fires]
        assert all(previous < f.planned.astimezone(UTC) <= now for f in fires)
        previous = now
    instants = [s.astimezone(UTC) for s in seen]
    start = utc(2026, 10, 24, 20)
    expected = [
        f.astimezone(UTC)
        for f in fire_times("*/20 * * * *", "Europe/Berlin", start - jitter, until=previous)
        if start < planned_time("ops", f, jitter).astimezone(UTC) <= previous
    ]
    assert sorted(instants) == expected
    assert len(expected) == 37  # every 20 real minutes from 20:00 to 08:00 UTC, the repeated hour included


def test_a_fire_inside_its_jitter_window_is_not_due_yet() -> None:
    jitter = timedelta(minutes=5)
    scheduled = datetime(2026, 6, 1, 9, tzinfo=BERLIN)
    planned = planned_time("sales", scheduled, jitter)
    assert planned > scheduled
    before = planned.astimezone(UTC) - timedelta(microseconds=1)
    assert due(scheduled.astimezone(UTC) - timedelta(minutes=1), before, cron="0 9 * * *", jitter=jitter) == []
    fires = due(before, planned.astimezone(UTC), cron="0 9 * * *", jitter=jitter)
    assert fires == [Fire(scheduled, planned, timedelta(0), misfired=False)]


def test_nothing_is_due_when_since_is_not_before_now() -> None:
    assert due(utc(2026, 6, 1, 12), utc(2026, 6, 1, 12)) == []


# --- scheduled specs ---------------------------------------------------------------------------------------------

SPEC = """\
apiVersion: reportctl/v1
name: {name}
sources:
  metrics: {{kind: sample, rows: 3}}
sections:
  - {{id: t, type: table, dataset: metrics}}
{extra}"""


def write(folder: Path, name: str, extra: str, file: str | None = None) -> Path:
    path = folder / (file or f"{name}.yaml")
    path.write_text(SPEC.format(name=name, extra=extra))
    return path


def test_scheduled_specs_skip_unscheduled_disabled_and_abstract_and_report_invalid(project: Path) -> None:
    specs = project / "specs"
    write(specs, "daily", "schedule: {cron: '0 9 * * *', timezone: Europe/Berlin, jitter: 5m, priority: critical}\n")
    write(specs, "manual", "")
    write(specs, "off", "schedule: {cron: '0 9 * * *', enabled: false}\n")
    write(specs, "base", "abstract: true\nschedule: {cron: '0 9 * * *'}\n")
    bad = write(specs, "broken", "schedule: {cron: '0 25 * * *'}\n")
    write(specs, "daily", "schedule: {cron: '0 8 * * *'}\n", file="zz-copy.yaml")
    found, problems = scheduled_specs([specs])
    assert [s.name for s in found] == ["daily"]
    daily = found[0]
    assert (daily.cron, daily.timezone, daily.priority, daily.jitter) == (
        "0 9 * * *",
        "Europe/Berlin",
        "critical",
        timedelta(minutes=5),
    )
    assert (daily.overlap, daily.misfire_grace, daily.retries, daily.timeout) == ("skip", timedelta(hours=1), 0, None)
    assert daily.path == specs / "daily.yaml"
    assert [(p.position.file if p.position else p.file, p.path) for p in problems] == [
        (bad, "schedule.cron"),
        (specs / "zz-copy.yaml", "name"),
    ]
    assert "invalid cron expression '0 25 * * *'" in problems[0].message
    assert problems[1].message == f"report name 'daily' is also used by {specs / 'daily.yaml'}"
