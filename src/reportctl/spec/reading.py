"""Where a spec's files are read from: the working tree, or a git commit (``reportctl.spec.revisions``).

Loading a spec and the bases it extends goes through a ``SpecReader``, so the same loader reads the files as they
are on disk or as they were at any revision, and the spec hash is taken over the bytes actually read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from reportctl.errors import Problem, SpecError


class SpecReader(Protocol):
    """Reads spec files by their working-tree path (absolute, resolved)."""

    revision: str | None
    """The full commit id the files are read at; None for the working tree."""

    def read_bytes(self, path: Path) -> bytes:
        """The file's bytes; ``SpecError`` naming the file when it cannot be read."""

    def is_file(self, path: Path) -> bool:
        """Whether a file exists at ``path`` (there to extend)."""

    def label(self, path: Path) -> Path:
        """How positions in ``path`` are named in messages: the path itself, or ``path@commit`` at a revision."""

    def where(self) -> str:
        """'' for the working tree, ' at revision abc1234' for a commit, to finish a message."""


class WorkingTree:
    """The files as they are on disk."""

    revision: str | None = None

    def read_bytes(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise SpecError([Problem("file not found", file=path)]) from None
        except OSError as exc:
            raise SpecError([Problem(f"cannot read: {exc.strerror}", file=path)]) from None

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def label(self, path: Path) -> Path:
        return path

    def where(self) -> str:
        return ""


WORKING_TREE = WorkingTree()


def read_spec_text(reader: SpecReader, path: Path) -> str:
    """The file's text as UTF-8, or a ``SpecError`` naming the file."""
    data = reader.read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = Problem(f"not UTF-8 text ({exc.reason} at byte {exc.start}){reader.where()}", file=path)
        raise SpecError([problem]) from None
