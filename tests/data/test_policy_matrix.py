"""No forbidden value anywhere: viewers x datasets x formats, over every output file (PDF text, XLSX cells, CSV,
JSON, HTML, Markdown, chart data) and every message body of a burst sent through a real SMTP server; policy values
and parameters that try SQL injection on SQLite, PostgreSQL and MariaDB; and a secret that appears in no log line,
audit row or state row after a full run."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from conftest import CliResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "delivery"))
from smtp_server import smtp_server

Cli = Callable[..., CliResult]

TEAMS = {"Team-Aurora": ("aurora-ledger-7001", 7001), "Team-Borealis": ("borealis-ledger-8002", 8002),
         "Team-Cygnus": ("cygnus-ledger-9003", 9003)}  # fmt: skip
PEOPLE = """\
people:
  - {email: alice@example.com, teams: [aurora]}
  - {email: carol@example.com, teams: [borealis]}
  - {email: dan@example.com, teams: [cygnus]}
"""
POLICIES = """\
rules:
  - {who: [team:aurora], allow: {team: [Team-Aurora]}}
  - {who: [team:borealis], allow: {team: [Team-Borealis, Team-Cygnus]}}
  - {who: [team:cygnus], allow: {team: [Team-Cygnus]}}
"""
SPEC = """\
apiVersion: reportctl/v1
name: ledger
title: Ledger
sources:
  rows: {kind: file, path: data/rows.csv, protected_by: team}
datasets:
  by_team: {from: rows, group_by: [team], aggregate: {minutes: sum(minutes), notes: count()}, sort: [team]}
  joined:
    sql: "SELECT r.team, r.note, r.minutes, b.minutes AS team_minutes FROM rows r JOIN by_team b ON r.team = b.team"
sections:
  - {id: intro, type: text, template: "{% for r in datasets.joined %}{{ r.note }} {% endfor %}"}
  - {id: kpis, type: kpis, items: [{label: Minutes, value: "sum(by_team.minutes)", format: integer}]}
  - {id: table, type: table, dataset: joined}
  - {id: chart, type: chart, dataset: by_team, chart: bar, x: team, y: minutes}
