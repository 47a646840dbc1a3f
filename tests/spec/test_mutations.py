"""The mutation corpus: a typo in any name a spec references fails ``validate`` at that name's file and line.

For each concrete spec in specs/ and examples/*/specs, every place that names something is found: dataset ``from``
and join datasets and keys; columns in where, derive, aggregate, having, group_by, sort, select and ``on``; table
``columns`` keys and formulas; chart x, y and series; datasets and columns in KPI values; and in templates the
context's variables, their attributes, dataset columns and the column arguments of ``sum``/``max``/... Each name
in turn gets a typo (a letter dropped), in a copy of the project, and loading the spec must fail with a problem at
the file and line where the typo sits (for a multi-line folded value such as ``where: >-``, the value's first
line, which is where validate places problems of the whole expression).

Skipped, because validate cannot know them without the data:
- column names of datasets whose schema is unknown to validate (today a ``sql`` source's result; a helper that
  derives SQL result columns turns these on by itself, as the schemas are asked of validate's own code);
- names inside SQL text (a ``sql`` source's query, a dataset's ``sql``), which another suite mutates;
- template names whose value validate cannot type (the result of a filter, a call or arithmetic, a local set from
  one, a numeric or optional parameter) and local variable names themselves (renaming a ``{% set %}`` target and a
  use on the same line together would be no typo).
The site list is found independently of the checker under test: from the spec's structure and a small model of
what each template variable is, so a name the checker forgot to check fails here.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jinja2 import nodes

from reportctl.config import find_project
from reportctl.errors import Position, SpecError
from reportctl.spec.checks import _check_parameters, _dataset_schemas
from reportctl.spec.loader import LoadedSpec, load_spec
from reportctl.spec.yamlpos import position_of
from reportctl.templating import _environment
from shipped_specs import ROOT, concrete_specs

# Each spec has 20 to 160 sites and a load takes 0.05 to 0.8 s, so a sample is taken: every kind of site in turn
# (from, where, columns, template attribute, ...), seeded by the spec's name so that a failure reproduces.
# REPORTCTL_ALL_MUTATIONS=1 tries every site (about 600, two minutes).
PER_SPEC = 0 if os.environ.get("REPORTCTL_ALL_MUTATIONS") else 12
_WORD = re.compile(r"'[^']*'|\"[^\"]*\"|:?\b[A-Za-z_]\w*\b(?:\s*\()?")
_DATASET_METHODS = {"sum", "mean", "min", "max", "column"}


SPECS = concrete_specs()


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` by ``new`` at each of ``offsets`` of ``file``; validate must object at ``expect``."""

    what: str
    file: Path
    offsets: tuple[int, ...]
    old: str
    new: str
    line: int
    expect: int


class _Sites:
    """Collects mutations for one loaded spec, the file texts it was read from, and what validate knows."""

    def __init__(self, loaded: LoadedSpec, schemas: dict[str, list[str] | None], words: set[str]) -> None:
        self.loaded = loaded
        self.schemas = schemas
        self.words = words
        self.texts: dict[Path, str] = {}
        self.found: dict[tuple[Path, int, str], Mutation] = {}

    def text(self, file: Path) -> str:
        if file not in self.texts:
            self.texts[file] = file.read_text(encoding="utf-8")
        return self.texts[file]

    def typo(self, name: str) -> str:
        """``name`` with a letter dropped, so that it names nothing else in the project."""
        for index in range(len(name) - 2, -1, -1):
            candidate = name[:index] + name[index + 1 :]
            if candidate and candidate[0].isalpha() and candidate not in self.words:
                return candidate
        return name + "q"

    def known(self, dataset: str | None) -> bool:
        return dataset is not None and self.schemas.get(dataset) is not None

    def columns(self, *datasets: str | None) -> set[str]:
        return {c for d in datasets if d is not None for c in (self.schemas.get(d) or [])}

    def add(self, what: str, file: Path, offsets: Sequence[int], name: str, expect: int | None = None) -> None:
        text = self.text(file)
        line = text.count("\n", 0, offsets[0]) + 1
        key = (file, offsets[0], name)
        if key not in self.found:
            self.found[key] = Mutation(what, file, tuple(offsets), name, self.typo(name), line, expect or line)

    def value(self, path: tuple[Any, ...], name: str, what: str, occurrence: int = 0) -> None:
        """The ``occurrence``-th whole-word ``name`` in the YAML value at ``path``."""
        position = position_of(self.loaded.data, path)
        if position is None:
            return
        text = self.text(position.file)
        start = _offset(text, position)
        matches = list(re.finditer(rf"(?<!\w){re.escape(name)}\b", text[start : _value_end(text, position)]))
        if len(matches) <= occurrence:
            return
        offset = start + matches[occurrence].start()
        line = self.text(position.file).count("\n", 0, offset) + 1
        # a folded multi-line value is placed at its first line, the line validate reports for it
        self.add(what, position.file, [offset], name, position.line if line != position.line else line)

    def expression(self, path: tuple[Any, ...], text: str, columns: set[str], what: str) -> None:
        for match in _WORD.finditer(text):
            token = match.group(0)
            if token[0] in "'\":" or token.endswith("("):
                continue
            word = token.strip()
            occurrence = len(re.findall(rf"(?<!\w){re.escape(word)}\b", text[: match.start()]))
            if word in columns:
                self.value(path, word, what, occurrence)


