"""A spec that needs an extra that is not installed fails validate and render with one line naming the extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

import reportctl.extras

SPEC = """\
apiVersion: reportctl/v1
name: extras
sources:
  {source}
sections:
  - {{id: t, type: table, dataset: s}}
delivery:
  - {{channel: s3, url: "s3://reports/extras/"}}
"""


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``without("boto3", ...)``: those modules look uninstalled to reportctl."""

    def hide(*modules: str) -> None:
        real = importlib.util.find_spec
        monkeypatch.setattr(reportctl.extras, "find_spec", lambda name: None if name in modules else real(name))

    return hide


def test_the_s3_channel_names_the_s3_extra(project: Path, cli: Any, without: Any) -> None:
    without("boto3")
    (project / "specs" / "extras.yaml").write_text(SPEC.format(source="s: {kind: sample, rows: 3}"))
    for command in (("validate", "specs/extras.yaml"), ("render", "specs/extras.yaml")):
        result = cli(*command)
        assert result.exit_code == 1
        assert (
            "specs/extras.yaml:8:5: delivery[0]: the s3 channel needs boto3, which is not installed; "
            "pip install 'reportctl[s3]'"
        ) in result.stdout + result.stderr
    assert not (project / "out").exists()


@pytest.mark.parametrize(
    ("url", "module", "extra", "name"),
    [
        ("postgresql://report@db/sales", "psycopg", "postgres", "PostgreSQL"),
        ("mariadb://report@db/sales", "pymysql", "mysql", "MySQL/MariaDB"),
    ],
)
def test_a_sql_source_names_its_drivers_extra(
    project: Path, cli: Any, without: Any, url: str, module: str, extra: str, name: str
) -> None:
    without(module)
    source = f's: {{kind: sql, url: "{url}", query: "SELECT 1 AS n"}}'
    (project / "specs" / "extras.yaml").write_text(SPEC.format(source=source).split("delivery:")[0])
    result = cli("validate", "specs/extras.yaml")
    assert result.exit_code == 1
    expected = f"a {name} source needs {module}, which is not installed; pip install 'reportctl[{extra}]'"
    assert expected in result.stdout
    assert len([line for line in result.stdout.splitlines() if "needs" in line]) == 1


def test_with_the_extras_installed_nothing_is_said() -> None:
    for module in reportctl.extras.EXTRAS:
        assert reportctl.extras.missing_extra(module, "x") is None
