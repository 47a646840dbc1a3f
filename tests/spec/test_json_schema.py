"""`reportctl schema` against every spec the project ships or documents, and against a corpus of broken specs.

Each spec the schema accepts must also pass ``load_spec`` structurally (the models and plugin options), so the schema
and the validator agree. Files are read as an editor reads them: YAML 1.2 booleans (``on:`` is a key, not ``true``),
as reportctl's loader does, and dates as the text they are.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError

from conftest import CliResult
from reportctl.config import CONFIG_NAME, ProjectConfig
from reportctl.delivery.directory import PeopleFile
from reportctl.errors import SpecError
from reportctl.plugins import forget_plugins
from reportctl.scaffold import create_project
from reportctl.spec.files import find_yaml
from reportctl.spec.loader import load_spec
from reportctl.spec.models import Spec
from reportctl.spec.schema import SCHEMA_FILE, spec_json_schema
from reportctl.spec.yamlpos import load_yaml

Cli = Callable[..., CliResult]

ROOT = Path(__file__).parents[2]
CASES = sorted((Path(__file__).parent / "schema_cases").glob("*.yaml"))
PLUGINS = Path(__file__).parent / "plugins"
SPEC_KEYS = {field.alias or name for name, field in Spec.model_fields.items()}


def shipped_specs() -> list[Path]:
    """The spec files of specs/ and of each example's specs/, as ``reportctl validate`` finds them."""
    folders = [ROOT / "specs", *sorted(ROOT.glob("examples/*/specs"))]
    return [f for f in find_yaml(folders) if f.name != CONFIG_NAME]


