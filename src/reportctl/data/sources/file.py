"""The ``file`` source: CSV, TSV, Parquet, NDJSON or JSON files inside the reports project."""

from __future__ import annotations

import csv
import glob
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from reportctl.data.sources.base import ColumnType, SourceContext, column_dtypes
from reportctl.errors import SourceError, first_line, one_of
from reportctl.secrets import redact
from reportctl.spec.models import SourceOptions

if TYPE_CHECKING:
    import polars as pl

FileFormat = Literal["csv", "tsv", "parquet", "ndjson", "json"]

_FORMAT_BY_SUFFIX: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
}
_TEXT_ONLY_OPTIONS = ("separator", "has_header", "encoding", "null_values", "try_parse_dates")
_GLOB_CHARACTERS = frozenset("*?[")
# Polars names the bad value and column but not the line; this lets the stdlib reader find the row.
_UNPARSABLE = re.compile(r"could not parse `(?P<value>.*?)` as dtype `(?P<dtype>[^`]+)` at column '(?P<column>[^']*)'")


class FileOptions(SourceOptions):
    """Options of the ``file`` source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["file"] = Field(description="Reads a local file: csv, tsv, parquet, ndjson or json.")
    path: str = Field(
        description="Relative to the reports project (or absolute inside allow_paths); a glob such as "
        "data/*.csv concatenates every match in sorted order."
    )
    format: FileFormat | None = Field(
        default=None, description="Defaults to the extension: .csv, .tsv, .parquet, .ndjson/.jsonl, .json."
    )
    separator: str | None = Field(
        default=None, min_length=1, max_length=1, description="CSV only: the field separator (default ',')."
    )
    has_header: bool = Field(default=True, description="CSV/TSV: the first line names the columns.")
    encoding: Literal["utf8", "utf8-lossy"] = Field(
        default="utf8", description="CSV/TSV: utf8-lossy replaces invalid bytes instead of failing."
    )
    null_values: list[str] = Field(default_factory=list, description="CSV/TSV: values read as null, e.g. NA.")
    try_parse_dates: bool = Field(default=True, description="CSV/TSV: read ISO dates and datetimes as such.")
    schema_overrides: dict[str, ColumnType] = Field(
        default_factory=dict,
        description="Column types instead of inferred ones: int, float, str, bool, date, datetime.",
    )

    @model_validator(mode="after")
    def _options_fit_format(self) -> FileOptions:
        file_format = self.file_format()
        if file_format not in ("csv", "tsv"):
            misplaced = [name for name in _TEXT_ONLY_OPTIONS if name in self.model_fields_set]
            if misplaced:
                raise ValueError(f"{', '.join(misplaced)} apply only to csv and tsv files, not {file_format}")
        elif file_format == "tsv" and self.separator not in (None, "\t"):
            raise ValueError("a tsv file is separated by tabs; use format: csv for another separator")
        return self

    def file_format(self) -> FileFormat:
        """The format given, else the one the path's extension implies."""
        if self.format is not None:
            return self.format
        suffix = Path(self.path).suffix.lower()
        if suffix not in _FORMAT_BY_SUFFIX:
            raise ValueError(
                f"cannot tell the format of '{self.path}' from its extension; set format to one of: "
                f"{one_of(('csv', 'tsv', 'parquet', 'ndjson', 'json'))}"
            )
        return _FORMAT_BY_SUFFIX[suffix]


