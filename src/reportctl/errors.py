"""Errors that reportctl reports to its users.

Library code raises these; only ``reportctl.cli`` turns them into a message and an exit code.

    ReportctlError                 exit 1 unless a subclass says otherwise
    ├── SpecError                  one or more problems in a spec or project file, each with a position
    ├── ParameterError             a parameter value given on the command line does not fit its type
    ├── SourceError                a source could not be read (missing file, SQL error, HTTP failure, timeout)
    ├── DatasetError               a dataset could not be computed from its inputs
    ├── RenderError                a writer could not produce its artifact
    ├── UsageError                 the command line itself is wrong (exit 2)
    └── DeliveryError              the report rendered but a delivery failed (exit 3)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal


class ExitCode(IntEnum):
    """Process exit codes, as documented in the README."""

    OK = 0
    FAILED = 1
    USAGE = 2
    DELIVERY_FAILED = 3


@dataclass(frozen=True)
class Position:
    """Where something stands in a YAML file; line and column count from 1."""

    file: Path
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where, which field, and what to do about it.

    A ``note`` is not wrong: it says what validate could not check (e.g. the columns of ``SELECT *``); it is
    printed but fails nothing.
    """

    message: str
    path: str = ""
    position: Position | None = None
    file: Path | None = None
    severity: Literal["error", "note"] = "error"

    @property
    def is_note(self) -> bool:
        return self.severity == "note"

    def __str__(self) -> str:
        where = str(self.position) if self.position else (str(self.file) if self.file else "")
        parts = [p for p in (where, self.path, "note" if self.is_note else "") if p]
        return ": ".join([*parts, self.message])

    def as_dict(self) -> dict[str, object]:
        file = self.position.file if self.position else self.file
        return {
            "file": str(file) if file else None,
            "line": self.position.line if self.position else None,
            "column": self.position.column if self.position else None,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }


class ReportctlError(Exception):
    """Base of every error reportctl reports; ``exit_code`` is what the CLI exits with."""

    exit_code: ExitCode = ExitCode.FAILED

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its class, message and attributes, whatever its __init__ takes: an error raised in a worker
        # process arrives in the daemon as the same class (a SourceError still retries).
        return (_rebuilt_error, (type(self), self.args, dict(self.__dict__)))


def _rebuilt_error(cls: type[ReportctlError], args: tuple[Any, ...], state: dict[str, Any]) -> ReportctlError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class SpecError(ReportctlError):
    """A spec or project file has problems; all of them are listed at once."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems, key=_reading_order)
        super().__init__("\n".join(str(p) for p in self.problems))


def _reading_order(problem: Problem) -> tuple[str, int, int]:
    position = problem.position
    if position is None:
        return (str(problem.file or ""), 0, 0)
    return (str(position.file), position.line, position.column)


class ParameterError(ReportctlError):
    """A parameter value does not fit its declared type or choices."""


class SourceError(ReportctlError):
    """A source could not be read; ``option`` names the source option at fault (e.g. 'url'), when one is."""

    def __init__(self, source: str, description: str, cause: str, *, option: str = "") -> None:
        self.source = source
        self.option = option
        super().__init__(f"source '{source}' ({description}): {cause}")


class DatasetError(ReportctlError):
    """A dataset could not be computed."""

    def __init__(self, dataset: str, cause: str) -> None:
        self.dataset = dataset
        super().__init__(f"dataset '{dataset}': {cause}")


class RenderError(ReportctlError):
    """A writer failed to produce its artifact."""


class UsageError(ReportctlError):
    """The command line is wrong."""

    exit_code = ExitCode.USAGE


class DeliveryError(ReportctlError):
    """The report rendered but at least one delivery failed."""

    exit_code = ExitCode.DELIVERY_FAILED


def first_line(text: str, default: str = "") -> str:
    """The first non-blank line of ``text``, stripped, for a one-line message; ``default`` when there is none."""
    return next((line.strip() for line in text.splitlines() if line.strip()), default)


def exception_line(exc: BaseException) -> str:
    """An exception's message in one line, or its type's name when it has none."""
    return first_line(str(exc), type(exc).__name__)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint when a candidate is close, else ''."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(candidates: Iterable[str]) -> str:
    """'a, b, c' for messages that list what would be valid."""
    return ", ".join(sorted(candidates))
