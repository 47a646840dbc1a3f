"""The projects and concrete specs this repository ships (the demo in specs/ and every example), for the suites
that go through all of them."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = [ROOT, *sorted(config.parent for config in (ROOT / "examples").glob("*/reportctl.yaml"))]


def concrete_specs() -> list[tuple[Path, Path]]:
    """(project, spec) for every spec that renders: bases (``abstract: true``) and other YAML files left out."""
    found = []
    for project in PROJECTS:
        for path in sorted((project / "specs").rglob("*.yaml")):
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(document, dict) and document.get("apiVersion") and not document.get("abstract"):
                found.append((project, path))
    return found
