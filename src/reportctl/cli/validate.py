"""``reportctl validate``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reportctl.cli.output import as_typed, echo, errors_as_json, print_json
from reportctl.errors import ExitCode, Problem, SpecError
from reportctl.spec.files import find_yaml

if TYPE_CHECKING:
    from reportctl.config import Project
    from reportctl.spec.loader import LoadedSpec


class Format(StrEnum):
    text = "text"
    json = "json"
    github = "github"


def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Spec files or folders (default: the project's spec folders).")
    ] = None,
    output_format: Annotated[Format, typer.Option("--format", help="text, json, or github annotations.")] = Format.text,
    connect: Annotated[
        bool,
        typer.Option(
            "--connect",
            help="Ask each SQL database for its result columns and types (reads no rows), and each HTTP API once.",
        ),
    ] = False,
) -> None:
    """Check specs and reportctl.yaml; list every problem with FILE:LINE:COL (notes say what was not checked)."""
    from reportctl.config import Project, ProjectConfig, find_config

    if output_format is Format.json:
        errors_as_json()
    projects: dict[Path | None, Project | SpecError] = {}
    if not paths:
        config = find_config(Path.cwd())
        project = _project(config, projects)
        if isinstance(project, SpecError):  # still check the specs where the default settings would look
            project = Project(config.parent if config else Path.cwd(), ProjectConfig(), config)
        paths = [d for d in project.spec_dirs if d.is_dir()]
        if config:
            paths.append(config)
    files = find_yaml(paths)
    results = _without_repeated_notes([(file, _problems_of(file, projects, connect)) for file in files])
    _report(results, output_format)
    if not files or any(not p.is_note for _, problems in results for p in problems):
        raise typer.Exit(int(ExitCode.FAILED))


def _project(config: Path | None, projects: dict[Path | None, Project | SpecError]) -> Project | SpecError:
    """The project of ``config``, loaded once per run of validate; its problems if its settings are invalid."""
    from reportctl.config import Project, ProjectConfig, load_config

    if config not in projects:
        try:
            settings = load_config(config) if config else ProjectConfig()
            projects[config] = Project(config.parent if config else Path.cwd().resolve(), settings, config)
        except SpecError as exc:
            projects[config] = exc
    return projects[config]


def _problems_of(file: Path, projects: dict[Path | None, Project | SpecError], connect: bool) -> list[Problem]:
    from reportctl.config import CONFIG_NAME, find_config
    from reportctl.errors import ReportctlError
    from reportctl.spec.loader import inspect_spec

    config = file.resolve() if file.name == CONFIG_NAME else find_config(file)
    project = _project(config, projects)
    if file.name == CONFIG_NAME:
        from reportctl.data.policy_checks import check_policies
        from reportctl.delivery.directory import check_directory

        # people.yaml (or the directory CSV) and policies.yaml are project files: checked with the settings that
        # name them
        if isinstance(project, SpecError):
            return project.problems
        return [*check_directory(project), *check_policies(project)]
    if isinstance(project, SpecError):
        first, more = _as_typed(project.problems[0]), len(project.problems) - 1
        also = f" (and {more} more problem{'s' * (more != 1)} there)" if more else ""
        return [Problem(f"not checked: the project settings are invalid: {first}{also}", file=file)]
    from reportctl.spec.checks import check_recipients

    try:
        loaded, problems = inspect_spec(file, project, connect=connect)
    except SpecError as exc:
        return exc.problems
    except ReportctlError as exc:
        return [Problem(str(exc), file=file)]
    if loaded is None or any(not p.is_note for p in problems):
        return SpecError(problems).problems  # in reading order
    return [*problems, *check_recipients(loaded), *_preset_notes(loaded)]


def _preset_notes(loaded: LoadedSpec) -> list[Problem]:
    """A note saying which cron a schedule preset was read as and when it fires next, so a reader can check it
    means what they meant."""
    import dataclasses
    from datetime import UTC, datetime

    from reportctl.schedule import fire_times

    schedule = loaded.spec.schedule
    if schedule is None or schedule.every is None:
        return []
    fires = fire_times(schedule.cron, schedule.timezone, datetime.now(UTC), count=3)
    when = ", ".join(fire.isoformat() for fire in fires) or "never"
    message = f"every '{schedule.every}' is cron '{schedule.cron}' in {schedule.timezone}; next fires {when}"
    return [dataclasses.replace(loaded.problem(("schedule", "every"), message), severity="note")]


def _without_repeated_notes(results: list[tuple[Path, list[Problem]]]) -> list[tuple[Path, list[Problem]]]:
    """Each note once, though several specs extend the base it points into."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for file, problems in results:
        notes = {(str(p.position), p.message) for p in problems if p.is_note and p.position}
        kept.append((file, [p for p in problems if not p.is_note or (str(p.position), p.message) not in seen]))
        seen |= notes
    return kept


def _report(results: list[tuple[Path, list[Problem]]], output_format: Format) -> None:

    if output_format is Format.json:
        print_json(
            {
                "valid": bool(results) and not any(_errors(p) for _, p in results),
                "files": [
                    {
                        "file": str(f),
                        "valid": not _errors(p),
                        "problems": [x.as_dict() for x in p],
                    }
                    for f, p in results
                ],
            }
        )
        return
    if not results:
        echo("no spec files found")
        return
    for file, problems in results:
        for problem in problems:
            echo(_annotation(file, problem) if output_format is Format.github else str(_as_typed(problem)))
    bad = sum(1 for _, p in results if _errors(p))
    count = sum(len(_errors(p)) for _, p in results)
    notes = sum(len(p) for _, p in results) - count
    noted = f" ({notes} note{'s' if notes != 1 else ''})" if notes else ""
    if output_format is Format.text:
        if bad:
            echo(f"{count} problem{'s' if count != 1 else ''} in {bad} of {len(results)} files{noted}")
        else:
            echo(f"{len(results)} file{'s' if len(results) != 1 else ''} valid{noted}")


def _as_typed(problem: Problem) -> Problem:
    """``problem`` with its file relative to the working folder when it is inside it, as a person types it."""
    import dataclasses

    position = problem.position
    return dataclasses.replace(
        problem,
        file=as_typed(problem.file) if problem.file else None,
        position=dataclasses.replace(position, file=as_typed(position.file)) if position else None,
    )


def _errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if not p.is_note]


def _annotation(file: Path, problem: Problem) -> str:
    """A GitHub Actions ``::error`` (``::notice`` for a note) workflow command, placed by the path from the
    repository root."""
    where = problem.position
    properties = {"file": _repository_path(where.file if where else file)}
    if where:
        properties |= {"line": str(where.line), "col": str(where.column)}
    properties["title"] = "reportctl validate"
    message = f"{problem.path}: {problem.message}" if problem.path else problem.message
    listed = ",".join(f"{key}={_escape(value, in_property=True)}" for key, value in properties.items())
    level = "notice" if problem.is_note else "error"
    return f"::{level} {listed}::{_escape(message)}"


def _escape(text: str, *, in_property: bool = False) -> str:
    """Escaped as GitHub's workflow commands require: % CR LF always, and ':' ',' in a property's value."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if in_property else text


def _repository_path(file: Path) -> str:
    """``file`` relative to the top of its git repository (a folder holding ``.git``), else to the working folder.

    Paths outside both stay as given.
    """
    resolved = file.resolve()
    root = next((folder for folder in resolved.parents if (folder / ".git").exists()), None)
    try:
        return resolved.relative_to(root or Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(file)
