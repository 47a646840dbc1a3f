"""Hostile templates through every templated field: each is refused with one line naming the field, or renders a
harmless literal; none leaks an object's repr or a traceback, and none runs unbounded.

The templated fields: the title, text sections, email subject and body, Slack text and the S3 url (the only
templated path: file outboxes and output folders are not templates, nor are KPI labels, nor webhooks, which post
a fixed JSON summary). Each payload is validated in a spec (``check_spec``, as ``reportctl validate``) and
rendered the way a run renders that field: the title and text sections by ``assemble_document``, the delivery
fields by ``DeliveryContext.render``, which the email, Slack and S3 channels call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from reportctl.assemble import assemble_document
from reportctl.config import find_project
from reportctl.delivery.base import DeliveryContext
from reportctl.document import TextBlock
from reportctl.errors import ReportctlError, SpecError
from reportctl.spec.checks import check_spec
from reportctl.spec.loader import LoadedSpec, load_spec


@dataclass(frozen=True)
class Refused:
    """The payload fails, with ``message`` in the one-line error after the field's name."""

    message: str

    @property
    def constant(self) -> bool:
        """A limit passed without any data, which validate must catch before a run."""
        return "passed" in self.message or "ran longer" in self.message


UNSAFE = Refused("is unsafe")
UNDEFINED = Refused("is undefined")
OBJECT = Refused("the template shows a Python function or class instead of a value")
TOO_BIG = Refused("passed 1 MB (max_output in reportctl.yaml)")

PAYLOADS: list[tuple[str, Refused | str]] = [
    # class, mro and subclasses walks
    ("{{ ''.__class__ }}", UNSAFE),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", UNSAFE),
    ("{{ ().__class__.__base__.__subclasses__() }}", UNSAFE),
    ("{{ {}.__class__.__subclasses__() }}", UNSAFE),
    ("{{ [].__class__.__mro__[-1].__subclasses__()[40] }}", UNSAFE),
    # globals that reach Python: lipsum, cycler and joiner are gone; namespace stays (specs use it) but is inert
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", UNDEFINED),
    ("{{ lipsum }}", UNDEFINED),
    ("{{ cycler.__init__.__globals__.os }}", UNDEFINED),
    ("{{ joiner }}", UNDEFINED),
    ("{{ namespace.__init__.__globals__ }}", UNSAFE),
    ("{{ namespace }}", OBJECT),
    ("{% set ns = namespace(n=1) %}{{ ns.n }}", "1"),
    ("{{ range.__self__ }}", Refused("has no attribute '__self__'")),
    ("{{ range.__globals__ }}", UNSAFE),
    ("{{ range }}", OBJECT),
    ("{{ dict.__base__ }}", UNSAFE),
    # self: the template object
    ("{{ self }}", OBJECT),
    ("{{ self.__init__.__globals__ }}", UNSAFE),
    ("{{ self._TemplateReference__context }}", UNSAFE),
    # request/config-style globals do not exist
    ("{{ config.__class__.__init__.__globals__ }}", UNDEFINED),
    ("{{ request.application.__globals__ }}", UNDEFINED),
    # attr() and map(attribute=...) chains, escaped dunder names
    ("{{ ''|attr('__class__') }}", UNSAFE),
    ("{{ ''|attr('__class__')|attr('__mro__') }}", UNSAFE),
    ("{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}", UNSAFE),
    ("{{ ''['\\x5f\\x5fclass\\x5f\\x5f'] }}", UNSAFE),
    ("{{ ''|attr('__globals__') }}", Refused("has no attribute '__globals__'")),
    ("{{ [''] | map(attribute='__class__') | first }}", UNSAFE),
    ("{{ '\\x5f\\x5fclass\\x5f\\x5f' }}", "__class__"),
    # unicode lookalikes are other names, not dunders
    ("{{ ''.__\u0441lass__ }}", Refused("has no attribute '__\u0441lass__'")),  # Cyrillic es
    ("{{ ''.\uff3f\uff3fclass\uff3f\uff3f }}", Refused("has no attribute")),  # fullwidth low lines
    # format-string tricks
    ("{{ '{0.__class__}'.format('') }}", UNSAFE),
    ("{{ '{0.__class__.__mro__}'.format(1) }}", UNSAFE),
    ("{{ '{0[__class__]}'.format('') }}", UNSAFE),
    ("{{ '%s' % range }}", OBJECT),
    ("{{ '%r' % self }}", OBJECT),
    ("{{ '{}-{}'.format('a', 'b') }}", "a-b"),
    ("{{ '%s_%s' % ('a', 'b') }}", "a_b"),
    # values built past the limit, refused before they are built
    ("{{ 'x' * 1000000000 }}", TOO_BIG),
    ("{{ ['x'] * 1000000000 }}", TOO_BIG),
    ("{{ 2 ** 1000000000 }}", TOO_BIG),
    ("{{ ('x' * 600000) + ('y' * 600000) }}", TOO_BIG),
    ("{{ ('x' * 600000) ~ ('y' * 600000) }}", TOO_BIG),
    ("{{ 'x'.center(1000000000) }}", TOO_BIG),
    ("{{ 'x'|center(1000000000) }}", TOO_BIG),
    ("{{ 'x'|indent(1000000000) }}", TOO_BIG),
    ("{{ 1|format_number(1000000000) }}", TOO_BIG),
    ("{{ range(100000)|join('x' * 100) }}", TOO_BIG),
    ("{{ ('x' * 900000)|replace('x', 'yy') }}", TOO_BIG),
    ("{{ '%1000000000d' % 1 }}", TOO_BIG),
    ("{{ '{:>1000000000}'.format(1) }}", TOO_BIG),
    ("{{ 'x' * 600000 }}{{ 'y' * 600000 }}", Refused("the template's output passed 1 MB")),
    ("{{ range(1000000000)|list }}", Refused("range() of 1,000,000,000 items passed the sandbox's 100,000")),
    # time: the corpus's project allows 0.2 s per render
    (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        Refused("the template ran longer than 0.2 s (max_seconds in reportctl.yaml)"),
    ),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", Refused("recursion")),
    # ordinary uses of the same operators still work
    ("{{ 'ab' * 3 }}", "ababab"),
    ("{{ 2 ** 10 }}", "1024"),
    ("{{ range(3)|join('-') }}", "0-1-2"),
    ("{{ 'a' ~ 'b' }}", "ab"),
]