outputs: [pdf, xlsx, csv, json, html, md]
"""
VIEWERS = {
    "alice@example.com": {"Team-Aurora"},
    "carol@example.com": {"Team-Borealis", "Team-Cygnus"},
    "mallory@example.com": set(),
}


@pytest.fixture
def ledger(project: Path) -> Path:
    (project / "data").mkdir()
    lines = ["team,note,minutes"] + [f"{team},{note},{minutes}" for team, (note, minutes) in TEAMS.items()]
    (project / "data" / "rows.csv").write_text("\n".join(lines) + "\n")
    (project / "people.yaml").write_text(PEOPLE)
    (project / "policies.yaml").write_text(POLICIES)
    (project / "specs" / "ledger.yaml").write_text(SPEC)
    return project


def _text_of(path: Path) -> str:
    """Everything a reader of ``path`` could see, as text."""
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path)
        return "\n".join(str(cell.value) for sheet in book for row in sheet.iter_rows() for cell in row)
    if path.suffix in (".png",):
        return ""
    return path.read_text(encoding="utf-8", errors="replace")


@pytest.mark.parametrize("viewer", VIEWERS)
def test_no_output_file_holds_a_value_the_viewer_may_not_see(cli: Cli, ledger: Path, viewer: str) -> None:
    result = cli("render", "specs/ledger.yaml", "--as", viewer, "--no-state", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    files = [Path(a["path"]) for a in payload["artifacts"]]
    assert {f.suffix for f in files} >= {".pdf", ".xlsx", ".csv", ".json", ".html", ".md"}
    allowed = VIEWERS[viewer]
    for file in [*files, Path(payload["manifest"])]:
        seen = _text_of(file)
        if file.suffix in (".pdf", ".xlsx", ".csv", ".json", ".html", ".md") and file.name != "manifest.json":
            assert all(TEAMS[team][0] in seen for team in allowed), (viewer, file.name)  # the text was read
        for team, (note, _) in TEAMS.items():
            if team not in allowed:
                # hyphenated values: no base64 picture data can hold them by chance
                assert team not in seen and note not in seen, (viewer, file.name, team)
    document = json.loads(next(f for f in files if f.suffix == ".json").read_text())
    for section in document["sections"]:
        if section["type"] in ("table", "chart"):
            shown = {row["team"] for row in section.get("rows") or section.get("data") or []}
            assert shown <= allowed, (viewer, section["id"], shown)
    csv = next(f for f in files if f.name.endswith(".csv")).read_text()
    assert all(TEAMS[team][0] in csv for team in allowed)


def test_a_burst_to_three_teams_leaves_each_mailbox_only_its_own_rows(cli: Cli, ledger: Path) -> None:
    with smtp_server() as server:
        spec = SPEC.replace("outputs: [pdf, xlsx, csv, json, html, md]", "outputs: [csv, json]")
        spec += (
            "burst: {by: team}\n"
            "delivery:\n"
            f"  - {{channel: email, host: 127.0.0.1, port: {server.port}, security: none, from: r@example.com,\n"
            "     to: [team:aurora, team:borealis, team:cygnus], attach: [csv, json]}\n"
        )
        (ledger / "specs" / "ledger.yaml").write_text(spec)
        result = cli("render", "specs/ledger.yaml", "--deliver")
        assert result.exit_code == 0, result.stderr
        messages = list(server.messages)
    mailboxes: dict[str, str] = {}
    for received in messages:
        whole = received.parsed()
        parts = [p.get_payload(decode=True) or b"" for p in whole.walk() if not p.is_multipart()]
        for address in received.rcpt_tos:
            mailboxes[address] = mailboxes.get(address, "") + b"\n".join(parts).decode("utf-8", "replace")
    assert sorted(mailboxes) == ["alice@example.com", "carol@example.com", "dan@example.com"]
    allowed = {
        "alice@example.com": {"Team-Aurora"},
        "carol@example.com": {"Team-Borealis", "Team-Cygnus"},
        "dan@example.com": {"Team-Cygnus"},
    }
    for address, body in mailboxes.items():
        for team, (note, _) in TEAMS.items():
            assert (note in body) == (team in allowed[address]), (address, team)


def _protected_sql(cli: Cli, project: Path, url: str, table: str) -> None:
    (project / "people.yaml").write_text(PEOPLE)
    (project / "specs" / "ledger.yaml").write_text(
        "apiVersion: reportctl/v1\nname: ledger\n"
        "parameters:\n  team: {type: string, default: Aurora}\n"
        "sources:\n"
        f"  rows: {{kind: sql, url: '{url}', query: 'SELECT team, note FROM {table} WHERE team = :team OR "
        "team IS NOT NULL', protected_by: team}\n"
        "sections:\n  - {id: t, type: table, dataset: rows}\noutputs: [json]\n"
    )


@pytest.mark.parametrize("database", ["sqlite", "postgresql", "mariadb"])
def test_injection_through_policy_values_and_parameters_widens_nothing(
    cli: Cli, project: Path, database: str, request: pytest.FixtureRequest
) -> None:
    if database == "sqlite":
        with sqlite3.connect(project / "ledger.db") as db:
            db.execute("CREATE TABLE ledger_rows (team TEXT, note TEXT)")
            db.executemany("INSERT INTO ledger_rows VALUES (?, ?)", [(t, n) for t, (n, _) in TEAMS.items()])
        url, table = "sqlite:///ledger.db", "ledger_rows"
    else:
        base = request.getfixturevalue("postgres_url" if database == "postgresql" else "mariadb_url")
        table = f"ledger_rows_{database}_{os.getpid()}"
        engine = create_engine(base)
        with engine.begin() as db:
            db.execute(text(f"DROP TABLE IF EXISTS {table}"))
            db.execute(text(f"CREATE TABLE {table} (team VARCHAR(50), note VARCHAR(50))"))
            for team, (note, _) in TEAMS.items():
                db.execute(text(f"INSERT INTO {table} VALUES (:t, :n)"), {"t": team, "n": note})
        request.addfinalizer(lambda: _drop(engine, table))
        url = base
    _protected_sql(cli, project, url, table)
    hostile = ["Aurora' OR '1'='1", "x'); DROP TABLE ledger_rows; --", "Aurora\\' OR 1=1 -- "]
    (project / "policies.yaml").write_text(
        "rules:\n  - who: [team:aurora]\n    allow:\n      team: " + json.dumps(hostile) + "\n"
    )
    for team_parameter in ("Team-Aurora", "x' OR '1'='1", "Aurora'; DELETE FROM ledger_rows; --"):
        result = cli("render", "specs/ledger.yaml", "--as", "alice@example.com", "--no-state", "--json",
                     "-p", f"team={team_parameter}")  # fmt: skip
        assert result.exit_code == 0, result.stderr
        (path,) = [a["path"] for a in json.loads(result.stdout)["artifacts"]]
        (section,) = [s for s in json.loads(Path(path).read_text())["sections"] if s["id"] == "t"]
        assert section["rows"] == [], (team_parameter, section["rows"])  # no value equals a hostile policy value
    (project / "policies.yaml").write_text(POLICIES)
    result = cli("render", "specs/ledger.yaml", "--as", "alice@example.com", "--no-state", "--json")
    (path,) = [a["path"] for a in json.loads(result.stdout)["artifacts"]]
    (section,) = [s for s in json.loads(Path(path).read_text())["sections"] if s["id"] == "t"]
    assert [r["team"] for r in section["rows"]] == ["Team-Aurora"]


def _drop(engine: Any, table: str) -> None:
    with engine.begin() as db:
        db.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def test_a_secret_is_in_no_log_line_audit_row_or_state_row_after_a_full_run(
    cli: Cli, ledger: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    value = "s3cr3t-Value-4711"
    monkeypatch.setenv("REPORTCTL_SECRET_OUTBOX_NOTE", value)
    (ledger / "specs" / "ledger.yaml").write_text(
        SPEC.replace("outputs: [pdf, xlsx, csv, json, html, md]", "outputs: [csv]")
        + "delivery:\n  - {channel: file, to: [team:aurora], subject: 'Ledger ${secret:outbox_note}'}\n"
    )
    caplog.set_level(logging.DEBUG)
    result = cli("--debug", "render", "specs/ledger.yaml", "--deliver")
    assert result.exit_code == 0, result.stderr
    assert value not in result.stdout + result.stderr + caplog.text
    engine = create_engine(f"sqlite:///{ledger / '.reportctl' / 'state.db'}")
    with engine.connect() as db:
        for table in inspect(engine).get_table_names():
            for row in db.execute(text(f"SELECT * FROM {table}")):
                assert value not in repr(tuple(row)), table
    engine.dispose()
    audit = cli("audit", "--json").stdout
    assert "outbox_note" in audit and value not in audit
