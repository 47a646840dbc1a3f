"""The versions of a spec: the commits that changed the spec file or any base it extends, newest first.

The bases are those the spec extends at HEAD; the spec file is followed across renames (``git log --follow``),
the bases by their paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportctl.config import Project, find_project
from reportctl.spec.extends import load_spec_data
from reportctl.spec.revisions import SpecNotAtRevision, is_shallow, run_git, tree_at

FIELDS = ("%H", "%h", "%an", "%ae", "%aI", "%s")
FIELD_SEPARATOR = "\x1f"
RECORD_SEPARATOR = "\x1e"


@dataclass(frozen=True)
class Version:
    """One commit that changed the spec or a base, and which of its files it changed."""

    commit: str
    short: str
    author: str
    email: str
    date: str
    """The author date, ISO 8601 with the author's offset."""
    message: str
    """The first line of the commit message."""
    files: tuple[str, ...]
    """The spec files the commit changed, relative to the repository root."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "short": self.short,
            "author": self.author,
            "email": self.email,
            "date": self.date,
            "message": self.message,
            "files": list(self.files),
        }


@dataclass(frozen=True)
class History:
    spec: Path
    files: tuple[str, ...]
    """The spec and the bases it extends at HEAD, relative to the repository root."""
    versions: tuple[Version, ...]
    shallow: bool
    """A shallow clone: older versions may be missing (``git fetch --unshallow``)."""


def spec_history(path: Path, project: Project | None = None) -> History:
    """The commits that changed the spec at ``path`` or any base it extends (as of HEAD), newest first."""
    path = path.resolve()
    tree = tree_at(path, "HEAD")
    if not tree.is_file(path):
        raise SpecNotAtRevision(path, "HEAD", tree.commit)
    project = project or find_project(path)
    _, files = load_spec_data(path, project.root, tree)
    relative = [name for file in files if (name := tree.relative(file)) is not None]
    changed: dict[str, set[str]] = {}
    spec_log = run_git(tree.root, "log", "--follow", "--format=%x1e%H", "--name-only", tree.commit, "--", relative[0])
    _collect(spec_log, changed)
    if len(relative) > 1:
        base_log = run_git(tree.root, "log", "--format=%x1e%H", "--name-only", tree.commit, "--", *relative[1:])
        _collect(base_log, changed)
    versions: list[Version] = []
    if changed:
        # --no-walk lists exactly these commits, in git's own newest-first order
        listing = run_git(
            tree.root, "log", "--no-walk=sorted", f"--format={FIELD_SEPARATOR.join(FIELDS)}{RECORD_SEPARATOR}",
            *sorted(changed),
        )  # fmt: skip
        for record in listing.split(RECORD_SEPARATOR):
            fields = record.strip("\n").split(FIELD_SEPARATOR)
            if len(fields) == len(FIELDS):
                commit, short, author, email, date, message = fields
                versions.append(Version(commit, short, author, email, date, message, tuple(sorted(changed[commit]))))
    return History(path, tuple(relative), tuple(versions), is_shallow(tree.root))


def _collect(log: str, changed: dict[str, set[str]]) -> None:
    """Commit ids and the files each changed, from ``git log --format=%x1e%H --name-only`` output."""
    for record in log.split(RECORD_SEPARATOR):
        lines = [line for line in record.splitlines() if line.strip()]
        if lines:
            changed.setdefault(lines[0], set()).update(lines[1:])
