"""The example reports projects in examples/: each validates, and each non-abstract spec renders real data.

Every spec is rendered with its default parameters, as its README's first commands do, into a temporary
folder; the manifest must match the files on disk, the CSV files must read back to the tables of the JSON
document, and the defaults must select data (a table with rows, every KPI with a value).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml

from conftest import CliResult

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROJECTS = sorted(config.parent for config in EXAMPLES.glob("*/reportctl.yaml"))

Cli = Callable[..., CliResult]


def _concrete_specs(project: Path) -> list[Path]:
    """The specs a user renders: every YAML file under specs/ that is not an abstract base."""
    specs = []
    for path in sorted((project / "specs").rglob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not document.get("abstract", False):
            specs.append(path)
    return specs


def test_the_three_examples_are_there() -> None:
    assert {p.name for p in PROJECTS} >= {"server-health", "sales", "web-analytics"}
    for project in PROJECTS:
        assert (project / "README.md").is_file()
        assert list((project / "specs" / "base").glob("*.yaml")), f"{project.name} has no base spec"


@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
def test_example_validates_and_renders(
    project: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    validated = cli("validate")
    assert validated.exit_code == 0, validated.stdout + validated.stderr

    specs = _concrete_specs(project)
    assert len(specs) >= 2
    for spec in specs:
        assert yaml.safe_load(spec.read_text(encoding="utf-8")).get("extends"), f"{spec.name} extends no base"
        output = tmp_path / spec.stem
        result = cli("render", str(spec.relative_to(project)), "-o", str(output), "--json")
        assert result.exit_code == 0, f"{spec.name}: {result.stderr}"
        run = json.loads(result.stdout)
        manifest_path = Path(run["manifest"])
        assert manifest_path.parent.is_relative_to(output)
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        assert manifest["status"] == "completed"

        # The manifest lists exactly the files written, with their sizes and hashes.
        directory = manifest_path.parent
        artifacts = {a["path"]: a for a in manifest["artifacts"]}
        assert set(artifacts) == {p.name for p in directory.iterdir()} - {"manifest.json", "preview"}
        for name, artifact in artifacts.items():
            content = (directory / name).read_bytes()
            assert artifact["bytes"] == len(content), name
            assert artifact["sha256"] == hashlib.sha256(content).hexdigest(), name
        every_format = {"pdf", "xlsx", "html", "md", "csv", "json"}
        assert every_format <= {a["format"] for a in artifacts.values()} <= every_format | {"png"}

        (json_name,) = [name for name, a in artifacts.items() if a["format"] == "json"]
        document = json.loads((directory / json_name).read_text(encoding="utf-8"))
        tables = {s["id"]: s for s in document["sections"] if s["type"] == "table"}
        assert any(t["row_count"] > 0 for t in tables.values()), f"{spec.name}: every table is empty"
        for section in document["sections"]:
            if section["type"] == "kpis":
                empty = [item["label"] for item in section["items"] if item["value"] is None]
                assert not empty, f"{spec.name}: KPIs without a value for the default parameters: {empty}"

        # Each table's CSV reads back with the JSON document's columns and rows.
        csv_names = [name for name, a in artifacts.items() if a["format"] == "csv"]
        assert len(csv_names) == len(tables)
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        for name in csv_names:
            table = tables[next(iter(tables)) if len(tables) == 1 else name.rsplit(".", 2)[-2]]
            frame = pl.read_csv(directory / name)  # plain RFC 4180: a reader's defaults open it
            assert frame.columns == [c["name"] for c in table["columns"]], name
            assert frame.height == table["row_count"] == len(table["rows"]), name
            entry = next(t for t in manifest["tables"] if t["id"] == table["id"])
            assert entry["rows"] == frame.height and [c["name"] for c in entry["columns"]] == frame.columns


DEMO = EXAMPLES.parent / "specs"  # the demo project: its reportctl.yaml sits beside its specs
DEMO_SPECS = [
    path
    for path in sorted(DEMO.rglob("*.yaml"))
    if (document := yaml.safe_load(path.read_text(encoding="utf-8"))).get("apiVersion")
    and not document.get("abstract", False)
]


@pytest.mark.parametrize("spec", DEMO_SPECS, ids=lambda path: path.name)
def test_a_spec_validate_passes_renders_without_a_spec_error(
    spec: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule of ``validate``: what it passes, render does not fail for a reason in the spec.

    The examples' specs are held to it by ``test_example_validates_and_renders`` above; this holds the project's
    own specs/ to it, which no other test renders.
    """
    monkeypatch.chdir(DEMO)
    relative = str(spec.relative_to(DEMO))
    validated = cli("validate", relative)
    assert validated.exit_code == 0, validated.stdout + validated.stderr
    result = cli("render", relative, "--no-state", "-f", "csv,json", "-o", str(tmp_path), "--json")
    assert result.exit_code == 0, f"{spec.name}: {result.stderr}"
    manifest = json.loads(Path(json.loads(result.stdout)["manifest"]).read_text(encoding="utf-8"))
    assert manifest["status"] == "completed"
    assert {a["format"] for a in manifest["artifacts"]} == {"csv", "json"}
