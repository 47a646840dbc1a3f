"""Where a spec's files are read from: the working tree, or a git commit (``reportctl.spec.revisions``).

Loading a spec and the bases it extends goes through a ``SpecReader``, so the same loader reads the files as they
are on disk or as they were at any revision, and the spec hash is taken over the bytes actually read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from reportctl.errors import Position, Problem, SpecError


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
    """The file's text as UTF-8, or a ``SpecError`` at the first byte that is not."""
    data = reader.read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise not_utf8(data, path, reader.where()) from None


def not_utf8(data: bytes, file: Path, where: str = "") -> SpecError:
    """The error for a file that is not UTF-8 text, at the line and column of its first bad byte, so that an editor
    can jump there (a stray Latin-1 byte or a lone surrogate is usually one character in a long file)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        message = (
            f"not UTF-8 text: byte 0x{data[exc.start]:02X} starts no valid UTF-8 character ({exc.reason}){where}; "
            "save the file as UTF-8"
        )
        return SpecError([Problem(message, position=text_position(before, len(before), file))])
    return SpecError([Problem(f"not UTF-8 text{where}; save the file as UTF-8", file=file)])  # changed meanwhile


_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
"""What YAML counts as a line break: the same lines as the positions PyYAML gives every other problem."""


def text_position(text: str, index: int, file: Path) -> Position:
    """The line and column (from 1) of the character at ``index`` of ``text``."""
    breaks = list(_LINE_BREAK.finditer(text, 0, index))
    start = breaks[-1].end() if breaks else 0
    column = index - start + 1
    if not breaks and text.startswith("\ufeff") and index > 0:
        column -= 1  # a byte-order mark takes no column, as in PyYAML's marks
    return Position(file, len(breaks) + 1, column)
