"""Bursting: one variant per recipient group, filtered for the group, delivered only to it, never twice."""

from __future__ import annotations

import csv
import email
import email.policy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult

Cli = Callable[..., CliResult]

PEOPLE = """\
people:
  - {email: alice@example.com, name: Alice, teams: [frontend]}
  - {email: ann@example.com, name: Ann, teams: [frontend]}
  - {email: bob@example.com, name: Bob, teams: [sre]}
  - {email: carol@example.com, name: Carol, teams: [backend]}
"""

POLICIES = """\
rules:
  - who: [team:frontend]
    allow: {team: [frontend]}
  - who: [alice@example.com]
    allow: {team: [platform]}
  - who: [team:sre]
    allow: all
  - who: [team:backend]
    allow: {team: [backend, platform]}
"""

SPEC = """\
apiVersion: reportctl/v1
name: incidents
title: Incidents
sources:
  inc: {kind: file, path: data/incidents.csv, protected_by: team}
datasets:
  by_team: {from: inc, group_by: [team], aggregate: {minutes: sum(minutes)}, sort: [team]}
sections:
  - {id: t, type: table, dataset: by_team}
outputs: [csv]
burst: {by: BY}
delivery:
  - {channel: file, to: [team:frontend, team:backend, bob@example.com]}
"""


@pytest.fixture
def bursting(project: Path) -> Path:
    (project / "data").mkdir()
    (project / "data" / "incidents.csv").write_text(
        "id,team,minutes\n1,frontend,30\n2,backend,45\n3,frontend,10\n4,platform,60\n"
    )
    (project / "people.yaml").write_text(PEOPLE)
    (project / "policies.yaml").write_text(POLICIES)
    (project / "specs" / "incidents.yaml").write_text(SPEC.replace("BY", "team"))
    return project


def _outbox(project: Path) -> dict[str, list[str]]:
    """Each message in the outbox: its To addresses -> the teams in the CSV it carries."""
    sent: dict[str, list[str]] = {}
    for message_file in sorted((project / "outbox" / "incidents").glob("*/message.eml")):
        message = email.message_from_bytes(message_file.read_bytes(), policy=email.policy.default)
        to = ",".join(sorted(a.strip() for a in str(message["To"]).split(",")))
        (data,) = message_file.parent.glob("*.csv")
        rows = list(csv.DictReader(line for line in data.read_text().splitlines() if not line.startswith("#")))
        sent[to] = [row["team"] for row in rows]
    return sent


def _runs(cli: Cli) -> list[dict[str, Any]]:
    result = cli("runs", "list", "--json")
    assert result.exit_code == 0, result.stderr
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


def test_each_team_gets_the_rows_all_its_members_may_see_and_only_its_variant(cli: Cli, bursting: Path) -> None:
    result = cli("render", "specs/incidents.yaml", "--deliver")
    assert result.exit_code == 0, result.stderr
    # alice may also see platform rows, but Ann may not: the frontend variant shows frontend only
    assert _outbox(bursting) == {
        "alice@example.com,ann@example.com": ["frontend"],
        "carol@example.com": ["backend", "platform"],
        "bob@example.com": ["backend", "frontend", "platform"],
    }
    runs = _runs(cli)
    (burst,) = [r for r in runs if r["trigger"] == "manual"]
    variants = [r for r in runs if r["trigger"] == "burst"]
    assert burst["state"] == "COMPLETED" and burst["artifacts"] == []
    assert sorted(v["viewer"] for v in variants) == ["bob@example.com", "team:backend", "team:frontend"]
    assert {v["burst_of"] for v in variants} == {burst["id"]}
    assert all(v["state"] == "COMPLETED" for v in variants)
    frontend = next(v for v in variants if v["viewer"] == "team:frontend")
    assert frontend["audience"] == ["alice@example.com", "ann@example.com"]


def test_by_recipient_gives_everyone_their_own_rows(cli: Cli, bursting: Path) -> None:
    (bursting / "specs" / "incidents.yaml").write_text(SPEC.replace("BY", "recipient"))
    assert cli("render", "specs/incidents.yaml", "--deliver").exit_code == 0
    assert _outbox(bursting) == {
        "alice@example.com": ["frontend", "platform"],
        "ann@example.com": ["frontend"],
        "carol@example.com": ["backend", "platform"],
        "bob@example.com": ["backend", "frontend", "platform"],
    }


def test_a_variant_delivered_again_reaches_only_its_recorded_group(cli: Cli, bursting: Path) -> None:
    assert cli("render", "specs/incidents.yaml", "--deliver").exit_code == 0
    frontend = next(r for r in _runs(cli) if r["viewer"] == "team:frontend")
    # carol joins frontend after the run: the frontend variant was filtered for alice and ann, not for her
    (bursting / "people.yaml").write_text(PEOPLE.replace("teams: [backend]", "teams: [backend, frontend]"))
    result = cli("deliver", frontend["id"], "--retry-failed", "--json")
    assert result.exit_code == 0, result.stderr
    shown = cli("runs", "show", frontend["id"], "--json")
    recipients = sorted(d["recipient"] for d in json.loads(shown.stdout)["deliveries"]["recipients"])
    assert recipients == ["alice@example.com", "ann@example.com"]