FIELDS = ["title", "sections[0].template", "delivery[0].subject", "delivery[0].body", "delivery[1].text", "url"]

# what an object's repr or a traceback looks like; none may reach a user
LEAK = re.compile(r"0x[0-9a-fA-F]{4,}|<(class|function|built-in|bound method|module|TemplateReference) |Traceback")


def _spec(field: str, payload: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "apiVersion": "reportctl/v1",
        "name": "hostile",
        "sources": {"metrics": {"kind": "sample", "rows": 3}},
        "sections": [{"id": "summary", "type": "text", "template": "Plain."}],
        "outputs": ["json"],
        "delivery": [
            {"channel": "email", "to": ["ops@example.com"], "subject": "Report", "body": "Body"},
            {"channel": "slack", "webhook_url": "https://hooks.slack.com/services/T0/B0/x", "text": "Done"},
            {"channel": "s3", "url": "s3://reports/daily/"},
        ],
    }
    if field == "title":
        spec["title"] = payload
    elif field == "sections[0].template":
        spec["sections"][0]["template"] = payload
    elif field == "url":
        spec["delivery"][2]["url"] = _url(payload)
    else:
        index, key = int(field[9]), field.split(".")[1]
        spec["delivery"][index][key] = payload
    return spec


def _url(payload: str) -> str:
    return f"s3://reports/{payload}/"


@pytest.fixture(scope="module")
def corpus_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    (root / "reportctl.yaml").write_text(
        "timezone: UTC\n"
        "templates: {max_seconds: 0.2}\n"
        "channels:\n  email: {host: localhost, from: reports@example.com}\n"
    )
    (root / "specs").mkdir()
    return root


def _load(root: Path, field: str, payload: str) -> LoadedSpec | str:
    """The loaded spec, or the one-line problem validate reports when the spec's options already refuse it."""
    path = root / "specs" / "hostile.yaml"
    path.write_text(yaml.safe_dump(_spec(field, payload), allow_unicode=True))
    try:
        return load_spec(path, find_project(path))
    except SpecError as exc:
        assert len(exc.problems) == 1, exc.problems
        return str(exc.problems[0])


