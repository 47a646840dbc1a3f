"""Schedule presets (``every: weekdays at 07:30``): the cron each is read as, the errors for the rest, and that a
preset fires as its cron does, daylight saving included."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import CliResult
from reportctl.cron_presets import PresetError, preset_cron
from reportctl.errors import SpecError
from reportctl.schedule import fire_times
from reportctl.spec.loader import load_spec
from reportctl.spec.models import Schedule
from reportctl.spec.schema import spec_json_schema

Cli = Callable[..., CliResult]
EXAMPLES = (
    "write e.g. 'day at 08:00', 'weekdays at 07:30', 'monday at 09:00', 'month on last day at 18:00', 'hour at :15'"
)
SPEC = """\
apiVersion: reportctl/v1
name: {name}
sources:
  metrics: {{kind: sample, rows: 3}}
sections:
  - {{id: t, type: table, dataset: metrics}}
outputs: [csv]
schedule:
  {schedule}
  timezone: Europe/Berlin
"""


@pytest.mark.parametrize(
    ("preset", "cron"),
    [
        ("hour at :15", "15 * * * *"),
        ("hour at :00", "0 * * * *"),
        ("day at 08:00", "0 8 * * *"),
        ("day at 8:05", "5 8 * * *"),
        ("day at 8am", "0 8 * * *"),
        ("day at 8:30pm", "30 20 * * *"),
        ("day at 12am", "0 0 * * *"),
        ("day at 12pm", "0 12 * * *"),
        ("weekdays at 07:30", "30 7 * * MON-FRI"),
        ("weekday at 07:30", "30 7 * * MON-FRI"),
        ("monday at 09:00", "0 9 * * MON"),
        ("mondays at 09:00", "0 9 * * MON"),
        ("sun at 10:00", "0 10 * * SUN"),
        ("month on first day at 06:00", "0 6 1 * *"),
        ("month on last day at 18:00", "0 18 L * *"),
        ("month on the 15th at 06:00", "0 6 15 * *"),
        ("month on the 1st at 06:00", "0 6 1 * *"),
        ("month on day 28 at 06:00", "0 6 28 * *"),
        ("month on first monday at 09:00", "0 9 * * MON#1"),
        ("month on the 3rd wednesday at 09:00", "0 9 * * WED#3"),
        ("month on fourth friday at 09:00", "0 9 * * FRI#4"),
        ("month on last friday at 17:00", "0 17 * * L5"),
        ("month on last sunday at 17:00", "0 17 * * L7"),
        ("  Every   WEEKDAYS at 7:30AM ", "30 7 * * MON-FRI"),
    ],
)
def test_each_preset_is_read_as_its_cron(preset: str, cron: str) -> None:
    assert preset_cron(preset) == cron
    schedule = Schedule.model_validate({"every": preset})
    assert (schedule.cron, schedule.every) == (cron, preset)


def test_the_month_presets_fire_on_the_days_they_name() -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)
    first_monday = fire_times(preset_cron("month on first monday at 09:00"), "UTC", after, count=3)
    assert [f.date().isoformat() for f in first_monday] == ["2026-01-05", "2026-02-02", "2026-03-02"]
    last_friday = fire_times(preset_cron("month on last friday at 17:00"), "UTC", after, count=3)
    assert [f.date().isoformat() for f in last_friday] == ["2026-01-30", "2026-02-27", "2026-03-27"]


@pytest.mark.parametrize(
    ("preset", "message"),
    [
        ("every tuesdy at 9", f"cannot read 'every tuesdy at 9' (did you mean 'tuesday'?); {EXAMPLES}"),
        ("tuesday at 9", f"cannot read 'tuesday at 9' ('9' is not a time such as 09:00 or 9am); {EXAMPLES}"),
        ("day at 24:00", f"cannot read 'day at 24:00' ('24:00' is not a time such as 09:00 or 9am); {EXAMPLES}"),
        ("daily", f"cannot read 'daily' (did you mean 'day'?); {EXAMPLES}"),
        ("hour at 15", f"cannot read 'hour at 15' (an hourly time is :MM, e.g. ':15'); {EXAMPLES}"),
        ("month on fifth monday at 09:00", f"cannot read 'month on fifth monday at 09:00'; {EXAMPLES}"),
        (
            "month on first mondy at 09:00",
            f"cannot read 'month on first mondy at 09:00' (did you mean 'monday'?); {EXAMPLES}",
        ),
        (
            "month on the 31st at 09:00",
            "cannot read 'month on the 31st at 09:00' as a schedule: day 31 is not in every month, so it would skip "
            "some; write 'month on last day at 09:00', or a cron such as '0 9 31 * *'",
        ),
    ],
)
def test_a_preset_out_of_the_grammar_is_refused_in_one_line(preset: str, message: str) -> None:
    with pytest.raises(PresetError) as caught:
        preset_cron(preset)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        (
            "every: 'monday at 09:00'\n  cron: '0 9 * * MON'",
            "specs/report.yaml:10:9: schedule.cron: give cron '0 9 * * MON' or every 'monday at 09:00', not both "
            "(null drops one a base spec gives)",
        ),
        (
            "jitter: 5m",
            "specs/report.yaml:9:3: schedule.cron: missing required key 'cron' (or 'every'), "
            "e.g. cron: '0 9 * * MON' or every: 'day at 08:00'",
        ),
        (
            "every: 'the 31st'",
            f"specs/report.yaml:9:10: schedule.every: cannot read 'the 31st'; {EXAMPLES}",
        ),
    ],
)
def test_a_spec_gives_a_cron_or_a_preset(project: Path, schedule: str, problem: str) -> None:
    spec = project / "specs" / "report.yaml"
    spec.write_text(SPEC.format(name="report", schedule=schedule))
    with pytest.raises(SpecError) as caught:
        load_spec(spec, check=False)
    assert [str(p).replace(f"{project}/", "") for p in caught.value.problems] == [problem]


def test_a_preset_at_a_missing_wall_time_fires_as_its_cron_does_across_daylight_saving() -> None:
    """02:30 does not exist in Berlin on 2026-03-29 (fires once at 03:00) and occurs twice on 2026-10-25 (fires
    once, at the first)."""
    schedule = Schedule.model_validate({"every": "day at 02:30", "timezone": "Europe/Berlin"})
    spring = fire_times(schedule.cron, schedule.timezone, datetime(2026, 3, 27, 12, tzinfo=UTC), count=4)
    assert [f.isoformat() for f in spring] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    autumn = fire_times(schedule.cron, schedule.timezone, datetime(2026, 10, 24, 12, tzinfo=UTC), count=2)
    assert [f.astimezone(UTC).isoformat() for f in autumn] == ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
    assert spring == fire_times("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 27, 12, tzinfo=UTC), count=4)


def test_hour_at_fires_every_real_hour_across_daylight_saving() -> None:
    day = fire_times(
        preset_cron("hour at :15"),
        "Europe/Berlin",
        datetime(2026, 3, 28, 23, tzinfo=UTC),
        until=datetime(2026, 3, 29, 22, tzinfo=UTC),
    )
    assert len(day) == 23  # the spring-forward day has 23 hours, and the preset fires in each


def test_last_day_of_the_month_across_months_of_28_29_30_and_31_days() -> None:
    schedule = Schedule.model_validate({"every": "month on last day at 18:00", "timezone": "Europe/Berlin"})
    fires = fire_times(schedule.cron, schedule.timezone, datetime(2026, 1, 10, tzinfo=UTC), count=4)
    assert [f.isoformat() for f in fires] == [
        "2026-01-31T18:00:00+01:00",
        "2026-02-28T18:00:00+01:00",
        "2026-03-31T18:00:00+02:00",
        "2026-04-30T18:00:00+02:00",
    ]
    leap = fire_times(schedule.cron, schedule.timezone, datetime(2028, 2, 1, tzinfo=UTC), count=1)
    assert [f.isoformat() for f in leap] == ["2028-02-29T18:00:00+01:00"]


def test_a_preset_spec_fires_at_a_tick(
    cli: Cli, project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORTCTL_STATE_URL", store_url)
    (project / "specs" / "daily.yaml").write_text(SPEC.format(name="daily", schedule="every: day at 08:00"))
    result = cli("schedule", "tick", "--now", "2026-11-30T08:05:00+01:00", "--json")
    assert result.exit_code == 0, result.stderr
    (fire,) = json.loads(result.stdout)["fires"]
    assert (fire["report"], fire["scheduled"], fire["state"]) == ("daily", "2026-11-30T08:00:00+01:00", "COMPLETED")
    again = cli("schedule", "tick", "--now", "2026-11-30T09:05:00+01:00", "--json")
    assert json.loads(again.stdout)["fires"] == []


def test_validate_notes_the_cron_and_the_next_three_fires(cli: Cli, project: Path) -> None:
    spec = project / "specs" / "weekly.yaml"
    spec.write_text(SPEC.format(name="weekly", schedule="every: monday at 09:00"))
    result = cli("validate", "specs/weekly.yaml")
    assert (result.exit_code, result.stderr) == (0, "")
    note, summary = result.stdout.splitlines()
    fire = r"\d{4}-\d\d-\d\dT09:00:00\+0[12]:00"
    assert re.fullmatch(
        rf"specs/weekly\.yaml:9:10: schedule\.every: note: every 'monday at 09:00' is cron '0 9 \* \* MON' in "
        rf"Europe/Berlin; next fires {fire}, {fire}, {fire}",
        note,
    ), note
    fires = [datetime.fromisoformat(f) for f in re.findall(fire, note)]
    assert all(f.weekday() == 0 and f > datetime.now(UTC) for f in fires)
    assert summary == "1 file valid (1 note)"


def test_schedule_list_shows_the_preset_beside_its_cron(cli: Cli, project: Path) -> None:
    (project / "specs" / "daily.yaml").write_text(SPEC.format(name="daily", schedule="every: day at 08:00"))
    (project / "specs" / "hourly.yaml").write_text(SPEC.format(name="hourly", schedule="cron: '0 * * * *'"))
    result = cli("schedule", "list", "--now", "2026-11-30T12:00:00Z")
    assert (result.exit_code, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "CRON", "EVERY", "TIMEZONE"]
    assert lines[1].startswith("daily   0 8 * * *  day at 08:00  Europe/Berlin  standard  2026-12-01T08:00:00+01:00")
    assert lines[4].startswith("hourly  0 * * * *  -             Europe/Berlin  standard  2026-11-30T14:00:00+01:00")
    rows = json.loads(cli("schedule", "list", "--json", "--now", "2026-11-30T12:00:00Z").stdout)
    assert [(r["name"], r["cron"], r["every"]) for r in rows] == [
        ("daily", "0 8 * * *", "day at 08:00"),
        ("hourly", "0 * * * *", None),
    ]


def test_the_schema_shows_every_with_examples() -> None:
    schedule = spec_json_schema()["$defs"]["Schedule"]
    every = schedule["properties"]["every"]
    assert "month on last day at 18:00" in every["examples"] and "hour at :15" in every["examples"]
    assert "cron" not in schedule.get("required", [])


def test_a_spec_extending_a_cron_schedule_drops_it_with_null_for_a_preset(project: Path) -> None:
    base = SPEC.format(name="base", schedule="cron: '0 9 * * MON'").replace("name: base", "name: base\nabstract: true")
    (project / "specs" / "base.yaml").write_text(base)
    child = project / "specs" / "child.yaml"
    child.write_text(
        "apiVersion: reportctl/v1\nname: child\nextends: base.yaml\n"
        "schedule: {cron: null, every: 'month on last day at 18:00'}\n"
    )
    schedule = load_spec(child, check=False).spec.schedule
    assert schedule is not None
    assert (schedule.cron, schedule.every, schedule.timezone) == (
        "0 18 L * *",
        "month on last day at 18:00",
        "Europe/Berlin",
    )