def test_a_retried_fire_renders_only_the_variants_that_failed_and_sends_nothing_twice(
    cli: Cli, bursting: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from reportctl.burst import BurstFailed, render_burst
    from reportctl.config import find_project
    from reportctl.errors import SourceError
    from reportctl.spec.loader import load_spec
    from reportctl.state import open_store, recording

    real = recording.render_recorded
    rendered: list[str] = []

    def backend_down_once(*args: Any, **kwargs: Any) -> Any:
        group = str(kwargs["viewer"])
        rendered.append(group)
        if group == "team:backend" and rendered.count(group) == 1:
            raise SourceError("inc", "file data/incidents.csv", "backend's share is down")
        return real(*args, **kwargs)

    monkeypatch.setattr(recording, "render_recorded", backend_down_once)
    loaded = load_spec(bursting / "specs" / "incidents.yaml")
    fire = datetime(2026, 12, 4, 8, tzinfo=UTC)
    with open_store(find_project(bursting)) as store:
        first = store.create_run("incidents", trigger="schedule", spec_path=str(loaded.path), scheduled_for=fire)
        with pytest.raises(BurstFailed, match="1 of 3 variants failed: team:backend: source 'inc'") as failed:
            render_burst(store, loaded, first.id, now=fire)
        assert isinstance(failed.value, SourceError)  # retried by the schedule like any source failure
        assert store.get_run(first.id).state.value == "FAILED"
        assert sorted(_outbox(bursting)) == ["alice@example.com,ann@example.com", "bob@example.com"]
        retry = store.create_run("incidents", trigger="retry", spec_path=str(loaded.path), scheduled_for=fire)
        result = render_burst(store, loaded, retry.id, now=fire)
        assert store.get_run(retry.id).state.value == "COMPLETED"
    assert rendered == ["team:frontend", "team:backend", "bob@example.com", "team:backend"]
    assert [(v.audience.key, v.earlier) for v in result.variants] == [
        ("team:frontend", True), ("team:backend", False), ("bob@example.com", True),
    ]  # fmt: skip
    assert len(list((bursting / "outbox" / "incidents").glob("*/message.eml"))) == 3
    assert _outbox(bursting)["carol@example.com"] == ["backend", "platform"]


def test_validate_says_what_a_burst_needs(cli: Cli, bursting: Path) -> None:
    assert cli("validate", "specs").exit_code == 0
    spec = SPEC.replace("BY", "team").replace(", protected_by: team", "")
    spec += "  - {channel: webhook, url: 'https://hooks.example.com/x'}\n"
    (bursting / "specs" / "incidents.yaml").write_text(spec)
    lines = cli("validate", "specs/incidents.yaml").stdout.splitlines()
    assert lines[0].endswith(
        "burst: a burst gives each recipient group the rows its policy allows, and no source has protected_by; "
        "protect a source or remove burst"
    )
    assert lines[1].endswith(
        "delivery[1].channel: a burst sends each variant only to its own recipients, and a webhook delivery has "
        "none; move it to a spec without burst"
    )


def test_a_batch_delivers_each_variant_and_counts_their_files(cli: Cli, bursting: Path) -> None:
    result = cli("render", "specs", "--deliver", "--jobs", "1", "--json")
    assert result.exit_code == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["burst"] is True and line["exit_code"] == 0
    assert sorted(v["group"] for v in line["variants"]) == ["bob@example.com", "team:backend", "team:frontend"]
    assert all(v["delivery"]["counts"] == {"file": {"sent": len(v["recipients"])}} for v in line["variants"])


def test_explain_and_render_as_a_group_show_its_variant(cli: Cli, bursting: Path) -> None:
    result = cli("explain", "specs/incidents.yaml", "--as", "team:frontend")
    assert result.stdout.splitlines()[:3] == [
        "incidents for team:frontend (2 members: rows all of them may see), under policies.yaml",
        "sources",
        "  inc      protected_by team: team is frontend  (by policies.yaml:2, policies.yaml:4)",
    ]
    result = cli("render", "specs/incidents.yaml", "--as", "team:frontend", "--no-state", "--json")
    assert json.loads(result.stdout)["access"]["audience"] == ["alice@example.com", "ann@example.com"]


def test_the_audit_log_has_the_burst_and_each_variants_filters(cli: Cli, bursting: Path) -> None:
    assert cli("--actor", "ops-bot", "render", "specs/incidents.yaml", "--deliver").exit_code == 0
    entries = json.loads(cli("audit", "--json").stdout)
    policies = sorted(
        (e["detail"]["viewer"], e["detail"]["filters"]["inc"]) for e in entries if e["action"] == "policy"
    )
    assert policies == [
        ("bob@example.com", "every row"),
        ("team:backend", "team is backend or platform"),
        ("team:frontend", "team is frontend"),
    ]
    renders = [e for e in entries if e["action"] == "render"]
    assert len(renders) == 4 and {e["actor"] for e in renders} == {"ops-bot"}


def test_a_variant_replays_byte_for_byte_for_the_group_it_was_filtered_for(cli: Cli, bursting: Path) -> None:
    (bursting / "reportctl.yaml").write_text("timezone: UTC\nsnapshots: true\n")
    (bursting / "specs" / "incidents.yaml").write_text(SPEC.replace("BY", "team").replace("[csv]", "[csv, md]"))
    assert cli("render", "specs/incidents.yaml", "--deliver").exit_code == 0
    frontend = next(r for r in _runs(cli) if r["viewer"] == "team:frontend")
    # the team changes afterwards: the replay is still the variant its members of then got
    (bursting / "people.yaml").write_text(PEOPLE.replace("teams: [backend]", "teams: [backend, frontend]"))
    result = cli("replay", frontend["id"], "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert {f["verdict"] for f in json.loads(result.stdout)["files"]} == {"identical"}
