"""Row-level policies: `render --as`, `explain --as`, validate, and the filter before joins, summaries and cache."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult

Cli = Callable[..., CliResult]

PEOPLE = """\
people:
  - {email: alice@example.com, name: Alice, teams: [frontend]}
  - {email: bob@example.com, name: Bob, teams: [sre]}
  - {email: carol@example.com, name: Carol, teams: [backend], lists: [leads]}
lists:
  oncall: [team:sre, dave@example.com]
"""

POLICIES = """\
rules:
  - who: [alice@example.com]
    allow: {team: [frontend]}
  - who: [team:sre]
    allow: all
  - who: [team:backend]
    allow: {team: backend}
  - who: [list:leads]
    allow: {team: [platform]}
  - who: [list:oncall]
    allow: {team: [frontend]}
"""

INCIDENTS = "id,team,minutes\n1,frontend,30\n2,backend,45\n3,frontend,10\n4,platform,60\n5,,5\n"

SPEC = """\
apiVersion: reportctl/v1
name: incidents
title: Incidents
sources:
  inc: {kind: file, path: data/incidents.csv, protected_by: team}
  owners: {kind: file, path: data/owners.csv}
datasets:
  joined:
    from: owners
    join: [{dataset: inc, on: team, how: left}]
  by_team: {from: inc, group_by: [team], aggregate: {minutes: sum(minutes), n: count()}, sort: [team]}
sections:
  - {id: k, type: kpis, items: [{label: Minutes, value: "sum(by_team.minutes)", format: integer}]}
  - {id: t, type: table, dataset: by_team}
  - {id: j, type: table, dataset: joined}
