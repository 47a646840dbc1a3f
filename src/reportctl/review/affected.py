"""Which specs a change touches: those whose own file, or a base they extend, differs between two revisions.

``reportctl diff --base REF`` without a spec file (or with folders) compares every such spec, so a pull request
that edits only ``specs/base/ops.yaml`` still shows what it does to each report built on it.
"""

from __future__ import annotations

from pathlib import Path

from reportctl.errors import ReportctlError
from reportctl.spec.files import find_yaml, is_spec_file
from reportctl.spec.reading import WORKING_TREE, SpecReader

_NOT_SPECS = ("reportctl.yaml",)


def changed_files(root: Path, base: str, head: str | None) -> set[Path]:
    """The files that differ between ``base`` and ``head`` (None: the working tree, untracked files included)."""
    from reportctl.spec.revisions import resolve_revision, run_git

    since = resolve_revision(root, base)
    if head is None:
        listed = run_git(root, "diff", "--name-only", "-z", "--no-renames", since, "--")
        listed += "\0" + run_git(root, "ls-files", "--others", "--exclude-standard", "-z")
    else:
        listed = run_git(root, "diff", "--name-only", "-z", "--no-renames", since, resolve_revision(root, head), "--")
    return {(root / name).resolve() for name in listed.split("\0") if name}


def affected_specs(folders: list[Path], base: str, head: str | None) -> list[Path]:
    """The concrete specs under ``folders`` that a change from ``base`` to ``head`` touches, in path order.

    A spec counts when its file changed (added, edited or deleted) or when a base it extends at ``head`` did.
    Abstract bases are left out: their effect shows in the specs that extend them.
    """
    from reportctl.spec.revisions import repository_root, tree_at

    root = repository_root(folders[0] if folders else Path.cwd())
    changed = changed_files(root, base, head)
    reader: SpecReader = WORKING_TREE if head is None else tree_at(root, head)
    inside = [f.resolve() for f in folders]
    candidates = {p.resolve() for p in find_yaml([f for f in folders if f.is_dir()])} if head is None else set()
    candidates |= {p for p in changed if p.suffix in (".yaml", ".yml") and _under(p, inside)}
    if head is not None:
        candidates |= _tree_specs(reader, root, inside)
    affected = []
    for path in sorted(candidates):
        if path.name in _NOT_SPECS or path.name.startswith("."):
            continue
        at_head = reader.is_file(path)
        if not at_head and path not in changed:
            continue  # neither at head nor touched
        # a spec deleted since the base is judged as it was there
        files = _spec_files(path, reader if at_head else tree_at(root, base))
        if files == []:
            continue  # abstract, or not a reportctl spec at all
        if path in changed or changed.intersection(files or ()):
            affected.append(path)
    return affected


def _under(path: Path, folders: list[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def _tree_specs(reader: SpecReader, root: Path, folders: list[Path]) -> set[Path]:
    """The spec files under ``folders`` in the commit ``reader`` reads, found as ``find_yaml`` finds them on disk."""
    from reportctl.spec.revisions import run_git

    listing = run_git(root, "ls-tree", "-r", "-z", "--name-only", str(reader.revision))
    paths = [(root / name).resolve() for name in listing.split("\0") if name]
    return {
        path
        for path in paths
        for folder in folders
        if (path == folder or folder in path.parents) and is_spec_file(path.relative_to(folder))
    }


def _spec_files(path: Path, reader: SpecReader) -> list[Path] | None:
    """The spec's file and the bases it extends; [] for an abstract base or a YAML file that is no spec; None
    when it cannot be read (the diff then says why)."""
    from reportctl.config import find_project
    from reportctl.spec.extends import load_spec_data

    try:
        data, files = load_spec_data(path, find_project(path).root, reader)
    except ReportctlError:
        return None
    if data.get("apiVersion") is None or data.get("abstract") is True:
        return []
    return [f.resolve() for f in files]