def _where(field: str) -> str:
    return "delivery[2].url" if field == "url" else field


def _render(
    loaded: LoadedSpec, field: str, payload: str, make_context: Callable[..., DeliveryContext]
) -> str | ReportctlError:
    """``payload`` rendered as a run renders ``field``: the rendered text, or the error the run stops with."""
    now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    try:
        if field in ("title", "sections[0].template"):
            frames = {"metrics": pl.DataFrame({"value": [1, 2, 3]})}
            document = assemble_document(loaded, frames, {}, run_id="r1", now=now)
            if field == "title":
                return document.info.title
            block = document.blocks[0]
            assert isinstance(block, TextBlock)
            return block.markdown
        text = _url(payload) if field == "url" else payload
        return make_context(project=loaded.project).render(text, where=_where(field))
    except ReportctlError as exc:
        return exc


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize(("payload", "outcome"), PAYLOADS, ids=[str(i) for i in range(len(PAYLOADS))])
def test_hostile_payload_is_refused_or_inert(
    corpus_project: Path,
    delivery_context: Callable[..., DeliveryContext],
    payload: str,
    outcome: Refused | str,
    field: str,
) -> None:
    where = _where(field)
    loaded = _load(corpus_project, field, payload)
    if isinstance(loaded, str):  # refused while the spec loads (unknown names, the s3 url's own checks): no run
        assert isinstance(outcome, Refused), loaded
        assert f": {where}: " in loaded and "\n" not in loaded and not LEAK.search(loaded), loaded
        assert outcome.message in loaded or not outcome.constant, loaded
        return
    problems = [str(p) for p in check_spec(loaded)]
    assert all(f": {where}: " in p for p in problems), problems
    assert not any(LEAK.search(p) for p in problems), problems
    if isinstance(outcome, Refused) and outcome.constant:
        assert len(problems) == 1 and outcome.message in problems[0], problems
    elif not isinstance(outcome, Refused):
        assert problems == []

    result = _render(loaded, field, payload, delivery_context)
    if isinstance(outcome, Refused):
        assert isinstance(result, ReportctlError), f"{payload!r} in {field} rendered {str(result)[:80]!r}"
        message = str(result)
        assert "\n" not in message and not LEAK.search(message), message
        assert f"{where}: " in message and outcome.message in message, message
    else:
        assert result == (_url(outcome) if field == "url" else outcome)


def test_the_limits_come_from_each_project(tmp_path: Path, cli: Callable[..., Any]) -> None:
    """Two projects, two limits, one process: nothing of one project's limits stays for the other."""
    title = "{{ 'x' * 20000 }}"
    for name, settings in (("small", "templates: {max_output: 10KB}\n"), ("default", "")):
        root = tmp_path / name
        (root / "specs").mkdir(parents=True)
        (root / "reportctl.yaml").write_text("timezone: UTC\n" + settings)
        spec = {**_spec("title", title), "delivery": []}
        (root / "specs" / "r.yaml").write_text(yaml.safe_dump(spec))
    small = cli("validate", str(tmp_path / "small" / "specs" / "r.yaml"))
    assert small.exit_code == 1
    assert "r.yaml:14:8: title: a value the template builds passed 10 KB (max_output in reportctl.yaml)" in small.stdout
    assert cli("validate", str(tmp_path / "default" / "specs" / "r.yaml")).exit_code == 0


def test_render_over_the_limit_exits_1_and_writes_nothing(project: Path, cli: Callable[..., Any]) -> None:
    spec = {**_spec("title", "{{ 'x' * 1000000000 }}"), "delivery": []}
    (project / "specs" / "r.yaml").write_text(yaml.safe_dump(spec))
    result = cli("render", "specs/r.yaml", "-f", "json")
    assert result.exit_code == 1
    assert "title: a value the template builds passed 1 MB (max_output in reportctl.yaml)" in result.stderr
    assert not (project / "out").exists() or not any((project / "out").rglob("*.json"))
