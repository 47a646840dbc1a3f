"""`reportctl validate`, `schema`, `init` and `list`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pdfplumber
import pytest

from conftest import CliResult

Cli = Callable[..., CliResult]

GOOD = """\
apiVersion: reportctl/v1
name: good
sources:
  metrics: {kind: sample, rows: 10}
sections:
  - {id: t, type: table, dataset: metrics}
"""
BAD = """\
apiVersion: reportctl/v1
name: bad
sources:
  metrics: {kind: sample, rows: 10}
sections:
  - {id: t, type: table, dataset: metrics, colums: {}}
"""
BAD_SETTINGS = "timezone: Mars/Olympus\noutput: out\n"


@pytest.fixture
def specs(project: Path) -> Path:
    (project / "specs" / "good.yaml").write_text(GOOD)
    return project / "specs"


def test_validate_a_valid_folder(cli: Cli, specs: Path) -> None:
    result = cli("validate", str(specs))
    assert (result.exit_code, result.stdout) == (0, "1 file valid\n")


def test_validate_defaults_to_the_project(cli: Cli, specs: Path) -> None:
    result = cli("validate")
    assert (result.exit_code, result.stdout) == (0, "2 files valid\n")  # the spec and reportctl.yaml


def test_validate_reports_file_line_and_column(cli: Cli, specs: Path) -> None:
    (specs / "bad.yaml").write_text(BAD)
    result = cli("validate", str(specs))
    assert result.exit_code == 1
    assert result.stdout == (
        "specs/bad.yaml:6:44: sections[0].colums: unknown key 'colums' (did you mean 'columns'?)\n"
        "1 problem in 1 of 2 files\n"
    )


def test_validate_json(cli: Cli, specs: Path) -> None:
    (specs / "bad.yaml").write_text(BAD)
    result = cli("validate", str(specs), "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    bad = next(f for f in report["files"] if f["file"].endswith("bad.yaml"))
    assert bad["problems"] == [
        {
            "file": str(specs / "bad.yaml"),
            "line": 6,
            "column": 44,
            "path": "sections[0].colums",
            "message": "unknown key 'colums' (did you mean 'columns'?)",
            "severity": "error",
        }
    ]


def test_validate_github_annotations_outside_git_name_files_from_the_working_folder(cli: Cli, specs: Path) -> None:
    (specs / "bad.yaml").write_text(BAD)
    result = cli("validate", str(specs / "bad.yaml"), "--format", "github")
    assert result.exit_code == 1
    assert result.stdout == (
        "::error file=specs/bad.yaml,line=6,col=44,title=reportctl validate::"
        "sections[0].colums: unknown key 'colums' (did you mean 'columns'?)\n"
    )


def test_validate_checks_reportctl_yaml(cli: Cli, project: Path) -> None:
    (project / "reportctl.yaml").write_text(BAD_SETTINGS)
    result = cli("validate", str(project / "reportctl.yaml"))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "reportctl.yaml:1:11: timezone: unknown time zone 'Mars/Olympus'; "
        "use an IANA name such as Europe/Berlin or UTC",
        "reportctl.yaml:2:1: output: unknown key 'output' (did you mean 'outputs'?)",
        "2 problems in 1 of 1 files",
    ]


def test_a_spec_of_a_project_with_invalid_settings_says_what_is_wrong_with_them(cli: Cli, specs: Path) -> None:
    (specs.parent / "reportctl.yaml").write_text(BAD_SETTINGS)
    result = cli("validate", str(specs / "good.yaml"))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "specs/good.yaml: not checked: the project settings are invalid: reportctl.yaml:1:11: timezone: "
        "unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/Berlin or UTC (and 1 more problem there)",
        "1 problem in 1 of 1 files",
    ]


def test_validate_bad_format_option_is_a_usage_error(cli: Cli, specs: Path) -> None:
    assert cli("validate", "--format", "xml").exit_code == 2


def test_validate_nothing_found(cli: Cli, tmp_path: Path) -> None:
    result = cli("validate", str(tmp_path))
    assert (result.exit_code, result.stdout) == (1, "no spec files found\n")


def test_schema_is_json_schema_with_plugin_options(cli: Cli) -> None:
    result = cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "apiVersion" in schema["$defs"]["Spec"]["properties"]
    assert {
        "FileOptions",
        "SqlOptions",
        "HttpOptions",
        "SampleOptions",
        "CsvOptions",
        "JsonOptions",
        "EmailOptions",
        "WebhookOptions",
        "SlackOptions",
        "S3Options",
        "OutboxOptions",
    } <= set(schema["$defs"])
    assert schema["$defs"]["Schedule"]["properties"]["misfire_grace"]["default"] == "1h"


def test_schema_to_a_file_is_what_it_prints(cli: Cli, tmp_path: Path) -> None:
    printed = cli("schema").stdout
    target = tmp_path / "reportctl.schema.json"
    result = cli("schema", "-o", str(target))
    assert (result.exit_code, result.stdout) == (0, f"wrote {target}\n")
    assert target.read_text() == printed


def test_init_writes_the_schema_its_specs_name(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "reports"
    assert cli("init", str(target)).exit_code == 0
    # `reportctl schema -o reportctl.schema.json` (or `>`) refreshes it to the same bytes
    assert (target / "reportctl.schema.json").read_text() == cli("schema").stdout
    for spec, line in (
        ("specs/server-health.yaml", "# yaml-language-server: $schema=../reportctl.schema.json"),
        ("specs/base/ops.yaml", "# yaml-language-server: $schema=../../reportctl.schema.json"),
    ):
        assert (target / spec).read_text().splitlines()[0] == line


def test_init_refuses_to_overwrite_a_schema_file(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "reportctl.schema.json").write_text("{}")
    result = cli("init", str(tmp_path))
    assert result.exit_code == 1
    assert "reportctl.schema.json already exists" in result.stderr
    assert (tmp_path / "reportctl.schema.json").read_text() == "{}"
    assert not (tmp_path / "reportctl.yaml").exists()


def test_init_creates_a_project_that_renders(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "reports"
    result = cli("init", str(target))
    assert result.exit_code == 0
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        ".gitignore",
        "people.yaml",
        "reportctl.schema.json",
        "reportctl.yaml",
        "specs/base/ops.yaml",
        "specs/server-health.yaml",
    ]
    monkeypatch.chdir(target)
    assert cli("validate").exit_code == 0
    rendered = cli("render", "specs/server-health.yaml", "--json", "--deliver")
    assert rendered.exit_code == 0, rendered.stderr
    document = json.loads(rendered.stdout)
    # a newcomer sees the PDF and the HTML with a chart, not only the data files
    assert {a["format"] for a in document["artifacts"]} == {"pdf", "html", "csv", "json"}
    assert [(r["recipient"], r["status"]) for r in document["delivery"]["recipients"]] == [("you@example.com", "sent")]
    assert (target / "outbox" / "server-health" / document["run_id"] / "message.eml").is_file()
    run = Path(document["directory"])
    with pdfplumber.open(run / "server-health.pdf") as pdf:
        assert sum(len(page.images) for page in pdf.pages) == 1  # the chart
        assert "Services by p95 latency" in "".join(page.extract_text() or "" for page in pdf.pages)
    assert 'class="chart"' in (run / "server-health.html").read_text()


def test_init_refuses_to_overwrite(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "reportctl.yaml").write_text("timezone: UTC\n")
    result = cli("init", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {tmp_path}/reportctl.yaml already exists; choose an empty folder for a new project "
        "(nothing was written)\n"
    )
    assert not (tmp_path / "specs").exists()


def test_list(cli: Cli, specs: Path) -> None:
    (specs / "base.yaml").write_text("apiVersion: reportctl/v1\nname: base\nabstract: true\n")
    result = cli("list", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {
            "name": "good",
            "title": "good",
            "file": "specs/good.yaml",
            "schedule": None,
            "outputs": ["csv", "json"],
            "valid": True,
        }
    ]
    table = cli("list")
    assert table.stdout.split("\n")[0].split() == ["NAME", "SCHEDULE", "OUTPUTS", "FILE"]
    assert table.stdout.split("\n")[1].split() == ["good", "-", "csv,json", "specs/good.yaml"]


def test_version_and_help(cli: Cli) -> None:
    from reportctl import __version__

    assert cli("--version").stdout == f"reportctl {__version__}\n"
    help_text = cli("--help")
    assert help_text.exit_code == 0
    for command in ("render", "validate", "schema", "init", "list"):
        assert command in help_text.stdout


def test_no_command_shows_help_as_usage(cli: Cli) -> None:
    result = cli()
    assert result.exit_code in (0, 2)
    assert "render" in result.stdout + result.stderr
