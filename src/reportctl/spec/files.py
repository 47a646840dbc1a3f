"""Which files in a folder are specs: YAML files, outside hidden and output folders, other than project files."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_FILES = ("people.yaml", "policies.yaml")
SKIPPED_FOLDERS = frozenset({"out", "node_modules", "__pycache__", ".venv", "venv"})


def find_yaml(paths: list[Path]) -> list[Path]:
    """The YAML files named, and those found in named folders (recursively, skipping hidden and output folders).

    ``reportctl.yaml`` is included (``validate`` checks it as project settings); people and policy files are not.
    """
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        found.extend(c for c in sorted(path.rglob("*")) if is_spec_file(c.relative_to(path)) and c.is_file())
    return found


def spec_file_stamps(folders: list[Path]) -> dict[str, tuple[int, int]]:
    """Modification time and size of every spec file ``find_yaml`` finds in ``folders``, keyed by path: what the
    daemon compares every 2 s to notice an edit. One ``scandir`` walk, so 5,000 specs cost milliseconds."""
    stamps: dict[str, tuple[int, int]] = {}
    pending = [str(folder) for folder in folders]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue  # removed meanwhile, or unreadable: as if empty
        for entry in entries:
            try:
                if entry.is_dir():
                    if _searched_folder(entry.name):
                        pending.append(entry.path)
                elif _spec_name(entry.name) and entry.is_file():
                    status = entry.stat()
                    stamps[entry.path] = (status.st_mtime_ns, status.st_size)
            except OSError:
                continue
    return stamps


def is_spec_file(relative: Path) -> bool:
    """Whether a file at ``relative`` (from a folder searched for specs) counts as a spec: YAML, outside hidden and
    output folders, not a people or policy file."""
    return all(map(_searched_folder, relative.parts[:-1])) and _spec_name(relative.name)


def _searched_folder(name: str) -> bool:
    """Whether specs are looked for in a folder of this name: not hidden, not an output or tool folder."""
    return not name.startswith(".") and name not in SKIPPED_FOLDERS


def _spec_name(name: str) -> bool:
    """Whether a file of this name may be a spec: YAML, not a people or policy file."""
    return name.endswith((".yaml", ".yml")) and name not in PROJECT_FILES


def is_rendered_spec(path: Path) -> bool:
    """Whether a file ``find_yaml`` found is a report to render: a spec (it has ``apiVersion``) that is not
    abstract. A file that does not parse counts, so that rendering it reports its error."""
    import yaml

    from reportctl.spec.yamlpos import load_plain

    if path.name == "reportctl.yaml":
        return False
    try:
        data = load_plain(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return True
    return isinstance(data, dict) and "apiVersion" in data and not data.get("abstract", False)