def _offset(text: str, position: Position) -> int:
    lines = text.splitlines(keepends=True)
    return sum(len(line) for line in lines[: position.line - 1]) + position.column - 1


def _value_end(text: str, position: Position) -> int:
    """Where the YAML value at ``position`` ends: before the next line indented no deeper than its own line."""
    lines = text.splitlines(keepends=True)
    indent = len(lines[position.line - 1]) - len(lines[position.line - 1].lstrip())
    end = position.line
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent or lines[end].lstrip()[0] == "#"
    ):
        end += 1
    return sum(len(line) for line in lines[:end])


def _dataset_sites(sites: _Sites) -> None:
    for name, dataset in sites.loaded.spec.datasets.items():
        at = ("datasets", name)
        if dataset.from_ is None:
            continue  # a 'sql' dataset: its SQL text is another suite's
        sites.value((*at, "from"), dataset.from_, f"{name}.from")
        joined = [join.dataset for join in dataset.join]
        for index, join in enumerate(dataset.join):
            sites.value((*at, "join", index, "dataset"), join.dataset, f"{name}.join.dataset")
        if not sites.known(name):
            continue
        columns = sites.columns(dataset.from_, *joined, name) | set(dataset.derive)
        for index, join in enumerate(dataset.join):
            for key in ("on", "left_on", "right_on"):
                for position, column in enumerate(getattr(join, key) or []):
                    listed = isinstance(sites_raw(sites, at, "join", index, key), list)
                    path = (*at, "join", index, key, *((position,) if listed else ()))
                    sites.value(path, column, f"{name}.join.{key}")
        for key in ("where", "having"):
            text = getattr(dataset, key)
            if text:
                sites.expression((*at, key), text, columns, f"{name}.{key}")
        for key in ("derive", "aggregate"):
            for output, text in getattr(dataset, key).items():
                sites.expression((*at, key, output), text, columns, f"{name}.{key}.{output}")
        for key in ("group_by", "sort", "select"):
            for position, column in enumerate(getattr(dataset, key) or []):
                raw = sites_raw(sites, at, key)
                path = (*at, key, position) if isinstance(raw, list) else (*at, key)
                sites.value(path, column.lstrip("-"), f"{name}.{key}")
        if dataset.on:
            sites.value((*at, "on"), dataset.on, f"{name}.on")


def sites_raw(sites: _Sites, at: tuple[Any, ...], *keys: Any) -> Any:
    """The value as written in YAML (a string or a list), which decides whether an item has its own position."""
    node: Any = sites.loaded.data
    for key in (*at, *keys):
        present = key in node if isinstance(node, dict) else isinstance(node, list) and 0 <= key < len(node)
        if present:
            node = node[key]
        elif not isinstance(key, int):  # an index into one join written as a mapping is passed over
            return None
    return node


def _section_sites(sites: _Sites) -> None:
    from reportctl.spec.models import ChartSection, KpisSection, TableSection

    for index, section in enumerate(sites.loaded.spec.sections):
        at = ("sections", index)
        if isinstance(section, TableSection | ChartSection):
            sites.value((*at, "dataset"), section.dataset, f"{section.id}.dataset")
            if not sites.known(section.dataset):
                continue
        if isinstance(section, TableSection):
            columns = sites.columns(section.dataset)
            for name, column in section.columns.items():
                if column.formula:
                    sites.expression((*at, "columns", name, "formula"), column.formula, columns, f"{name}.formula")
                    columns.add(name)
                else:
                    key = position_of(sites.loaded.data, (*at, "columns"))
                    value = position_of(sites.loaded.data, (*at, "columns", name))
                    if key is not None and value is not None:
                        text = sites.text(value.file)
                        match = re.compile(rf"\b{re.escape(name)}\s*:").search(text, _offset(text, key))
                        if match:
                            sites.add(f"{section.id}.columns", value.file, [match.start()], name, value.line)
        elif isinstance(section, ChartSection):
            sites.value((*at, "x"), section.x, f"{section.id}.x")
            raw = sites_raw(sites, at, "y")
            for position, column in enumerate(section.y):
                sites.value((*at, "y", position) if isinstance(raw, list) else (*at, "y"), column, f"{section.id}.y")
            if section.series:
                sites.value((*at, "series"), section.series, f"{section.id}.series")
        elif isinstance(section, KpisSection):
            for item_index, item in enumerate(section.items):
                path = (*at, "items", item_index, "value")
                named = re.findall(r"\b([A-Za-z_]\w*)\b(?!\s*\()", item.value)
                datasets = [word for word in named if word in sites.schemas]
                for word in dict.fromkeys(datasets):
                    sites.value(path, word, f"{section.id}.kpi dataset")
                if all(sites.known(d) for d in datasets):
                    for dataset, column in set(re.findall(r"\b(\w+)\.(\w+)\b", item.value)):
                        sites.expression(path, column, sites.columns(dataset), f"{section.id}.kpi column")


