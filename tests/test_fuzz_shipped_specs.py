"""Every shipped spec, mutated as an attacker or a careless edit would, through validate and then render: the only
outcomes are a report or a ReportctlError (never a traceback or an internal error), and every spec error is placed.

Mutations replace a value anywhere in the spec with one from a hostile corpus (template injections and template
bombs, path escapes, NUL and control characters, huge and negative numbers, wrong types), delete or misspell a key,
or repeat a list item. Each mutant is written into a copy of its project, loaded and checked as `validate` does,
and, when valid, rendered to CSV and JSON with the query cache off. The suite runs REPORTCTL_FUZZ_EXAMPLES mutants
per spec (default 30, 330 mutants in all); a longer run, e.g. 300 per spec, is `REPORTCTL_FUZZ_EXAMPLES=300 pytest
tests/test_fuzz_shipped_specs.py`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reportctl.errors import ReportctlError, SpecError
from reportctl.spec.yamlpos import load_plain
from shipped_specs import PROJECTS, ROOT, concrete_specs

EXAMPLES = int(os.environ.get("REPORTCTL_FUZZ_EXAMPLES", "30"))
EXPLORE = "REPORTCTL_FUZZ_EXAMPLES" in os.environ
"""The suite's mutants are the same on every run, so a failure in CI reproduces; a longer run explores anew."""
SLOWEST: dict[str, tuple[float, str]] = {}
OUTCOMES: dict[str, int] = {}

HOSTILE_TEXT = [
    "{{ 'x' * 1000000000 }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{{ '%s' * 99999999 }}",
    "{{ 9 ** 9 ** 9 }}",
    "../../../../etc/passwd",
    "/etc/passwd",
    "s3://reports/../../other-bucket/",
    "a\x00b",
    "line\r\nbreak\x1b[31m",
    "x" * 20_000,
    "${secret:missing_secret}",
    "'; DROP TABLE runs; --",
    ":region' OR 1=1 --",
    "count()",
    "p95(",
    "-",
    "",
    "0 0 31 2 *",
    "Mars/Olympus_Mons",
    "2026-02-30",
    "number:999",
    "1e308",
]
HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from([None, True, False, 0, -1, 10**18, -(10**18), 1.5, float("1e308")]),
    st.lists(st.sampled_from(HOSTILE_TEXT[:8]), max_size=3),
    st.dictionaries(st.sampled_from(["x", "kind", "from", "id"]), st.sampled_from(HOSTILE_TEXT[:6]), max_size=2),
    st.text(max_size=30),
)


SPECS = concrete_specs()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a document: each key's value and each list item, containers included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _plain(node: Any) -> Any:
    """Located containers as plain dicts and lists, which yaml.safe_dump writes."""
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    node = document
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def _mutants(draw: st.DrawFn, original: str) -> tuple[str, str]:
    """(the mutated spec's text, what was done) for one spec's text."""
    document = _plain(load_plain(original))  # as reportctl reads it: `on:` stays a key, not YAML 1.1's True
    paths = [path for path in _paths(document) if path != ("apiVersion",)]  # a wrong version stops at once
    done = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        try:
            parent = _parent(document, path)
            last = path[-1]
            parent[last]  # a previous mutation may have removed it
        except (KeyError, IndexError, TypeError):
            continue
        how = draw(st.sampled_from(["replace", "replace", "replace", "delete", "rename", "repeat"]))
        if how == "replace":
            parent[last] = draw(HOSTILE)
        elif how == "delete":
            del parent[last]
        elif how == "rename" and isinstance(parent, dict):
            parent[f"{last}x" if isinstance(last, str) else last] = parent.pop(last)
        elif how == "repeat" and isinstance(parent, list):
            parent.insert(last, parent[last])
        done.append(f"{how} {'.'.join(map(str, path))}")
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "; ".join(done)


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    """A copy of each project (without its outputs and state), mutated in place by the tests."""
    made = {}
    for project in PROJECTS:
        copy = tmp_path_factory.mktemp(project.name)
        shutil.copytree(
            project, copy, dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("out", "outbox", ".reportctl", "examples", "tests", "src", ".git", ".venv",
                                          "benchmarks", "docs", "*.pyc"),
        )  # fmt: skip
        made[project] = copy
    return made


def _outcome(spec: Path, output: Path) -> str:
    """Validate, then render what validate passes; a ReportctlError is an outcome, anything else a bug."""
    from reportctl.runner import render_report
    from reportctl.spec.checks import check_spec
    from reportctl.spec.loader import load_spec

    try:
        loaded = load_spec(spec)
        problems = [p for p in check_spec(loaded) if not p.is_note]
        if problems:
            raise SpecError(problems)
        render_report(loaded, formats=["csv", "json"], output_dir=output, cache=False)
    except SpecError as exc:
        unplaced = [str(p) for p in exc.problems if p.position is None and p.file is None]
        assert not unplaced, f"problems without a file or position: {unplaced}"
        return "spec error"
    except ReportctlError as exc:
        assert "internal error" not in str(exc), str(exc)
        return type(exc).__name__
    return "rendered"


@pytest.mark.parametrize(("project", "spec"), SPECS, ids=[str(s.relative_to(ROOT)) for _, s in SPECS])
def test_mutants_of_a_shipped_spec_render_or_fail_cleanly(project: Path, spec: Path, copies: dict[Path, Path]) -> None:
    original = spec.read_text(encoding="utf-8")
    target = copies[project] / spec.relative_to(project)
    output = copies[project] / "out"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not EXPLORE,
        suppress_health_check=list(HealthCheck),
    )
    @given(_mutants(original))
    def mutant_renders_or_fails_cleanly(mutant: tuple[str, str]) -> None:
        text, done = mutant
        target.write_text(text, encoding="utf-8")
        started = time.perf_counter()
        try:
            outcome = _outcome(target, output)
            OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1
        except AssertionError as exc:
            raise AssertionError(f"{spec.name} after {done}: {exc}") from None
        except Exception as exc:
            raise AssertionError(f"{spec.name} after {done}: {type(exc).__name__}: {exc}") from exc
        finally:
            key, seconds = str(spec.relative_to(ROOT)), time.perf_counter() - started
            SLOWEST[key] = max(SLOWEST.get(key, (0.0, "")), (seconds, done))
            shutil.rmtree(output, ignore_errors=True)

    try:
        mutant_renders_or_fails_cleanly()
    finally:
        target.write_text(original, encoding="utf-8")


@pytest.fixture(scope="module", autouse=True)
def _report_the_slowest() -> Iterator[None]:
    """With -s, the slowest mutant of each spec in seconds (the issue's bound is 20 s; tests assert no times) and
    how the mutants ended."""
    yield
    for spec, (seconds, done) in sorted(SLOWEST.items()):
        print(f"fuzz: slowest mutant of {spec}: {seconds:.2f} s ({done})")
    print(f"fuzz: outcomes {dict(sorted(OUTCOMES.items()))}")