class FileSource:
    """Reads one file, or several matching a glob, from inside the project or an allowed folder."""

    PLUGIN_NAME: ClassVar[str] = "file"
    Options: ClassVar[type[SourceOptions]] = FileOptions

    def __init__(self, name: str, options: FileOptions, context: SourceContext) -> None:
        self.name = name
        self.options = options
        self.context = context
        self.format = options.file_format()

    def describe(self) -> str:
        return f"{self.format} {self.options.path}"

    def known_schema(self) -> pl.Schema:
        import polars as pl

        paths = self._paths()
        try:
            if self.format == "json":
                schema = self._read_json(paths[0]).collect_schema()
            else:
                schema = self._scan(paths).collect_schema()
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise self._error(self._read_problem(paths[0], exc)) from exc
        # NDJSON scans report inferred types here even when overrides apply at collect time.
        return pl.Schema({**schema, **{c: t for c, t in self._overrides().items() if c in schema}})

    def fetch(self) -> pl.LazyFrame:
        import polars as pl

        paths = self._paths()
        if self.format == "parquet":
            frame = self._scan(paths)
            try:
                # Reading the metadata now makes a corrupt or unreadable file fail here, not downstream.
                frame.collect_schema()
            except (OSError, pl.exceptions.PolarsError) as exc:
                raise self._error(self._read_problem(paths[0], exc)) from exc
            return frame
        # Text formats are read eagerly so a malformed row fails inside fetch, naming its file and line.
        frames = []
        for path in paths:
            try:
                frames.append(self._read_json(path) if self.format == "json" else self._scan([path]).collect())
            except (OSError, pl.exceptions.PolarsError) as exc:
                raise self._error(self._read_problem(path, exc)) from exc
        for path, later in zip(paths[1:], frames[1:], strict=True):
            if later.columns != frames[0].columns:
                raise self._error(
                    f"{self._shown(path)} has columns {', '.join(later.columns)} but "
                    f"{self._shown(paths[0])} has {', '.join(frames[0].columns)}"
                )
        try:
            return pl.concat(frames, how="vertical_relaxed").lazy()
        except pl.exceptions.PolarsError as exc:
            raise self._error(f"cannot combine the matched files: {first_line(str(exc), 'unknown error')}") from exc

    def _error(self, cause: str) -> SourceError:
        return SourceError(self.name, self.describe(), redact(cause))

    def _paths(self) -> list[Path]:
        """The files to read, sorted, each checked to lie inside the project or an allowed folder."""
        root = self.context.project_root
        pattern = Path(self.options.path).expanduser()
        if not pattern.is_absolute():
            pattern = root / pattern
        fixed_parts: list[str] = []
        for part in pattern.parts:
            if _GLOB_CHARACTERS.intersection(part):
                break
            fixed_parts.append(part)
        self._check_allowed(Path(*fixed_parts))
        if len(fixed_parts) == len(pattern.parts):
            if pattern.is_dir():
                raise self._error(f"{self.options.path} is a folder; name a file, or a glob such as folder/*.csv")
            if not pattern.is_file():
                raise self._error(f"file not found: {self.options.path}")
            matches = [pattern]
        else:
            matches = sorted(Path(m) for m in glob.glob(str(pattern), recursive=True) if Path(m).is_file())
            if not matches:
                raise self._error(f"no files match {self.options.path}")
        for match in matches:
            self._check_allowed(match)
        return matches

    def _check_allowed(self, path: Path) -> None:
        problem = confinement_problem(path, self.context)
        if problem:
            raise self._error(problem)

    def _shown(self, path: Path) -> str:
        """``path`` as the user would recognise it: relative to the project when inside it."""
        try:
            return str(path.relative_to(self.context.project_root))
        except ValueError:
            return str(path)

    def _overrides(self) -> dict[str, pl.DataType]:
        return column_dtypes(self.options.schema_overrides)

    def _separator(self) -> str:
        return "\t" if self.format == "tsv" else self.options.separator or ","

    def _scan(self, paths: list[Path]) -> pl.LazyFrame:
        import polars as pl

        options = self.options
        if self.format == "parquet":
            frame = pl.scan_parquet(paths)
            overrides = self._overrides()
            return frame.with_columns(pl.col(c).cast(t) for c, t in overrides.items()) if overrides else frame
        if self.format == "ndjson":
            return pl.scan_ndjson(paths, schema_overrides=self._overrides() or None, infer_schema_length=1000)
        return pl.scan_csv(
            paths,
            separator=self._separator(),
            has_header=options.has_header,
            encoding=options.encoding,
            null_values=options.null_values or None,
            try_parse_dates=options.try_parse_dates,
            schema_overrides=self._overrides() or None,
            infer_schema_length=10_000,
        )

    def _read_json(self, path: Path) -> pl.DataFrame:
        import polars as pl

        return pl.read_json(path, schema_overrides=self._overrides() or None, infer_schema_length=None)

    def _read_problem(self, path: Path, exc: Exception) -> str:
        """One line saying what is wrong with ``path``, with a line number where one can be found."""
        import polars as pl

        shown = self._shown(path)
        message = str(exc)
        if isinstance(exc, FileNotFoundError):
            return f"file not found: {shown}"
        if isinstance(exc, PermissionError):
            return f"permission denied reading {shown}"
        if isinstance(exc, pl.exceptions.NoDataError):
            return f"{shown} is empty"
        if self.format in ("csv", "tsv"):
            return f"malformed {self.format.upper()} in {shown}{self._csv_location(path, message)}"
        if self.format in ("json", "ndjson"):
            located = _json_problem(path, self.format == "ndjson")
            if located:
                return f"invalid JSON in {shown} {located}"
        return f"cannot read {shown}: {first_line(message, 'unknown error')}"

    def _csv_location(self, path: Path, polars_message: str) -> str:
        """' at line N: what' for the first bad row; the stdlib reader finds it, as Polars gives no line."""
        if "invalid utf-8" in polars_message.lower():
            return _invalid_utf8_line(path)
        unparsable = _UNPARSABLE.search(polars_message)
        try:
            with path.open(newline="", encoding="utf-8", errors="replace") as handle:
                reader = csv.reader(handle, delimiter=self._separator())
                expected = None
                header: list[str] = []
                for row in reader:
                    if expected is None:
                        expected = len(row)
                        header = row if self.options.has_header else []
                        if self.options.has_header:
                            continue
                    if len(row) > expected:
                        return f" at line {reader.line_num}: expected {expected} fields, found {len(row)}"
                    if unparsable and unparsable["column"] in header:
                        index = header.index(unparsable["column"])
                        if index < len(row) and row[index] == unparsable["value"]:
                            return (
                                f" at line {reader.line_num}: could not read {unparsable['value']!r} as "
                                f"{unparsable['dtype']} in column '{unparsable['column']}'"
                            )
        except (csv.Error, OSError):
            pass
        if "not properly escaped" in polars_message:
            return ": a quoted field is never closed, or a quote inside a field is not doubled"
        return f": {first_line(polars_message, 'unknown error')}"


def confinement_problem(path: Path, context: SourceContext) -> str | None:
    """Why ``path`` may not be read, or None when it resolves inside the project or allow_paths."""
    resolved = path.resolve()
    for folder in (context.project_root, *context.allowed_paths):
        base = folder if folder.is_absolute() else context.project_root / folder
        if resolved.is_relative_to(base.resolve()):
            return None
    return f"path {resolved} is outside the reports project; allow it under allow_paths in reportctl.yaml"


def _invalid_utf8_line(path: Path) -> str:
    """' at line N: ...' for the first line that is not UTF-8, reading one line at a time."""
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return f" at line {number}: not valid UTF-8; set encoding: utf8-lossy to replace bad bytes"
    except OSError:
        pass
    return ": not valid UTF-8; set encoding: utf8-lossy to replace bad bytes"


def _json_problem(path: Path, lines: bool) -> str | None:
    """'at line N, column M: what' for the first syntax error, or None when the stdlib parser finds none."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return f"at byte {exc.start}: not valid UTF-8"
    except OSError:
        return None
    if not lines:
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return f"at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as exc:
                return f"at line {number}, column {exc.colno}: {exc.msg}"
    return None
