"""`reportctl schedule list`: next fire times in each spec's zone and in UTC, pinned with --now."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult

Cli = Callable[..., CliResult]

SPEC = """\
apiVersion: reportctl/v1
name: {name}
sources:
  metrics: {{kind: sample, rows: 3}}
sections:
  - {{id: t, type: table, dataset: metrics}}
{schedule}
"""
NOW = "2026-10-31T12:00:00Z"


@pytest.fixture
def specs(project: Path) -> Path:
    folder = project / "specs"
    schedule = "schedule: {cron: '0 9 * * MON-FRI', timezone: Europe/Berlin, jitter: 5m, priority: critical}"
    (folder / "eu-sales.yaml").write_text(SPEC.format(name="eu-sales", schedule=schedule))
    schedule = "schedule: {cron: '30 1 * * *', timezone: America/New_York, misfire_grace: 30m, overlap: queue}"
    (folder / "us-ops.yaml").write_text(SPEC.format(name="us-ops", schedule=schedule))
    (folder / "manual.yaml").write_text(SPEC.format(name="manual", schedule=""))
    return folder


def test_schedule_list_shows_the_next_fires_in_each_zone_and_in_utc(cli: Cli, specs: Path) -> None:
    result = cli("schedule", "list", "--now", NOW)
    assert (result.exit_code, result.stderr) == (0, "")
    # New York falls back on 2026-11-01: 01:30 occurs twice and fires once, in daylight time
    assert result.stdout.splitlines() == [
        "NAME      CRON             TIMEZONE          PRIORITY  NEXT                       NEXT (UTC)"
        "                 PLANNED",
        "eu-sales  0 9 * * MON-FRI  Europe/Berlin     critical  2026-11-02T09:00:00+01:00  2026-11-02T08:00:00+00:00"
        "  2026-11-02T09:02:18+01:00",
        "                                                       2026-11-03T09:00:00+01:00  2026-11-03T08:00:00+00:00",
        "                                                       2026-11-04T09:00:00+01:00  2026-11-04T08:00:00+00:00",
        "us-ops    30 1 * * *       America/New_York  standard  2026-11-01T01:30:00-04:00  2026-11-01T05:30:00+00:00"
        "  2026-11-01T01:30:00-04:00",
        "                                                       2026-11-02T01:30:00-05:00  2026-11-02T06:30:00+00:00",
        "                                                       2026-11-03T01:30:00-05:00  2026-11-03T06:30:00+00:00",
    ]


def test_schedule_list_json(cli: Cli, specs: Path) -> None:
    result = cli("schedule", "list", "--json", "--now", "2026-10-31T13:00:00+01:00")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["eu-sales", "us-ops"]
    assert rows[1] == {
        "name": "us-ops",
        "path": "specs/us-ops.yaml",
        "cron": "30 1 * * *",
        "every": None,
        "timezone": "America/New_York",
        "priority": "standard",
        "rev": None,
        "jitter_seconds": 0,
        "overlap": "queue",
        "misfire_grace_seconds": 1800,
        "next": [
            {
                "scheduled": "2026-11-01T01:30:00-04:00",
                "scheduled_utc": "2026-11-01T05:30:00+00:00",
                "planned": "2026-11-01T01:30:00-04:00",
                "planned_utc": "2026-11-01T05:30:00+00:00",
            },
            {
                "scheduled": "2026-11-02T01:30:00-05:00",
                "scheduled_utc": "2026-11-02T06:30:00+00:00",
                "planned": "2026-11-02T01:30:00-05:00",
                "planned_utc": "2026-11-02T06:30:00+00:00",
            },
            {
                "scheduled": "2026-11-03T01:30:00-05:00",
                "scheduled_utc": "2026-11-03T06:30:00+00:00",
                "planned": "2026-11-03T01:30:00-05:00",
                "planned_utc": "2026-11-03T06:30:00+00:00",
            },
        ],
    }
    eu = rows[0]
    assert (eu["jitter_seconds"], eu["misfire_grace_seconds"], eu["priority"]) == (300, 3600, "critical")
    assert eu["next"][0] == {
        "scheduled": "2026-11-02T09:00:00+01:00",
        "scheduled_utc": "2026-11-02T08:00:00+00:00",
        "planned": "2026-11-02T09:02:18+01:00",
        "planned_utc": "2026-11-02T08:02:18+00:00",
    }


def test_an_invalid_spec_is_reported_and_the_valid_ones_still_listed(cli: Cli, specs: Path) -> None:
    schedule = "schedule: {cron: '0 9 * * *', timezone: Europe/Berlni}"
    (specs / "broken.yaml").write_text(SPEC.format(name="broken", schedule=schedule))
    result = cli("schedule", "list", "--json", "--now", NOW)
    assert result.exit_code == 1
    assert [r["name"] for r in json.loads(result.stdout)] == ["eu-sales", "us-ops"]
    assert result.stderr == (
        f"error: {specs}/broken.yaml:7:41: schedule.timezone: unknown time zone 'Europe/Berlni' "
        "(did you mean 'Europe/Berlin'?); use an IANA name such as Europe/Berlin or UTC\n"
    )
    text = cli("schedule", "list", "--now", NOW)
    assert text.exit_code == 1
    assert [line.split()[0] for line in text.stdout.splitlines() if line[:1].strip()] == ["NAME", "eu-sales", "us-ops"]


def test_schedule_list_without_scheduled_specs(cli: Cli, project: Path) -> None:
    result = cli("schedule", "list")
    assert (result.exit_code, result.stdout) == (0, "no scheduled specs found\n")
    assert cli("schedule", "list", "--json").stdout == "[]\n"


def test_schedule_list_rejects_a_bad_now(cli: Cli, project: Path) -> None:
    result = cli("schedule", "list", "--now", "tomorrow")
    assert result.exit_code == 2
    assert result.stderr == "error: --now: 'tomorrow' is not an ISO 8601 time; use e.g. 2026-11-30T08:55:00+01:00\n"


def test_a_naive_now_is_utc(cli: Cli, specs: Path) -> None:
    naive = json.loads(cli("schedule", "list", "--json", "--now", "2026-10-31T12:00:00").stdout)
    assert naive == json.loads(cli("schedule", "list", "--json", "--now", NOW).stdout)
