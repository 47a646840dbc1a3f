"""The loader's only outcomes are a valid spec or a ReportctlError: never a traceback, and for hostile YAML a
SpecError that places every problem."""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reportctl.config import Project, ProjectConfig
from reportctl.errors import ReportctlError, SpecError
from reportctl.spec.loader import load_spec
from reportctl.spec.reading import text_position

VALID = {
    "apiVersion": "reportctl/v1",
    "name": "fuzzed",
    "title": "Fuzz {{ period.start | format_date }}",
    "parameters": {
        "period": {"type": "period", "default": "last_7_days"},
        "region": {"type": "choice", "choices": ["all", "eu"], "default": "all"},
    },
    "sources": {"metrics": {"kind": "sample", "rows": 100, "period": "period"}},
    "datasets": {
        "by_service": {
            "from": "metrics",
            "where": ":region = 'all' OR region = :region",
            "group_by": ["service"],
            "aggregate": {"p95": "p95(latency_ms)", "n": "count()"},
            "sort": ["-p95"],
        }
    },
    "sections": [
        {"id": "intro", "type": "text", "template": "{{ datasets.by_service | length }} services"},
        {"id": "kpis", "type": "kpis", "items": [{"label": "Worst", "value": "max(by_service.p95)"}]},
        {"id": "table", "type": "table", "dataset": "by_service", "columns": {"p95": {"format": "number:1"}}},
        {"id": "chart", "type": "chart", "dataset": "by_service", "chart": "bar", "x": "service", "y": "p95"},
    ],
    "outputs": ["csv", "json"],
    "schedule": {"cron": "0 9 * * MON", "timezone": "Europe/Berlin"},
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["count()", "p95(x)", "{{ x }}", "{% if %}", "-p95", "metrics", "0 9 * * *", "Mars/Olympus"]),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    spec = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(spec)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = spec
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        else:
            parent[path[-1]] = draw(values)
    return spec


def _load(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "spec.yaml"
        spec.write_text(text, encoding="utf-8")
        project = Project(Path(folder), ProjectConfig(), None)
        try:
            load_spec(spec, project)
        except ReportctlError as exc:
            assert str(exc).strip(), "an error must say something"


def test_the_unmutated_spec_is_valid() -> None:
    _load(yaml.safe_dump(VALID))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_mutated_specs_load_or_fail_cleanly(spec: Any) -> None:
    _load(yaml.safe_dump(spec, allow_unicode=True))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_random_text_loads_or_fails_cleanly(text: str) -> None:
    _load(text)


@settings(max_examples=100, deadline=None)
@given(values)
def test_random_yaml_values_load_or_fail_cleanly(data: Any) -> None:
    _load(yaml.safe_dump(data, allow_unicode=True))


# Hostile mutants: the shapes an attacker would write (see test_hostile_yaml.py), put into the valid spec at a place
# hypothesis picks. Each must fail as a SpecError whose every problem has a line and column; a refused character
# or byte, at the very line and column where it was put.

_SCALAR_LINE = re.compile(r"^(\s*(?:- )?[\w]+: |\s*- )(\S.*)$")
_HOSTILE_VALUES = st.one_of(
    st.integers(65, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(33, 1000).map(lambda depth: "{a: " * depth + "1" + "}" * depth),
    st.sampled_from(["&r [*r]", "&r {a: [b, *r]}", "&m {<<: *m}"]),
)
_BOMB = "".join(
    [
        f"b0: &b0 [{', '.join(['lol'] * 10)}]\n",
        *(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]\n" for i in range(1, 8)),
    ]
)
_REFUSED_CHARACTERS = st.sampled_from(["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x7f", "\ufffe", "\uffff"])
_NOT_UTF8 = st.sampled_from([b"\xff", b"\xe9", b"\xc3", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\x80"])


@st.composite
def hostile_specs(draw: st.DrawFn) -> tuple[bytes, tuple[int, int] | None]:
    """A spec's bytes with one hostile shape in it, and where a refused character or byte must be reported."""
    lines = yaml.safe_dump(VALID, sort_keys=False).splitlines(keepends=True)
    kind = draw(st.sampled_from(["value", "bomb", "character", "bytes"]))
    if kind == "value":
        candidates = [i for i, line in enumerate(lines) if _SCALAR_LINE.match(line)]
        index = draw(st.sampled_from(candidates))
        lines[index] = _SCALAR_LINE.sub(lambda m: m.group(1) + draw(_HOSTILE_VALUES), lines[index].rstrip("\n")) + "\n"
    elif kind == "bomb":
        top_level = [i for i, line in enumerate(lines) if not line[0].isspace() and not line.startswith("-")]
        index = draw(st.sampled_from(top_level))
        lines.insert(index, _BOMB)
    line_end = "\r\n" if draw(st.booleans()) else "\n"
    text = ("\ufeff" if draw(st.booleans()) else "") + "".join(lines).replace("\n", line_end)
    if kind in ("value", "bomb"):
        return text.encode(), None
    offset = draw(st.integers(1 if text.startswith("\ufeff") else 0, len(text) - 1))
    if line_end == "\r\n" and text[offset - 1] == "\r":
        offset -= 1  # a character between CR and LF would split the line end in two
    before = text[:offset]
    position = text_position(before, len(before), Path())
    inserted = draw(_REFUSED_CHARACTERS).encode() if kind == "character" else draw(_NOT_UTF8)
    return before.encode() + inserted + text[offset:].encode(), (position.line, position.column)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_specs())
def test_hostile_mutants_fail_with_positioned_problems(mutant: tuple[bytes, tuple[int, int] | None]) -> None:
    data, expected = mutant
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "spec.yaml"
        spec.write_bytes(data)
        with pytest.raises(SpecError) as caught:
            load_spec(spec, Project(Path(folder), ProjectConfig(), None))
    positions = [problem.position for problem in caught.value.problems]
    assert positions and all(positions), str(caught.value)
    if expected is not None:
        assert positions[0] is not None and (positions[0].line, positions[0].column) == expected, str(caught.value)
