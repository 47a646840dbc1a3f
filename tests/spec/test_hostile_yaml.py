"""Hostile YAML finds no hole: alias bombs, self-referencing aliases, deep nesting, characters YAML refuses and bytes
that are not UTF-8 each end in one positioned line, through the libyaml and the pure-Python loader, through every
YAML file reportctl reads, and through ``validate`` and ``render``.

No test asserts a wall-clock time: the alias bombs here expand to 10^10 values, so a loader without the budget would
not finish (nor fit in memory) at all, and the nesting goes past Python's recursion limit, so a recursive walk fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from conftest import CliResult
from reportctl.config import find_project, load_config
from reportctl.delivery.directory import load_directory
from reportctl.errors import SpecError
from reportctl.spec import yamlpos
from reportctl.spec.reading import WORKING_TREE, read_spec_text
from reportctl.spec.yamlpos import (
    SELF_ALIAS,
    TOO_DEEP,
    TOO_MANY_ALIASED,
    YamlLimitError,
    load_plain,
    load_yaml,
)

Cli = Callable[..., CliResult]
FILE = Path("spec.yaml")


def _alias_bomb(levels: int = 10) -> str:
    """Ten anchors, each a list of ten aliases to the one before: 10^levels values from a few hundred bytes."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int = 10) -> str:
    """The same with merge keys: each mapping merges the one before ten times."""
    lines = ["m0: &m0 {k: v}"]
    lines += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _flow(depth: int) -> str:
    return f"labels: {'[' * depth}{']' * depth}\n"


def _block_sequences(depth: int) -> str:
    return "labels:\n  " + "- " * depth + "x\n"


def _block_mappings(depth: int) -> str:
    return "".join(f"{' ' * level}k{level}:\n" for level in range(depth)) + f"{' ' * depth}x: 1\n"


# Each hostile document and the one line it must give. Nesting is refused at the first value on level 65: the root
# mapping is level 1, so in ``labels: [[[...`` the 64th bracket; in nested mappings the key of the 64th.
HOSTILE = {
    "alias-bomb": (_alias_bomb(), f"spec.yaml:5:5: {TOO_MANY_ALIASED}"),
    "merge-key-bomb": (_merge_bomb(), f"spec.yaml:6:5: {TOO_MANY_ALIASED}"),
    "self-alias-sequence": ("labels: &r [*r]\n", f"spec.yaml:1:9: {SELF_ALIAS}"),
    "self-alias-mapping": ("name: x\nlabels: &r {inner: {again: *r}}\n", f"spec.yaml:2:9: {SELF_ALIAS}"),
    "self-merge": ("base: &b {<<: *b, x: 1}\n", f"spec.yaml:1:7: {SELF_ALIAS}"),
    "flow-500": (_flow(500), f"spec.yaml:1:72: {TOO_DEEP}"),
    "flow-10000": (_flow(10_000), f"spec.yaml:1:72: {TOO_DEEP}"),
    "flow-mappings-500": ("labels: " + "{a: " * 500 + "1" + "}" * 500 + "\n", f"spec.yaml:1:258: {TOO_DEEP}"),
    "block-sequences-500": (_block_sequences(500), f"spec.yaml:2:129: {TOO_DEEP}"),
    "block-sequences-10000": (_block_sequences(10_000), f"spec.yaml:2:129: {TOO_DEEP}"),
    "block-mappings-500": (_block_mappings(500), f"spec.yaml:64:64: {TOO_DEEP}"),
    "nul": (
        'name: x\ntitle: "a\x00b"\n',
        "spec.yaml:2:10: invalid YAML: control character U+0000 is not allowed in a YAML file; remove it, or write "
        'it as "\\x00" inside a double-quoted string',
    ),
    "bell-after-non-ascii": (
        "name: x\ntitle: café \x07\n",
        "spec.yaml:2:13: invalid YAML: control character U+0007 is not allowed in a YAML file; remove it, or write "
        'it as "\\x07" inside a double-quoted string',
    ),
    "lone-surrogate": (
        "name: x\ntitle: a\ud800\n",
        "spec.yaml:2:9: invalid YAML: character U+D800 is not allowed in a YAML file; remove it",
    ),
    "nul-after-bom": ("\ufeffname: \x00\n", "spec.yaml:1:7: invalid YAML: control character U+0000"),
    "nul-in-crlf": ("name: x\r\ntitle: y\r\nz: \x00\r\n", "spec.yaml:3:4: invalid YAML: control character U+0000"),
}