def _template_sites(sites: _Sites) -> None:
    from reportctl.spec.models import TextSection

    spec = sites.loaded.spec
    report_names = {*spec.parameters, "datasets", "run", "report", "params", "name"}
    templates: list[tuple[tuple[Any, ...], str, set[str]]] = []
    if spec.title:
        templates.append((("title",), spec.title, report_names))
    for index, section in enumerate(spec.sections):
        if isinstance(section, TextSection):
            templates.append((("sections", index, "template"), section.template, report_names | {"title"}))
    delivery_names = {"title", "name", "run", "params", "parameters", "artifacts"}
    for index, entry in enumerate(sites.loaded.deliveries):
        for key in ("subject", "body"):
            text = getattr(entry, key, None)
            raw = sites_raw(sites, ("delivery", index))
            if isinstance(text, str) and isinstance(raw, dict) and key in raw:  # written, not a channel default
                templates.append((("delivery", index, key), text, delivery_names))
    for at, source, context in templates:
        position = position_of(sites.loaded.data, at)
        if position is None:
            continue
        text = sites.text(position.file)
        literal = text[_offset(text, position) :].startswith("|")
        if "\n" in source.strip() and not literal:
            continue  # a folded or quoted multi-line template: its lines are not the file's
        lines = text.splitlines(keepends=True)
        for line, kind, name in _checkable_names(source, context, sites, at[0] == "delivery"):
            file_line = position.line + line if literal else position.line
            start = sum(len(item) for item in lines[: file_line - 1])
            content = lines[file_line - 1]
            pattern = {
                "name": rf"(?<![\w.'\"]){re.escape(name)}\b(?!['\"])",
                "attr": rf"(?<=\.){re.escape(name)}\b",
                "arg": rf"(?<=['\"]){re.escape(name)}(?=['\"])",
            }[kind]
            offsets = [start + match.start() for match in re.finditer(pattern, content)]
            if offsets:
                sites.add(f"{format_at(at)} {kind}", position.file, offsets, name, file_line)


def format_at(at: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in at)


def _chain(node: nodes.Node) -> list[str] | None:
    """['datasets', 'top', 'first', 'name'] for ``datasets.top.first.name``; None for anything but names."""
    parts: list[str] = []
    while isinstance(node, nodes.Getattr):
        parts.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name):
        return None
    return [node.name, *reversed(parts)]


