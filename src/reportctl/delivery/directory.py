"""Loading the directory behind ``team:NAME`` and ``list:NAME``: people.yaml, a CSV, or a sql/http source.

The directory is read again for every delivery run, so a person added to it receives the next run. File-based
directories are checked by ``reportctl validate``; a source is only read when delivering, never during validate.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError

from reportctl.config import CONFIG_NAME, Project, read_text
from reportctl.delivery.recipients import (
    NAME,
    NO_DIRECTORY,
    REFERENCE,
    Directory,
    Person,
    RecipientEntry,
    address_problem,
)
from reportctl.errors import Position, Problem, SourceError, SpecError, did_you_mean, one_of
from reportctl.spec.types import StrictModel

if TYPE_CHECKING:
    from reportctl.spec.models import SourceOptions

DEFAULT_FILE = "people.yaml"
CSV_COLUMNS = ("email", "name", "teams", "lists")
_SEPARATORS = re.compile(r"[;,]")
_GROUP_NAME = re.compile(rf"^{NAME}$")


def _names(value: Any) -> Any:
    """'a; b' or 'a, b' as a list, so one string can name several teams or lists."""
    if isinstance(value, str):
        return split_names(value)
    return value


def _email(value: str) -> str:
    problem = address_problem(value)
    if problem:
        raise ValueError(problem)
    return value.strip()


def _group_name(value: str) -> str:
    if not _GROUP_NAME.match(value):
        raise ValueError(f"'{value}' cannot be named as team:NAME or list:NAME; use letters, digits, '_', '-', '.'")
    return value


GroupName = Annotated[str, AfterValidator(_group_name)]
GroupNames = Annotated[list[GroupName], BeforeValidator(_names)]
ListEntries = Annotated[list[RecipientEntry], BeforeValidator(_names)]


class PersonEntry(StrictModel):
    """One person of people.yaml."""

    email: Annotated[str, AfterValidator(_email)] = Field(description="Where their reports go: user@example.com.")
    name: str = Field(default="", description="Their name, for greetings and messages.")
    teams: GroupNames = Field(default_factory=list, description="Teams they belong to, for team:NAME.")
    lists: GroupNames = Field(default_factory=list, description="Lists they are on, for list:NAME.")


class PeopleFile(StrictModel):
    """people.yaml: the people, and lists made of addresses, teams and other lists."""

    people: list[PersonEntry] = Field(default_factory=list, description="Everyone team:NAME and list:NAME may reach.")
    lists: dict[GroupName, ListEntries] = Field(
        default_factory=dict, description="list name -> entries: addresses, team:NAME or list:NAME."
    )


def load_directory(project: Project, now: datetime | None = None) -> Directory:
    """The project's directory as it is now; ``SpecError`` for a bad file or setting, ``SourceError`` for a source."""
    settings = project.config.directory
    _check_settings(project)
    if settings.source is not None:
        return _read_source(project, settings.source, now or datetime.now(UTC))
    found = _read_configured_file(project)
    return found[0] if found else Directory(origin=NO_DIRECTORY)


def check_directory(project: Project) -> list[Problem]:
    """Every problem of a file-based directory, for ``validate``; a source's settings are checked, not queried."""
    settings = project.config.directory
    try:
        _check_settings(project)
        if settings.source is not None:
            _source_options(project, settings.source)
            return []
        found = _read_configured_file(project)
    except SpecError as exc:
        return exc.problems
    if found is None:
        return []
    directory, data, path = found
    return _list_reference_problems(directory, data, path)


def directory_file(project: Project) -> Path | None:
    """The people file the project uses: directory.file, else people.yaml at the root when there is one."""
    settings = project.config.directory
    if settings.file:
        return project.root / settings.file
    if settings.source is None and (project.root / DEFAULT_FILE).is_file():
        return project.root / DEFAULT_FILE
    return None


def file_directory(project: Project) -> Directory | None:
    """The directory when reading it is cheap and sound (a file, or none at all): what spec checks may look into."""
    if project.config.directory.source is not None:
        return None
    try:
        return load_directory(project)
    except SpecError:
        return None  # check_directory reports these problems on the people file itself


def unknown_references(directory: Directory, entries: Iterable[str]) -> list[str]:
    """Messages for the ``team:NAME`` / ``list:NAME`` entries that would reach nobody (with did-you-mean)."""
    messages = []
    for entry in entries:
        reference = entry.strip()
        if not REFERENCE.match(reference):
            continue  # addresses are checked where the spec is, by entry_problem
        for recipient in directory.resolve([reference]):
            if recipient.problem:
                inside = "" if recipient.address == reference else f"{reference}: "
                messages.append(f"{inside}{recipient.problem}")
    return messages


def split_names(text: str) -> list[str]:
    """Team or list names written as 'a; b' or 'a, b'."""
    return [name.strip() for name in _SEPARATORS.split(text) if name.strip()]


