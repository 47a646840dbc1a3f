"""The directory read from people.yaml, a CSV, a sql source (SQLite) and an http source (a local server)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from reportctl.config import Project, find_project
from reportctl.delivery.directory import check_directory, file_directory, load_directory, unknown_references
from reportctl.delivery.recipients import NO_DIRECTORY, Directory, Person
from reportctl.errors import SourceError, SpecError

Cli = Callable[..., Any]  # the `cli` fixture of tests/conftest.py, returning a CliResult

PEOPLE_YAML = """\
people:
  - email: ada@example.com
    name: Ada Lovelace
    teams: [backend-sre]
    lists: weekly
  - email: grace@example.com
    name: Grace Hopper
    teams: backend-sre; platform
  - {email: linus@example.org, teams: [platform]}
lists:
  leadership: [cto@example.com, team:platform]
  everyone: [list:leadership, team:backend-sre]
"""
TOKEN = "dir-token-5c1e8b"


def loaded(root: Path) -> Project:
    return find_project(root)


def people(directory: Directory) -> dict[str, tuple[str, list[str], list[str]]]:
    return {p.email: (p.name, sorted(p.teams), sorted(p.lists)) for p in directory.people}


def errors(exc: pytest.ExceptionInfo[SpecError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


# people.yaml


def test_people_yaml(project: Path) -> None:
    (project / "people.yaml").write_text(PEOPLE_YAML)

    directory = load_directory(loaded(project))

    assert directory.origin == "people.yaml"
    assert people(directory) == {
        "ada@example.com": ("Ada Lovelace", ["backend-sre"], ["weekly"]),
        "grace@example.com": ("Grace Hopper", ["backend-sre", "platform"], []),
        "linus@example.org": ("", ["platform"], []),
    }
    assert [r.address for r in directory.resolve(["list:everyone"])] == [
        "cto@example.com",
        "grace@example.com",
        "linus@example.org",
        "ada@example.com",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "people:\n  - email: ada@example.com\n    team: [sre]\n",
            ["{project}/people.yaml:3:5: people[0].team: unknown key 'team' (did you mean 'teams'?)"],
            id="unknown-key-with-a-hint",
        ),
        pytest.param(
            "people:\n  - email: ada@example..com\n  - email: bob@example.com\n    teams: [sre, backend sre]\n",
            [
                "{project}/people.yaml:2:12: people[0].email: 'ada@example..com' has two dots in a row",
                "{project}/people.yaml:4:18: people[1].teams[1]: 'backend sre' cannot be named as team:NAME or "
                "list:NAME; use letters, digits, '_', '-', '.'",
            ],
            id="bad-email-and-team-name",
        ),
        pytest.param(
            "people:\n  - email: ada@example.com\n    teams: sre\n  - email: Ada@Example.com\n    teams: ops\n",
            [
                "{project}/people.yaml:4:12: people[1].email: 'Ada@Example.com' is listed twice (first at line 2); "
                "give each person one entry with all their teams"
            ],
            id="duplicate-email",
        ),
        pytest.param(
            "lists:\n  leads: [cto@example.com, team:a/b]\n",
            [
                "{project}/people.yaml:2:28: lists.leads[1]: 'team:a/b' is not a valid reference; write team:NAME or "
                "list:NAME (letters, digits, '_', '-', '.')"
            ],
            id="bad-list-entry",
        ),
    ],
)
def test_a_bad_people_yaml_is_positioned(project: Path, text: str, expected: list[str]) -> None:
    (project / "people.yaml").write_text(text)

    with pytest.raises(SpecError) as exc:
        load_directory(loaded(project))

    assert errors(exc) == [line.format(project=project) for line in expected]


def test_a_new_member_gets_the_next_load(project: Path) -> None:
    (project / "people.yaml").write_text(PEOPLE_YAML)
    settings = loaded(project)
    assert [r.address for r in load_directory(settings).resolve(["team:platform"])] == [
        "grace@example.com",
        "linus@example.org",
    ]

    joined = PEOPLE_YAML.replace("lists:\n", "  - {email: new@example.com, teams: [platform]}\nlists:\n", 1)
    (project / "people.yaml").write_text(joined)

    assert [r.address for r in load_directory(settings).resolve(["team:platform"])] == [
        "grace@example.com",
        "linus@example.org",
        "new@example.com",
    ]


def test_no_directory_at_all(project: Path) -> None:
    directory = load_directory(loaded(project))

    assert (list(directory.people), dict(directory.lists), directory.origin) == ([], {}, NO_DIRECTORY)
    [recipient] = directory.resolve(["team:sre"])
    assert recipient.problem == (
        "team 'sre' has no members: no directory: add people.yaml or set directory in reportctl.yaml"
    )


# CSV


def test_csv(project: Path) -> None:
    (project / "reportctl.yaml").write_text("directory: {file: hr/staff.csv}\n")
    (project / "hr").mkdir()
    (project / "hr" / "staff.csv").write_text(
        "\ufeffEmail,Name,Teams,Lists,\n"
        'ada@example.com,Ada Lovelace,"backend-sre, platform",weekly,\n'
        "\n"
        "grace@example.com,Grace Hopper,platform;oncall,\n"
        "ADA@example.com,,oncall,\n"
        "linus@example.org\n",
        encoding="utf-8",
    )

    directory = load_directory(loaded(project))

    assert directory.origin == "hr/staff.csv"
    assert people(directory) == {
        "ada@example.com": ("Ada Lovelace", ["backend-sre", "oncall", "platform"], ["weekly"]),
        "grace@example.com": ("Grace Hopper", ["oncall", "platform"], []),
        "linus@example.org": ("", [], []),
    }
    [missing] = directory.resolve(["team:on-call"])
    assert missing.problem == "team 'on-call' is not in hr/staff.csv (did you mean 'oncall'?); it has no members"


@pytest.mark.parametrize(
    ("reportctl_yaml", "staff_csv", "expected"),
    [
        pytest.param(
            "directory:\n  file: staff.csv\n",
            None,
            [
                "{project}/reportctl.yaml:2:9: directory.file: 'staff.csv' not found in {project}; "
                "write its path relative to the project"
            ],
            id="configured-file-missing",
        ),
        pytest.param(
            "directory: {file: staff.csv}\n",
            "mail,name,team\nada@example.com,Ada,sre\n",
            [
                "{project}/staff.csv:1:1: unknown column 'mail' (did you mean 'email'?); the columns are email, "
                "lists, name, teams",
                "{project}/staff.csv:1:1: unknown column 'team' (did you mean 'teams'?); the columns are email, "
                "lists, name, teams",
                "{project}/staff.csv:1:1: no 'email' column; the first line must name the columns (it has: mail, "
                "name, team)",
            ],
            id="csv-without-an-email-column",
        ),
        pytest.param(
            "directory: {file: staff.csv}\n",
            "email,name,teams\nada@example.com,Ada,sre\nbob(at)example.com,Bob,sre\ncy@example.com,Cy,sre,extra\n",
            [
                "{project}/staff.csv:3:1: email: 'bob(at)example.com' is not an email address (no '@'); "
                "write user@example.com, team:NAME or list:NAME",
                "{project}/staff.csv:4:1: 4 values but the header names 3 columns",
            ],
            id="csv-bad-rows-name-their-line",
        ),
    ],
)
def test_a_bad_directory_file_is_positioned(
    project: Path, reportctl_yaml: str, staff_csv: str | None, expected: list[str]
) -> None:
    (project / "reportctl.yaml").write_text(reportctl_yaml)
    if staff_csv is not None:
        (project / "staff.csv").write_text(staff_csv)

    with pytest.raises(SpecError) as exc:
        load_directory(loaded(project))

    assert errors(exc) == [line.format(project=project) for line in expected]


# sources


def test_sql_source_one_row_per_membership(project: Path) -> None:
    with sqlite3.connect(project / "people.db") as db:
        db.executescript(
            """
            CREATE TABLE person (email TEXT, name TEXT);
            CREATE TABLE membership (email TEXT, team TEXT);
            INSERT INTO person VALUES ('ada@example.com', 'Ada'), ('grace@example.com', 'Grace'),
                                      ('nobody@example.com', 'Nobody');
            INSERT INTO membership VALUES ('ada@example.com', 'sre'), ('ada@example.com', 'platform'),
                                          ('grace@example.com', 'platform'), (NULL, 'ghosts');
            """
        )
    db.close()
    (project / "reportctl.yaml").write_text(
        "directory:\n"
        "  source:\n"
        "    kind: sql\n"
        "    url: sqlite:///people.db\n"
        "    query: >-\n"
        "      SELECT p.email AS EMAIL, p.name, m.team AS teams FROM membership m LEFT JOIN person p USING (email)\n"
    )

    directory = load_directory(loaded(project))

    assert directory.origin == "the directory source (sql)"
    assert people(directory) == {
        "ada@example.com": ("Ada", ["platform", "sre"], []),
        "grace@example.com": ("Grace", ["platform"], []),
    }
    [missing] = directory.resolve(["team:platfrom"])
    assert missing.problem == (
        "team 'platfrom' is not in the directory source (sql) (did you mean 'platform'?); it has no members"
    )


def test_sql_source_without_an_email_column(project: Path) -> None:
    with sqlite3.connect(project / "people.db") as db:
        db.execute("CREATE TABLE person (mail TEXT)")
    db.close()
    (project / "reportctl.yaml").write_text(
        "directory: {source: {kind: sql, url: 'sqlite:///people.db', query: SELECT mail FROM person}}\n"
    )

    with pytest.raises(SourceError) as exc:
        load_directory(loaded(project))

    assert str(exc.value) == (
        "source 'directory' (sql sqlite:///people.db): the rows have no 'email' column (they have: mail); "
        "name one email, and optionally name, teams, lists"
    )


class Staff(BaseHTTPRequestHandler):
    """A directory API: JSON records behind a bearer token."""

    seen: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.reply(401, {"error": "who are you"})
            return
        records = [
            {"email": "ada@example.com", "name": "Ada", "teams": ["sre", "platform"], "lists": None, "id": 1},
            {"email": "grace@example.com", "name": "Grace", "teams": ["platform"], "lists": ["weekly"], "id": 2},
            {"email": "ada@example.com", "name": None, "teams": ["oncall"], "lists": ["weekly"], "id": 1},
        ]
        self.reply(200, {"data": records})

    def reply(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class JoiningServer(ThreadingHTTPServer):
    daemon_threads = False


@pytest.fixture
def staff_api() -> Iterator[str]:
    Staff.seen = []
    httpd = JoiningServer(("127.0.0.1", 0), Staff)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()


def test_http_source_with_a_secret_token(project: Path, staff_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORTCTL_SECRET_DIRECTORY_TOKEN", TOKEN)
    (project / "reportctl.yaml").write_text(
        "directory:\n"
        "  source:\n"
        "    kind: http\n"
        f"    url: {staff_api}/people\n"
        "    headers: {Authorization: 'Bearer ${secret:DIRECTORY_TOKEN}'}\n"
        "    records: data\n"
    )

    directory = load_directory(loaded(project))

    assert Staff.seen == [f"Bearer {TOKEN}"]
    assert directory.origin == "the directory source (http)"
    assert people(directory) == {
        "ada@example.com": ("Ada", ["oncall", "platform", "sre"], ["weekly"]),
        "grace@example.com": ("Grace", ["platform"], ["weekly"]),
    }


def test_http_source_refused(project: Path, staff_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORTCTL_SECRET_DIRECTORY_TOKEN", "wrong")
    (project / "reportctl.yaml").write_text(
        f"directory: {{source: {{kind: http, url: '{staff_api}/people', "
        "headers: {Authorization: 'Bearer ${secret:DIRECTORY_TOKEN}'}}}\n"
    )

    with pytest.raises(SourceError) as exc:
        load_directory(loaded(project))

    assert str(exc.value) == (
        f"source 'directory' (http GET {staff_api}/people): HTTP 401 Unauthorized from {staff_api}/people"
    )
    assert Staff.seen == ["Bearer wrong"]


def test_bad_source_settings_are_positioned_in_reportctl_yaml(project: Path) -> None:
    (project / "reportctl.yaml").write_text(
        "timezone: UTC\ndirectory:\n  source:\n    kind: sql\n    url: sqlite:///people.db\n    qurey: SELECT 1\n"
    )

    problems = [str(p) for p in check_directory(loaded(project))]

    assert problems == [
        f"{project}/reportctl.yaml:4:5: directory.source.query: missing required key 'query'",
        f"{project}/reportctl.yaml:6:5: directory.source.qurey: unknown key 'qurey' (did you mean 'query'?)",
    ]


def test_an_unknown_source_kind(project: Path) -> None:
    (project / "reportctl.yaml").write_text("directory:\n  source: {kind: ldap}\n")

    [problem] = check_directory(loaded(project))

    assert str(problem).startswith(
        f"{project}/reportctl.yaml:2:18: directory.source.kind: unknown source kind 'ldap'; not available, try one of:"
    )


# validate and spec checks


def test_check_directory_reports_lists_naming_unknown_teams(project: Path) -> None:
    (project / "people.yaml").write_text(PEOPLE_YAML.replace("team:platform]", "team:platfrom]"))

    assert [str(p) for p in check_directory(loaded(project))] == [
        f"{project}/people.yaml:11:33: lists.leadership[1]: team 'platfrom' is not in people.yaml "
        "(did you mean 'platform'?); it has no members"
    ]


def test_check_directory_is_quiet_for_a_good_file_and_for_none(project: Path) -> None:
    assert check_directory(loaded(project)) == []
    (project / "people.yaml").write_text(PEOPLE_YAML)
    assert check_directory(loaded(project)) == []


def test_unknown_references_for_spec_checks(project: Path) -> None:
    (project / "people.yaml").write_text(PEOPLE_YAML)
    directory = file_directory(loaded(project))
    assert directory is not None

    assert unknown_references(directory, ["team:backend-sre", "team:backend_sre", "list:leadership", "x@y.z"]) == [
        "team 'backend_sre' is not in people.yaml (did you mean 'backend-sre'?); it has no members"
    ]
    lists = Directory([Person("a@example.com", teams=frozenset({"ops"}))], {"leads": ["team:op"]}, "people.yaml")
    assert unknown_references(lists, ["list:leads"]) == [
        "list:leads: team 'op' is not in people.yaml (did you mean 'ops'?); it has no members"
    ]


def test_file_directory_is_none_for_a_source(project: Path) -> None:
    (project / "reportctl.yaml").write_text(
        "directory: {source: {kind: sql, url: 'sqlite:///x.db', query: SELECT 1}}\n"
    )
    assert file_directory(loaded(project)) is None


def test_validate_reports_a_bad_people_yaml(cli: Cli, project: Path) -> None:
    (project / "people.yaml").write_text("people:\n  - email: ada(at)example.com\n    teem: sre\n")

    result = cli("validate")

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "people.yaml:2:12: people[0].email: 'ada(at)example.com' is not an email address (no '@'); "
        "write user@example.com, team:NAME or list:NAME",
        "people.yaml:3:5: people[0].teem: unknown key 'teem' (did you mean 'teams'?)",
        "2 problems in 1 of 1 files",
    ]


def test_validate_reports_a_bad_people_yaml_as_json_and_github(cli: Cli, project: Path) -> None:
    (project / "people.yaml").write_text("people:\n  - {email: ada@example.com, teams: [sre]}\n  - email: bob@\n")

    report = json.loads(cli("validate", "--format", "json").stdout)
    github = cli("validate", str(project / "reportctl.yaml"), "--format", "github")

    assert report["valid"] is False
    assert [p for f in report["files"] for p in f["problems"]] == [
        {
            "file": str(project / "people.yaml"),
            "line": 3,
            "column": 12,
            "path": "people[1].email",
            "message": "'bob@' has no domain after '@'",
            "severity": "error",
        }
    ]
    assert (github.exit_code, github.stdout) == (
        1,
        "::error file=people.yaml,line=3,col=12,title=reportctl validate::"
        "people[1].email: 'bob@' has no domain after '@'\n",
    )


def test_validate_passes_a_good_people_yaml(cli: Cli, project: Path) -> None:
    (project / "people.yaml").write_text(PEOPLE_YAML)

    result = cli("validate")

    assert (result.exit_code, result.stdout) == (0, "1 file valid\n")