outputs: [csv, json]
"""


@pytest.fixture
def protected(project: Path) -> Path:
    (project / "data").mkdir()
    (project / "data" / "incidents.csv").write_text(INCIDENTS)
    (project / "data" / "owners.csv").write_text("team,owner\nfrontend,ann\nbackend,ben\nplatform,pat\n")
    (project / "people.yaml").write_text(PEOPLE)
    (project / "policies.yaml").write_text(POLICIES)
    (project / "specs" / "incidents.yaml").write_text(SPEC)
    return project


def _render(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli("render", "specs/incidents.yaml", "--no-state", "--json", *args)
    assert result.exit_code == 0, result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def _document(payload: dict[str, Any]) -> dict[str, Any]:
    (path,) = [a["path"] for a in payload["artifacts"] if a["format"] == "json"]
    document: dict[str, Any] = json.loads(Path(path).read_text())
    return document


def _section(document: dict[str, Any], section: str) -> dict[str, Any]:
    (found,) = [s for s in document["sections"] if s["id"] == section]
    return found


@pytest.mark.parametrize(
    ("viewer", "teams", "minutes"),
    [
        ("alice@example.com", ["frontend"], 40),
        ("Alice", ["frontend"], 40),  # a name in the directory
        ("bob@example.com", ["", "backend", "frontend", "platform"], 150),  # allow: all, the empty team too
        ("carol@example.com", ["backend", "platform"], 105),  # team:backend and list:leads, a single value
        ("dave@example.com", ["frontend"], 40),  # a list naming an address outside the directory
    ],
)
def test_a_viewer_sees_the_rows_their_rules_allow_in_tables_kpis_and_summaries(
    cli: Cli, protected: Path, viewer: str, teams: list[str], minutes: int
) -> None:
    payload = _render(cli, "--as", viewer)
    document = _document(payload)
    table = _section(document, "t")
    assert sorted(row["team"] or "" for row in table["rows"]) == teams
    assert _section(document, "k")["items"][0]["value"] == minutes
    assert table["summary"]["minutes"]["max"] == max(row["minutes"] for row in table["rows"])
    csv = Path(next(a["path"] for a in payload["artifacts"] if a["format"] == "csv")).read_text()
    assert ("backend" in csv) == ("backend" in teams)
    assert payload["access"]["viewer"] in {viewer, "alice@example.com"}


def test_the_filter_applies_before_a_join(cli: Cli, protected: Path) -> None:
    document = _document(_render(cli, "--as", "alice@example.com"))
    assert _section(document, "_access")["markdown"] == (
        "Filtered for **alice@example.com**: only the rows where team is frontend."
    )
    joined = _section(document, "j")
    # every owner stays (the join is a left join from owners), but only frontend's incidents reach it
    assert sorted((row["team"], row["minutes"]) for row in joined["rows"]) == [
        ("backend", None), ("frontend", 10), ("frontend", 30), ("platform", None),
    ]  # fmt: skip


def test_a_viewer_no_rule_names_sees_no_rows_and_the_report_says_so(cli: Cli, protected: Path) -> None:
    payload = _render(cli, "--as", "mallory@example.com")
    document = _document(payload)
    assert _section(document, "t")["rows"] == []
    note = _section(document, "_access")["markdown"]
    assert note.startswith("Filtered for **mallory@example.com**: policies.yaml gives this viewer no rows of inc")
    manifest = json.loads(Path(payload["manifest"]).read_text())
    assert manifest["access"] == {"viewer": "mallory@example.com", "filters": {"inc": "no rows"}, "rules": {"inc": []}}


def test_without_a_viewer_the_owner_sees_every_row_and_no_note(cli: Cli, protected: Path) -> None:
    payload = _render(cli)
    document = _document(payload)
    assert len(_section(document, "t")["rows"]) == 4
    assert all(s["id"] != "_access" for s in document["sections"])
    assert payload["access"] is None


def test_require_viewer_refuses_an_unfiltered_render(cli: Cli, protected: Path) -> None:
    (protected / "policies.yaml").write_text("require_viewer: true\n" + POLICIES)
    result = cli("render", "specs/incidents.yaml", "--no-state")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {protected / 'specs' / 'incidents.yaml'}: reads protected source 'inc', and policies.yaml sets "
        "require_viewer; render with --as USER (or burst)"
    )
    assert not (protected / "out").exists()
    assert _render(cli, "--as", "alice@example.com")["access"]["filters"] == {"inc": "team is frontend"}
    (protected / "specs" / "incidents.yaml").write_text(SPEC + "schedule: {cron: '0 8 * * *'}\n")
    result = cli("validate", "specs/incidents.yaml")
    assert result.exit_code == 1
    assert "schedule: a scheduled run renders without a viewer, and reads protected source 'inc'" in result.stdout


def test_as_with_deliver_is_refused(cli: Cli, protected: Path) -> None:
    result = cli("render", "specs/incidents.yaml", "--as", "alice@example.com", "--deliver")
    assert result.exit_code == 2
    assert "--as renders one viewer's rows" in result.stderr


def test_a_missing_protected_column_is_one_line_naming_the_source(cli: Cli, protected: Path) -> None:
    # SELECT *: validate cannot know the columns, so the run finds the column missing when it reads the rows
    with sqlite3.connect(protected / "app.db") as db:
        db.execute("CREATE TABLE incidents (id INTEGER, squad TEXT)")
        db.execute("INSERT INTO incidents VALUES (1, 'frontend')")
    (protected / "specs" / "incidents.yaml").write_text(
        "apiVersion: reportctl/v1\nname: incidents\nsources:\n"
        "  inc: {kind: sql, url: 'sqlite:///app.db', query: 'SELECT * FROM incidents', protected_by: team}\n"
        "sections:\n  - {id: t, type: table, dataset: inc}\noutputs: [json]\n"
    )
    result = cli("render", "specs/incidents.yaml", "--no-state", "--as", "alice@example.com")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: source 'inc' is protected_by 'team', but its rows have no such column; columns: id, squad"
    )
    assert not (protected / "out").exists()


def test_validate_checks_the_protection_and_the_policies(cli: Cli, protected: Path) -> None:
    assert cli("validate", "specs", "reportctl.yaml").exit_code == 0
    (protected / "specs" / "incidents.yaml").write_text(SPEC.replace("protected_by: team", "protected_by: teams"))
    result = cli("validate", "specs/incidents.yaml")
    assert result.exit_code == 1
    assert "sources.inc.protected_by: the source has no column 'teams' (did you mean 'team'?)" in result.stdout
    (protected / "specs" / "incidents.yaml").write_text(SPEC)
    (protected / "policies.yaml").unlink()
    result = cli("validate", "specs/incidents.yaml")
    assert "sources.inc.protected_by: the project has no policies; add policies.yaml" in result.stdout
    (protected / "policies.yaml").write_text(POLICIES + "  - {who: [team:nope], allow: {team: [x]}}\n")
    result = cli("validate", "reportctl.yaml")
    assert result.exit_code == 1
    assert "policies.yaml:12:5: rules[5].who: team 'nope' is not in people.yaml" in result.stdout
    (protected / "policies.yaml").write_text("rules:\n  - {who: [someone], allow: {team: [{a: 1}]}}\n")
    lines = cli("validate", "reportctl.yaml").stdout.splitlines()
    assert lines[0].endswith("rules[0].who: 'someone' is not an email address (no '@'); write user@example.com, "
                             "team:NAME or list:NAME (or '*' for everyone)")  # fmt: skip
    assert lines[1].endswith(
        "rules[0].allow: team: allow values are plain strings, numbers or booleans, e.g. [ops, web]"
    )


def test_explain_shows_each_source_and_dataset_filter(cli: Cli, protected: Path) -> None:
    result = cli("explain", "specs/incidents.yaml", "--as", "carol@example.com")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "incidents for carol@example.com (Carol), under policies.yaml",
        "sources",
        "  inc      protected_by team: team is backend or platform  (by policies.yaml:6, policies.yaml:8)",
        "  owners   unprotected: every row",
        "datasets",
        "  joined   inc: team is backend or platform",
        "  by_team  inc: team is backend or platform",
    ]
    explained = json.loads(cli("explain", "specs/incidents.yaml", "--as", "zed@example.com", "--json").stdout)
    assert explained["in_directory"] is False
    assert explained["sources"]["inc"]["filter"] == "no rows"
    assert explained["datasets"]["joined"] == {"reads": ["inc"], "filter": "inc: no rows"}


def test_the_query_cache_keeps_each_viewers_rows_apart(cli: Cli, project: Path) -> None:
    with sqlite3.connect(project / "app.db") as db:
        db.execute("CREATE TABLE incidents (id INTEGER, team TEXT, minutes INTEGER)")
        db.executemany("INSERT INTO incidents VALUES (?, ?, ?)", [(1, "frontend", 30), (2, "backend", 45)])
    (project / "people.yaml").write_text(PEOPLE)
    (project / "policies.yaml").write_text(POLICIES)
    spec = (
        SPEC.replace(
            "inc: {kind: file, path: data/incidents.csv, protected_by: team}",
            "inc: {kind: sql, url: 'sqlite:///app.db', query: 'SELECT id, team, minutes FROM incidents', "
            "protected_by: team}",
        )
        .replace("  owners: {kind: file, path: data/owners.csv}\n", "")
        .replace("  joined:\n    from: owners\n    join: [{dataset: inc, on: team, how: left}]\n", "")
        .replace("  - {id: j, type: table, dataset: joined}\n", "")
    )
    (project / "specs" / "incidents.yaml").write_text(spec)
    teams = {}
    for viewer in ("alice@example.com", "carol@example.com", "alice@example.com", "carol@example.com"):
        payload = _render(cli, "--as", viewer)
        rows = _section(_document(payload), "t")["rows"]
        teams.setdefault(viewer, []).append(([r["team"] for r in rows], payload["sources"][0]["cache"]))
    assert teams == {
        "alice@example.com": [(["frontend"], "stored"), (["frontend"], "hit")],
        "carol@example.com": [(["backend"], "stored"), (["backend"], "hit")],
    }
    assert len(list((project / ".reportctl" / "cache").glob("*.arrow"))) == 2


def test_a_snapshot_of_a_viewers_run_holds_only_their_rows(cli: Cli, protected: Path) -> None:
    _render(cli, "--as", "alice@example.com", "--save-snapshot", "snap")
    replayed = _render(cli, "--from-snapshot", "snap")
    assert [row["team"] for row in _section(_document(replayed), "t")["rows"]] == ["frontend"]


def test_policy_values_match_integer_and_boolean_columns(cli: Cli, project: Path) -> None:
    (project / "data").mkdir()
    (project / "data" / "rows.csv").write_text("unit,public,value\n7,true,1\n8,false,2\n7,false,4\n")
    (project / "policies.yaml").write_text(
        "rules:\n  - {who: [a@example.com], allow: {unit: [7], public: [false]}}\n"
        "  - {who: ['*'], allow: {public: [true]}}\n"
    )
    (project / "specs" / "incidents.yaml").write_text(
        "apiVersion: reportctl/v1\nname: incidents\nsources:\n"
        "  s: {kind: file, path: data/rows.csv, protected_by: [unit, public]}\n"
        "sections:\n  - {id: t, type: table, dataset: s}\noutputs: [json]\n"
    )
    rows = _section(_document(_render(cli, "--as", "a@example.com")), "t")["rows"]
    # unit 7 from a's rule, and public true or false from the two rules a matches (everyone's, and a's)
    assert sorted(row["value"] for row in rows) == [1, 4]
    rows = _section(_document(_render(cli, "--as", "b@example.com")), "t")["rows"]
    assert rows == []  # '*' allows public rows, but no rule gives b any unit


def test_a_viewers_recorded_run_leaves_its_filters_in_the_audit_log(cli: Cli, protected: Path) -> None:
    result = cli("render", "specs/incidents.yaml", "--as", "alice@example.com", "--json")
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout)["run_id"]
    entries = json.loads(cli("audit", "--action", "policy", "--json").stdout)
    assert [(e["run_id"], e["detail"]) for e in entries] == [
        (run, {"viewer": "alice@example.com", "filters": {"inc": "team is frontend"}})
    ]
    (render,) = json.loads(cli("audit", "--action", "render", "--json").stdout)
    assert render["detail"]["viewer"] == "alice@example.com"


def test_the_demo_rendered_as_two_people_shows_each_their_regions(cli: Cli, tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[2] / "specs"
    regions = {}
    for viewer in ("linus@example.org", "ada@example.com"):
        result = cli("render", str(demo / "server-health.yaml"), "--as", viewer, "--no-state", "--json",
                     "-f", "csv,json,md", "-o", str(tmp_path / viewer))  # fmt: skip
        assert result.exit_code == 0, result.stderr
        document = _document(json.loads(result.stdout))
        regions[viewer] = sorted({row["region"] for row in _section(document, "services")["rows"]})
    assert regions == {"linus@example.org": ["eu"], "ada@example.com": ["ap", "eu", "us"]}