def _checkable_names(source: str, context: set[str], sites: _Sites, delivery: bool) -> Iterator[tuple[int, str, str]]:
    """(template line, kind, name) of each name whose typo validate must catch, by a model of what names are."""
    spec = sites.loaded.spec
    tree = _environment().parse(source)
    aliases: dict[str, tuple[str, str]] = {}  # local -> (dataset, 'row' or 'dataset')
    for node in tree.find_all((nodes.Assign, nodes.For)):
        target, value = (node.target, node.node) if isinstance(node, nodes.Assign) else (node.target, node.iter)
        chain = _chain(value)
        if not isinstance(target, nodes.Name) or not chain or chain[0] != "datasets" or len(chain) < 2:
            continue
        rest = chain[2:]
        if isinstance(node, nodes.For) and rest in ([], ["rows"]):
            aliases[target.name] = (chain[1], "row")
        elif isinstance(node, nodes.Assign) and rest == []:
            aliases[target.name] = (chain[1], "dataset")
        elif isinstance(node, nodes.Assign) and rest == ["first"]:
            aliases[target.name] = (chain[1], "row")
    typed = {
        name
        for name, parameter in spec.parameters.items()
        if parameter.type in ("period", "string", "choice", "date", "datetime", "duration")
        and not (parameter.default is None and parameter.required is False)
    }
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name in context and node.name not in aliases:
            yield node.lineno, "name", node.name
    for node in tree.find_all(nodes.Getattr):
        chain = _chain(node)
        if chain is None:
            continue
        root, attrs = chain[0], chain[1:]
        depth = len(attrs) - 1
        checkable = False
        if root in aliases and root not in context:
            dataset, level = aliases[root]
            if level == "row":
                checkable = depth == 0 and sites.known(dataset)
            else:
                checkable = depth == 0 or (depth == 1 and attrs[0] == "first" and sites.known(dataset))
        elif root == "datasets" and not delivery:
            checkable = depth <= 1 or (depth == 2 and attrs[1] == "first" and sites.known(attrs[0]))
        elif root in ("run", "report", "params", "loop") or (root in typed and not delivery):
            is_period = root in spec.parameters and spec.parameters[root].type == "period"
            checkable = depth == 0 or (depth == 1 and is_period and attrs[0] in ("start", "end", "last_day"))
        if checkable:
            yield node.lineno, "attr", node.attr
    for call in tree.find_all(nodes.Call):
        chain = _chain(call.node)
        if not chain or chain[-1] not in _DATASET_METHODS or not call.args:
            continue
        argument = call.args[0]
        dataset = chain[1] if chain[0] == "datasets" and len(chain) == 3 else None
        if chain[0] in aliases and aliases[chain[0]][1] == "dataset" and len(chain) == 2:
            dataset = aliases[chain[0]][0]
        if dataset and sites.known(dataset) and isinstance(argument, nodes.Const) and isinstance(argument.value, str):
            yield call.lineno, "arg", argument.value


def _mutations(loaded: LoadedSpec) -> list[Mutation]:
    now = datetime.now(UTC)
    problems: list[Any] = []
    values = _check_parameters(loaded, now, problems)
    schemas = _dataset_schemas(loaded, values, now, problems)
    assert not problems
    columns = {name: None if schema is None else list(schema.names()) for name, schema in schemas.items()}
    words = set(re.findall(r"\w+", "".join(f.read_text(encoding="utf-8") for f in loaded.files)))
    sites = _Sites(loaded, columns, words)
    _dataset_sites(sites)
    _section_sites(sites)
    _template_sites(sites)
    return list(sites.found.values())


def _sample(mutations: list[Mutation], seed: str) -> list[Mutation]:
    """``PER_SPEC`` mutations, taking each kind of site in turn (all of them when ``PER_SPEC`` is 0)."""
    if not PER_SPEC:
        return mutations
    kinds: dict[str, list[Mutation]] = {}
    for mutation in random.Random(seed).sample(mutations, len(mutations)):
        kinds.setdefault(mutation.what.rpartition(" ")[2].rpartition(".")[2], []).append(mutation)
    chosen: list[Mutation] = []
    while len(chosen) < min(PER_SPEC, len(mutations)):
        for group in kinds.values():
            if group and len(chosen) < PER_SPEC:
                chosen.append(group.pop())
    return chosen


def _apply(text: str, mutation: Mutation) -> str:
    for offset in sorted(mutation.offsets, reverse=True):
        assert text[offset : offset + len(mutation.old)] == mutation.old, mutation
        text = text[:offset] + mutation.new + text[offset + len(mutation.old) :]
    return text


@pytest.mark.parametrize(("project", "spec"), SPECS, ids=[str(s.relative_to(ROOT)) for _, s in SPECS])
def test_a_typo_in_any_name_fails_validate_at_its_line(project: Path, spec: Path, tmp_path: Path) -> None:
    copy = tmp_path / "project"
    copy.mkdir()
    for item in project.iterdir():
        if item.name in ("specs", "data"):
            shutil.copytree(item, copy / item.name)
        elif item.suffix == ".yaml":
            shutil.copy(item, copy / item.name)
    target = copy / spec.relative_to(project)
    loaded = load_spec(target, find_project(target))
    mutations = _mutations(loaded)
    assert len(mutations) >= 5, "too few names found: the site finder is broken"
    chosen = _sample(mutations, spec.name)
    missed = []
    for mutation in chosen:
        original = mutation.file.read_text(encoding="utf-8")
        mutation.file.write_text(_apply(original, mutation), encoding="utf-8")
        try:
            load_spec(target, find_project(target))
            missed.append(f"{mutation}: validate passed")
        except SpecError as exc:
            places = [(p.position.file, p.position.line) for p in exc.problems if p.position]
            if (mutation.file, mutation.expect) not in places:
                missed.append(f"{mutation}: problems elsewhere: {[str(p) for p in exc.problems]}")
        finally:
            mutation.file.write_text(original, encoding="utf-8")
    assert not missed, "\n".join(missed)