def doc_blocks() -> list[tuple[str, str]]:
    """Each ```yaml block of the docs (README.md, docs/, other top-level and example Markdown) as ("FILE:LINE",
    text)."""
    docs = [
        ROOT / "README.md",
        *sorted(ROOT.glob("docs/*.md")),
        *sorted(ROOT.glob("*.md")),
        *sorted(ROOT.glob("examples/**/*.md")),
    ]
    blocks = []
    for doc in dict.fromkeys(d for d in docs if d.name != "CHANGELOG.md"):
        text = doc.read_text()
        for match in re.finditer(r"^```ya?ml\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
            where = f"{doc.relative_to(ROOT).as_posix()}:{text.count(chr(10), 0, match.start()) + 2}"
            blocks.append((where, match.group(1)))
    return blocks


def as_editor_reads(text: str, file: Path) -> Any:
    return json.loads(json.dumps(load_yaml(text, file), default=str))


def leaf_errors(validator: Draft202012Validator, data: Any) -> list[tuple[str, str]]:
    """Every error as (dotted path, message), descending into the alternatives of anyOf, oneOf and if/then."""

    def leaves(error: ValidationError) -> Iterator[tuple[str, str]]:
        if not error.context:
            yield ".".join(str(p) for p in error.absolute_path), error.message
        for child in error.context or ():
            yield from leaves(child)

    return [leaf for error in validator.iter_errors(data) for leaf in leaves(error)]


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = spec_json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def init_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project as ``reportctl init`` writes it, where README examples (which extend base/ops.yaml) can load."""
    folder = tmp_path_factory.mktemp("init") / "reports"
    create_project(folder)
    return folder


@pytest.mark.parametrize("spec", shipped_specs(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_spec_is_valid(validator: Draft202012Validator, spec: Path) -> None:
    assert leaf_errors(validator, as_editor_reads(spec.read_text(), spec)) == []
    load_spec(spec, check=False)


def test_the_shipped_specs_are_all_found() -> None:
    found = {p.relative_to(ROOT).as_posix() for p in shipped_specs()}
    assert {"specs/error-budget.yaml", "specs/base/ops.yaml", "examples/sales/specs/targets.yaml"} <= found
    assert len(found) >= 13


def test_every_init_spec_is_valid_and_names_the_schema_file(
    validator: Draft202012Validator, init_project: Path
) -> None:
    specs = [f for f in find_yaml([init_project / "specs"]) if f.name != CONFIG_NAME]
    assert [s.relative_to(init_project).as_posix() for s in specs] == [
        "specs/base/ops.yaml",
        "specs/server-health.yaml",
    ]
    for spec in specs:
        first_line, _, _ = spec.read_text().partition("\n")
        prefix = "# yaml-language-server: $schema="
        assert first_line.startswith(prefix)
        # the editor resolves the path from the spec's folder; it must reach the file init wrote
        target = (spec.parent / first_line.removeprefix(prefix)).resolve()
        assert target == (init_project / SCHEMA_FILE).resolve()
        assert json.loads(target.read_text()) == validator.schema
        assert leaf_errors(validator, as_editor_reads(spec.read_text(), spec)) == []
        load_spec(spec, check=False)


@pytest.mark.parametrize(("where", "block"), doc_blocks(), ids=[where for where, _ in doc_blocks()])
def test_every_documented_example_is_valid(
    validator: Draft202012Validator, init_project: Path, where: str, block: str
) -> None:
    """A block with ``apiVersion`` is a spec. One whose keys are all spec keys is a fragment, checked as a complete
    spec with ``apiVersion`` and ``name`` added. One whose keys all belong to reportctl.yaml or people.yaml is checked
    by that file's model. Any other block is another tool's file (a CI workflow, a pre-commit config), left alone."""
    data = as_editor_reads(block, Path(where))
    assert isinstance(data, dict), f"{where}: a YAML example should be a mapping"
    if "apiVersion" not in data and not set(data) <= SPEC_KEYS:
        for model in (ProjectConfig, PeopleFile):
            if set(data) <= set(model.model_fields):
                model.model_validate(data)
        return
    spec = data if "apiVersion" in data else {"apiVersion": "reportctl/v1", "name": "doc-example", **data}
    assert leaf_errors(validator, spec) == []
    file = init_project / "specs" / "doc-example.yaml"
    file.write_text(json.dumps(spec))  # JSON is YAML: the validator reads exactly what the schema checked
    try:
        load_spec(file, check=False)
    finally:
        file.unlink()


def test_documented_examples_are_found() -> None:
    blocks = [block for where, block in doc_blocks() if where.startswith(("README.md:", "docs/"))]
    assert sum("apiVersion: reportctl/v1" in b for b in blocks) >= 2
    assert sum(set(yaml.safe_load(b)) <= SPEC_KEYS for b in blocks) >= 10


@pytest.mark.parametrize("case_file", CASES, ids=[c.stem for c in CASES])
def test_schema_case(validator: Draft202012Validator, case_file: Path, tmp_path: Path) -> None:
    """Each case holds a spec (and the base it extends); the schema and ``load_spec`` must both accept it, or both
    reject it, the schema with an error at each expected path."""
    case = as_editor_reads(case_file.read_text(), case_file)
    (tmp_path / "reportctl.yaml").write_text("timezone: UTC\n")
    (tmp_path / "specs").mkdir()
    if "base" in case:
        (tmp_path / "specs" / "base.yaml").write_text(case["base"])
    spec_file = tmp_path / "specs" / "report.yaml"
    spec_file.write_text(case["spec"])
    errors = leaf_errors(validator, as_editor_reads(case["spec"], spec_file))
    if "errors" not in case:
        assert errors == []
        load_spec(spec_file, check=False)
        return
    for expected in case["errors"]:
        at_path = [message for path, message in errors if path == expected["path"]]
        assert any(expected["message"] in m for m in at_path), (expected, errors)
    with pytest.raises(SpecError) as caught:
        load_spec(spec_file, check=False)
    assert any(case["problem"] in str(p) for p in caught.value.problems), caught.value.problems


def _forget_plugins() -> None:
    forget_plugins()
    importlib.invalidate_caches()


@pytest.fixture
def third_party_writers(tmp_path: Path) -> Iterator[None]:
    """Installs tests/spec/plugins/thirdparty_writers.py as a distribution whose entry points add two writers."""
    site = tmp_path / "site"
    dist_info = site / "reportctl_thirdparty_writers-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: reportctl-thirdparty-writers\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[reportctl.writers]\ndocx = thirdparty_writers:DocxWriter\nodt = thirdparty_writers:OdtWriter\n"
    )
    added = [str(site), str(PLUGINS)]
    sys.path[:0] = added
    _forget_plugins()
    try:
        yield
    finally:
        for entry in added:
            sys.path.remove(entry)
        sys.modules.pop("thirdparty_writers", None)
        _forget_plugins()


REPORT = """\
apiVersion: reportctl/v1
name: report
sources:
  metrics: {kind: sample, rows: 10}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: OUTPUTS
"""


def test_a_third_party_writer_does_not_break_the_schema(cli: Cli, project: Path, third_party_writers: None) -> None:
    result = cli("schema")
    assert result.exit_code == 0, result.stderr
    schema = json.loads(result.stdout)
    outputs = schema["$defs"]["Spec"]["properties"]["outputs"]["anyOf"][0]["items"]["anyOf"]
    assert outputs[0]["enum"] == ["csv", "docx", "html", "json", "md", "odt", "pdf", "png", "svg", "xlsx"]
    assert {"DocxOptions", "OdtOptions"} <= set(schema["$defs"])
    validator = Draft202012Validator(schema)
    good = REPORT.replace("OUTPUTS", "[docx, {format: odt, page_size: Letter}, csv]")
    bad = REPORT.replace("OUTPUTS", "[{format: odt, page_sise: Letter}, {format: docx, page_size: A5}]")
    spec = project / "specs" / "report.yaml"
    spec.write_text(good)
    assert leaf_errors(validator, as_editor_reads(good, spec)) == []
    assert cli("validate", str(spec)).exit_code == 0
    spec.write_text(bad)
    errors = leaf_errors(validator, as_editor_reads(bad, spec))
    assert ("outputs.0", "Additional properties are not allowed ('page_sise' was unexpected)") in errors
    assert ("outputs.1.page_size", "'A5' is not one of ['A4', 'Letter']") in errors
    result = cli("validate", str(spec))
    assert result.exit_code == 1
    assert "outputs[0].page_sise" in result.stdout and "outputs[1].page_size" in result.stdout


def test_channel_defaults_of_the_project_may_be_left_out(cli: Cli, project: Path) -> None:
    spec = project / "specs" / "report.yaml"
    text = "apiVersion: reportctl/v1\nname: report\ndelivery:\n  - {channel: webhook}\n"
    spec.write_text(text)
    data = as_editor_reads(text, spec)
    assert ("delivery.0", "'url' is a required property") in leaf_errors(Draft202012Validator(spec_json_schema()), data)
    (project / "reportctl.yaml").write_text(
        "timezone: UTC\nchannels:\n  webhook: {url: 'https://hooks.example.com/r'}\n"
    )
    result = cli("schema")
    assert result.exit_code == 0, result.stderr
    assert leaf_errors(Draft202012Validator(json.loads(result.stdout)), data) == []
    assert cli("validate", str(spec)).exit_code == 0
