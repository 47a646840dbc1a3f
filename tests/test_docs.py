"""The docs stay true: every link and anchor resolves, and the README's first example is what ``init`` writes.

(Every YAML example in them is validated by ``tests/spec/test_json_schema.py``.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(`{3,}|~{3,})")
_LINK = re.compile(r"\]\(<?([^)\s>]+)>?\)")


def _prose(text: str) -> str:
    """``text`` without its fenced blocks, whose links and headings are examples."""
    kept, fence = [], None
    for line in text.splitlines():
        found = _FENCE.match(line)
        if found and fence is None:
            fence = found.group(1)
        elif found and fence is not None and line.strip() == fence[0] * len(line.strip()):
            fence = None
        elif fence is None:
            kept.append(line)
    return "\n".join(kept)


def anchors(path: Path) -> set[str]:
    """The ids GitHub gives the headings of a Markdown file."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.*)$", _prose(path.read_text(encoding="utf-8")), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(_prose(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading '{anchor}' in {path.name}")
    assert broken == []


def test_the_readme_links_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= set(_LINK.findall(readme))


def test_the_readme_opens_with_a_picture_and_the_two_set_up_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    picture = re.search(r"!\[[^\]]+\]\((docs/[^)]+\.png)\)", readme)
    assert picture and (ROOT / picture.group(1)).stat().st_size > 10_000
    [first_commands] = re.findall(r"## Set-up\n\n```sh\n(.*?)```", readme, re.DOTALL)
    assert [line.split("#")[0].strip() for line in first_commands.splitlines()] == ["make demo", "make test"]


def test_the_readmes_first_example_is_the_spec_init_writes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## A first report") :]
    [first] = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)[:1]
    assert first == (ROOT / "src/reportctl/scaffold/project/specs/server-health.yaml").read_text(encoding="utf-8")


def test_the_readme_stays_short() -> None:
    assert len((ROOT / "README.md").read_bytes()) < 16_000  # the reference lives under docs/