def _check_settings(project: Project) -> None:
    settings = project.config.directory
    if settings.file and settings.source is not None:
        raise SpecError([_setting_problem(project, ("directory",), "set either file or source, not both")])


def _read_configured_file(project: Project) -> tuple[Directory, Any, Path] | None:
    """The file-based directory with its located YAML (None for a CSV) and path; None when there is no file."""
    path = directory_file(project)
    if path is None:
        return None
    if not path.is_file():
        message = (
            f"'{project.config.directory.file}' not found in {project.root}; write its path relative to the project"
        )
        raise SpecError([_setting_problem(project, ("directory", "file"), message)])
    directory, data = _read_file(project, path)
    return directory, data, path


def _read_file(project: Project, path: Path) -> tuple[Directory, Any]:
    if path.suffix.lower() not in (".yaml", ".yml", ".csv"):
        names = ", ".join(CSV_COLUMNS)
        message = f"'{path.name}' is neither .yaml nor .csv; use people.yaml or a CSV with columns {names}"
        raise SpecError([_setting_problem(project, ("directory", "file"), message)])
    stat = path.stat()
    return _read_file_as_of(path, _relative(path, project.root), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _read_file_as_of(path: Path, origin: str, _mtime_ns: int, _size: int) -> tuple[Directory, Any]:
    """The directory file as it is at that modification time: validate reads it once for all specs, not once each."""
    if path.suffix.lower() == ".csv":
        return _read_csv(path, origin), None
    return _read_people_yaml(path, origin)


def _read_people_yaml(path: Path, origin: str) -> tuple[Directory, Any]:
    from reportctl.spec.validation import validate_model
    from reportctl.spec.yamlpos import load_yaml

    data = load_yaml(read_text(path), path)
    people_file = validate_model(PeopleFile, {} if data is None else data, path)
    problems = _duplicate_emails([p.email for p in people_file.people], data, path)
    if problems:
        raise SpecError(problems)
    people = [Person(p.email, p.name, frozenset(p.teams), frozenset(p.lists)) for p in people_file.people]
    return Directory(people, {name: list(entries) for name, entries in people_file.lists.items()}, origin), data


def _duplicate_emails(emails: Sequence[str], data: Any, path: Path) -> list[Problem]:
    from reportctl.spec.yamlpos import position_of

    first: dict[str, int] = {}
    problems = []
    for index, email in enumerate(emails):
        key = email.lower()
        if key not in first:
            first[key] = index
            continue
        earlier = position_of(data, ("people", first[key], "email"))
        where = f"line {earlier.line}" if earlier else f"people[{first[key]}]"
        problems.append(
            Problem(
                f"'{email}' is listed twice (first at {where}); give each person one entry with all their teams",
                path=f"people[{index}].email",
                position=position_of(data, ("people", index, "email")),
                file=path,
            )
        )
    return problems


def _list_reference_problems(directory: Directory, data: Any, path: Path) -> list[Problem]:
    """team:NAME and list:NAME inside people.yaml's lists that reach nobody, each reported where it is written."""
    from reportctl.spec.yamlpos import position_of

    problems = []
    for name, entries in directory.lists.items():
        for index, entry in enumerate(entries):
            for recipient in directory.resolve([entry]) if REFERENCE.match(entry) else ():
                if recipient.problem and recipient.address == entry:
                    where = position_of(data, ("lists", name, index))
                    at = f"lists.{name}[{index}]"
                    problems.append(Problem(recipient.problem, path=at, position=where, file=path))
    return problems


def _read_csv(path: Path, origin: str) -> Directory:
    text = read_text(path).removeprefix("\ufeff")  # spreadsheets save UTF-8 with a byte-order mark
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise SpecError([Problem(f"empty; the first line must name the columns {', '.join(CSV_COLUMNS)}", file=path)])
    columns = [column.strip().lower() for column in header]
    _check_header(columns, path)
    problems: list[Problem] = []
    rows: list[tuple[str, str, list[str], list[str]]] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            problems.append(_row_problem(path, line, f"{len(row)} values but the header names {len(columns)} columns"))
            continue
        record = dict(zip(columns, (cell.strip() for cell in row), strict=False))
        email = record.get("email", "")
        problem = address_problem(email)
        if problem:
            problems.append(_row_problem(path, line, f"email: {problem}"))
            continue
        groups = {kind: split_names(record.get(kind, "")) for kind in ("teams", "lists")}
        for kind, names in groups.items():
            for name in names:
                try:
                    _group_name(name)
                except ValueError as exc:
                    problems.append(_row_problem(path, line, f"{kind}: {exc}"))
        rows.append((email, record.get("name", ""), groups["teams"], groups["lists"]))
    if problems:
        raise SpecError(problems)
    return Directory(merge_people(rows), {}, origin)


def _check_header(columns: Sequence[str], path: Path) -> None:
    has = ", ".join(c for c in columns if c) or "none"
    problems = []
    for column in columns:
        if not column:
            continue  # spreadsheets often save a trailing separator: an unnamed column, ignored
        if column not in CSV_COLUMNS:
            hint = did_you_mean(column, CSV_COLUMNS)
            problems.append(f"unknown column '{column}'{hint}; the columns are {one_of(CSV_COLUMNS)}")
        elif columns.count(column) > 1:
            problems.append(f"column '{column}' appears twice")
    if "email" not in columns:
        problems.append(f"no 'email' column; the first line must name the columns (it has: {has})")
    if problems:
        raise SpecError([_row_problem(path, 1, message) for message in dict.fromkeys(problems)])


def _row_problem(path: Path, line: int, message: str) -> Problem:
    return Problem(message, position=Position(path, line, 1), file=path)


def merge_people(rows: Iterable[tuple[str, str, Sequence[str], Sequence[str]]]) -> list[Person]:
    """One person per email (compared without case): teams and lists united, the first name given kept."""
    merged: dict[str, Person] = {}
    for email, name, teams, lists in rows:
        key = email.lower()
        known = merged.get(key)
        if known is None:
            merged[key] = Person(email, name, frozenset(teams), frozenset(lists))
        else:
            merged[key] = Person(known.email, known.name or name, known.teams | set(teams), known.lists | set(lists))
    return list(merged.values())


def _read_source(project: Project, settings: Mapping[str, Any], now: datetime) -> Directory:
    from reportctl.data.sources.base import SourceContext
    from reportctl.plugins import SOURCES, load_plugin

    options = _source_options(project, settings)
    context = SourceContext(
        project_root=project.root,
        run_time=now,
        timezone=project.config.timezone,
        allowed_paths=project.allowed_paths,
    )
    source = load_plugin(SOURCES, options.kind)("directory", options, context)
    frame = source.fetch().collect()
    columns = {column.lower(): column for column in frame.columns}
    if "email" not in columns:
        has = ", ".join(frame.columns) or "none"
        cause = f"the rows have no 'email' column (they have: {has}); name one email, and optionally name, teams, lists"
        raise SourceError("directory", source.describe(), cause)
    rows = []
    for record in frame.iter_rows(named=True):
        email = record[columns["email"]]
        if email is None or not str(email).strip():
            continue  # a row without an address reaches nobody; the rest of the directory still works
        name = record[columns["name"]] if "name" in columns else None
        teams = _cell_names(record[columns["teams"]]) if "teams" in columns else []
        lists = _cell_names(record[columns["lists"]]) if "lists" in columns else []
        rows.append((str(email).strip(), "" if name is None else str(name), teams, lists))
    return Directory(merge_people(rows), {}, f"the directory source ({options.kind})")


def _cell_names(value: Any) -> list[str]:
    """Teams or lists from a source's cell: text with ';' or ',' between names, a list, or nothing."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [name for item in value if item is not None for name in split_names(str(item))]
    return split_names(str(value))


def _source_options(project: Project, settings: Mapping[str, Any]) -> SourceOptions:
    """directory.source validated by its source plugin's Options, with problems positioned in reportctl.yaml."""
    from reportctl.plugins import SOURCES, PluginError, load_plugin, plugin_names, unknown_plugin_message
    from reportctl.spec.validation import problems_from

    kind = settings.get("kind")
    if not isinstance(kind, str):
        raise SpecError([_setting_problem(project, ("directory", "source"), "missing 'kind'; use kind: sql or http")])
    if kind not in plugin_names(SOURCES):
        raise SpecError(
            [_setting_problem(project, ("directory", "source", "kind"), unknown_plugin_message(SOURCES, kind))]
        )
    try:
        options_model = load_plugin(SOURCES, kind).Options
        options: SourceOptions = options_model.model_validate(settings)
    except PluginError as exc:
        raise SpecError([_setting_problem(project, ("directory", "source"), str(exc))]) from None
    except ValidationError as exc:
        file, root = _located_settings(project)
        raise SpecError(problems_from(exc, options_model, file, ("directory", "source"), root)) from None
    return options


def _setting_problem(project: Project, path: tuple[str, ...], message: str) -> Problem:
    from reportctl.spec.validation import format_path
    from reportctl.spec.yamlpos import position_of

    file, root = _located_settings(project)
    return Problem(message, path=format_path(path), position=position_of(root, path), file=file)


def _located_settings(project: Project) -> tuple[Path, Any]:
    """reportctl.yaml with positions, read again only to point at a bad directory setting."""
    from reportctl.spec.yamlpos import load_yaml

    if project.config_file is None:
        return project.root / CONFIG_NAME, {"directory": project.config.directory.model_dump()}
    try:
        return project.config_file, load_yaml(read_text(project.config_file), project.config_file) or {}
    except SpecError:
        return project.config_file, {}


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
