"""The loader's only outcomes are a valid spec or a ReportctlError: never a traceback."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reportctl.config import Project, ProjectConfig
from reportctl.errors import ReportctlError
from reportctl.spec.loader import load_spec

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
