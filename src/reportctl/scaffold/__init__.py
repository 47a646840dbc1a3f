"""``reportctl init``: a small, working reports project copied from the files beside this module."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from reportctl.errors import ReportctlError


def _walk(folder: Traversable, prefix: Path) -> list[tuple[Path, Traversable]]:
    entries = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            entries.extend(_walk(entry, prefix / entry.name))
        elif entry.name != "__init__.py":
            # dot files are stored as dot-NAME so that packaging tools do not skip them
            name = "." + entry.name.removeprefix("dot-") if entry.name.startswith("dot-") else entry.name
            entries.append((prefix / name, entry))
    return entries


def create_project(directory: Path) -> list[Path]:
    """Write the scaffold into ``directory``; refuses to overwrite any file that is already there.

    Beside it goes the spec's JSON Schema (``SCHEMA_FILE``), built from the plugins installed now, which the
    specs' ``# yaml-language-server: $schema=`` lines point editors at; ``reportctl schema -o`` refreshes it.
    """
    from reportctl.spec.schema import SCHEMA_FILE, schema_text

    entries = _walk(files(__package__).joinpath("project"), Path())
    existing = [
        directory / relative
        for relative in (*(r for r, _ in entries), Path(SCHEMA_FILE))
        if (directory / relative).exists()
    ]
    if existing:
        raise ReportctlError(
            f"{existing[0]} already exists; choose an empty folder for a new project (nothing was written)"
        )
    created = []
    for relative, entry in entries:
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.read_bytes())
        created.append(target)
    schema = directory / SCHEMA_FILE
    schema.write_text(schema_text(), encoding="utf-8")
    created.append(schema)
    return created