@pytest.fixture(params=["libyaml", "pure-python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs through libyaml's parser (with its pure-Python fallback for syntax errors) and through the
    pure-Python loader alone, as on a PyYAML built without libyaml."""
    if request.param == "libyaml" and not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    if request.param == "pure-python":
        monkeypatch.setattr(yamlpos, "_FastLoader", yamlpos._Loader)
    yield request.param


@pytest.mark.parametrize(("text", "expected"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_yaml_is_one_positioned_line(loader: str, text: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_yaml(text, FILE)

    [problem] = caught.value.problems
    assert str(problem).startswith(expected)
    assert "\n" not in str(problem)


@pytest.mark.parametrize("text", [text for text, _ in HOSTILE.values()], ids=HOSTILE.keys())
def test_load_plain_refuses_the_same_as_a_yaml_error(loader: str, text: str) -> None:
    # load_plain picks the specs `render DIR` renders: a YAMLError there means "render it and report its error"
    with pytest.raises(yaml.YAMLError):
        load_plain(text)


def test_the_alias_budget_counts_every_value_an_alias_repeats(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlpos, "MAX_ALIAS_VALUES", 110)
    ten = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"

    # each alias repeats eleven values: the list and its ten items
    assert len(load_yaml(ten + "b: [" + ", ".join(["*a"] * 10) + "]\n", FILE)["b"]) == 10
    with pytest.raises(SpecError, match=r"^spec.yaml:2:4: aliases expand to more than"):
        load_yaml(ten + "b: [" + ", ".join(["*a"] * 11) + "]\n", FILE)


def test_written_out_values_do_not_count_against_the_alias_budget(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlpos, "MAX_ALIAS_VALUES", 100)
    rows = "".join(f"  - [{i}, {i + 1}, {i + 2}]\n" for i in range(100))  # 400 values written out, no alias

    assert len(load_yaml("rows:\n" + rows, FILE)["rows"]) == 100


def test_honest_aliases_and_merge_keys_still_load(loader: str) -> None:
    text = "base: &base {x: 1, y: [a, b]}\nuse: *base\nmerged: {<<: *base, z: 3}\ndeep: " + "[" * 62 + "]" * 62
    data = load_yaml(text, FILE)

    assert data["use"] == {"x": 1, "y": ["a", "b"]}
    assert data["merged"] == {"x": 1, "y": ["a", "b"], "z": 3}
    assert data.value_positions["merged"].line == 3


def test_a_byte_order_mark_and_crlf_line_ends_load_with_their_positions(loader: str) -> None:
    data = load_yaml("\ufeffname: x\r\ntitle: y\r\nlabels: {a: b}\r\n", FILE)

    assert data == {"name": "x", "title": "y", "labels": {"a": "b"}}
    assert (data.key_positions["name"].column, data.value_positions["labels"].line) == (1, 3)


def test_the_limit_error_carries_the_mark_of_the_refused_node() -> None:
    with pytest.raises(YamlLimitError) as caught:
        load_plain("a:\n  b: &r [*r]\n")

    assert (caught.value.mark.line, caught.value.mark.column) == (1, 5)


# Bytes that are not UTF-8, placed by line and column (columns count characters, as an editor does)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            b"name: x\ntitle: caf\xe9\n",
            "spec.yaml:2:11: not UTF-8 text: byte 0xE9 starts no valid UTF-8 character (invalid continuation byte)",
            id="latin-1",
        ),
        pytest.param(
            "name: x\r\n\r\ntitle: Zürich ".encode() + b"\xed\xa0\x80\r\n",
            "spec.yaml:3:15: not UTF-8 text: byte 0xED starts no valid UTF-8 character (invalid continuation byte)",
            id="encoded-surrogate-after-crlf-and-umlaut",
        ),
        pytest.param(
            b"\xef\xbb\xbfname: \xff\n",
            "spec.yaml:1:7: not UTF-8 text: byte 0xFF starts no valid UTF-8 character (invalid start byte)",
            id="after-a-bom",
        ),
        pytest.param(
            b"name: x\ntitle: \xe2\x82",
            "spec.yaml:2:8: not UTF-8 text: byte 0xE2 starts no valid UTF-8 character (unexpected end of data)",
            id="cut-short",
        ),
    ],
)
def test_bytes_that_are_not_utf8_are_placed(tmp_path: Path, data: bytes, expected: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(data)

    with pytest.raises(SpecError) as caught:
        read_spec_text(WORKING_TREE, spec)

    [problem] = caught.value.problems
    assert str(problem) == f"{tmp_path}/{expected}; save the file as UTF-8"


# The other YAML files reportctl reads


def test_reportctl_yaml_goes_through_the_same_limits(project: Path) -> None:
    (project / "reportctl.yaml").write_text("timezone: UTC\nchannels: &c {email: *c}\n")

    with pytest.raises(SpecError) as caught:
        load_config(project / "reportctl.yaml")

    assert str(caught.value) == f"{project}/reportctl.yaml:2:11: {SELF_ALIAS}"


def test_reportctl_yaml_that_is_not_utf8_is_placed(project: Path) -> None:
    (project / "reportctl.yaml").write_bytes(b"timezone: UTC\n# caf\xe9\n")

    with pytest.raises(SpecError, match=r"reportctl.yaml:2:6: not UTF-8 text: byte 0xE9"):
        load_config(project / "reportctl.yaml")


def test_people_yaml_goes_through_the_same_limits(project: Path) -> None:
    (project / "people.yaml").write_text(f"people: {_flow(500).removeprefix('labels: ')}")

    with pytest.raises(SpecError) as caught:
        load_directory(find_project(project))

    assert str(caught.value) == f"{project}/people.yaml:1:72: {TOO_DEEP}"


# Through the command line: exit 1 (a spec error), one line, no traceback


@pytest.mark.parametrize("command", ["validate", "render"])
@pytest.mark.parametrize(
    "name", ["alias-bomb", "self-alias-sequence", "flow-10000", "block-sequences-500", "nul", "lone-surrogate"]
)
def test_the_cli_reports_hostile_yaml_as_a_spec_error(cli: Cli, project: Path, command: str, name: str) -> None:
    text, expected = HOSTILE[name]
    spec = project / "specs" / "spec.yaml"
    spec.write_bytes(text.encode("utf-8", "surrogatepass"))  # the lone surrogate as the bytes an editor would save

    result = cli(command, str(spec))

    assert result.exit_code == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "internal error" not in output
    if name == "lone-surrogate":  # as bytes it is no UTF-8: refused when decoded, before YAML sees it
        expected = "spec.yaml:2:9: not UTF-8 text: byte 0xED starts no valid UTF-8 character"
    [line] = [line for line in output.splitlines() if "spec.yaml:" in line]
    assert line.removeprefix("error: ").removeprefix(f"{project}/").startswith(f"specs/{expected}")


def test_render_of_a_folder_reports_each_hostile_spec(cli: Cli, project: Path) -> None:
    (project / "specs" / "bomb.yaml").write_text("apiVersion: reportctl/v1\nname: bomb\n" + _alias_bomb())
    (project / "specs" / "deep.yaml").write_text("apiVersion: reportctl/v1\nname: deep\n" + _flow(10_000))

    result = cli("render", str(project / "specs"), "--jobs", "1")

    assert result.exit_code == 1
    assert f"{project}/specs/bomb.yaml:7:5: {TOO_MANY_ALIASED}" in result.stderr
    assert f"{project}/specs/deep.yaml:3:72: {TOO_DEEP}" in result.stderr
    assert "internal error" not in result.stdout + result.stderr
