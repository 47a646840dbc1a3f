"""The package's public surface, its layering, and the README kept in step with the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import reportctl
from reportctl.cli import app
from reportctl.plugins import CHANNELS, SOURCES, WRITERS, plugin_names

SRC = Path(reportctl.__file__).parent
ROOT = SRC.parents[1]
# The README and the reference pages under docs/ it links to, read as one text.
README = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def test_public_names_are_sorted_and_importable() -> None:
    assert reportctl.__all__ == sorted(reportctl.__all__)
    for name in reportctl.__all__:
        assert getattr(reportctl, name) is not None


def test_only_the_cli_imports_the_cli() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] in ("cli", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            offenders += [f"{path.relative_to(SRC)}: {m}" for m in modules if m.startswith("reportctl.cli")]
    assert offenders == []


def test_only_the_cli_prints_or_exits() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("print", "exit"):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr == "exit" and getattr(node.value, "id", "") == "sys":
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_the_docs_document_every_command_and_plugin() -> None:
    commands = {c.name for c in app.registered_commands}
    documented = set(re.findall(r"`reportctl (\w+)", README))
    assert commands <= documented, commands - documented
    for name in plugin_names(SOURCES):
        assert f"**`{name}`**" in README, name
    for name in plugin_names(WRITERS):
        assert f"**{name}**" in README, name
    channels = README[README.index("## Channels") :]
    for name in plugin_names(CHANNELS):
        assert f"**`{name}`**" in channels, name
