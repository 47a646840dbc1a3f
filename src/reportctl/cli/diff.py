"""``reportctl diff``."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reportctl.cli.output import as_typed, echo, error, error_object, errors_as_json
from reportctl.cli.render import parse_assignments
from reportctl.errors import ExitCode, ReportctlError, UsageError

if TYPE_CHECKING:
    from reportctl.review.model import ReportDiff
    from reportctl.review.render_diff import DiffFormat


class Format(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def diff(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Specs or folders. A folder (default: the project's spec folders) means every spec in it whose "
            "file, or a base it extends, changed.",
            show_default=False,
        ),
    ] = None,
    base: Annotated[
        str, typer.Option("--base", help="The revision to compare from: a branch, tag or commit.", show_default=False)
    ] = "",
    head: Annotated[
        str | None, typer.Option("--head", help="The revision to compare to (default: the working tree).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A parameter value for both versions, KEY=VALUE.")
    ] = None,
    output_format: Annotated[
        Format, typer.Option("--format", help="text, markdown (a pull-request comment) or json.")
    ] = Format.text,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit 1 when something changed, 0 when nothing did (as git diff).")
    ] = False,
    data_snapshot: Annotated[
        Path | None,
        typer.Option("--data-snapshot", help="Read both versions' data from this snapshot folder, not live sources."),
    ] = None,
    max_cells: Annotated[
        int, typer.Option("--max-cells", min=0, help="How many changed cells to list per table.")
    ] = 10,
) -> None:
    """Render specs at two revisions on the same data and say what a reader would see change."""
    from reportctl.review.render_diff import render_diff
    from reportctl.review.versions import diff_revisions

    if output_format is Format.json:
        errors_as_json()
    if not base:
        raise UsageError("diff needs --base REF: the revision to compare from, e.g. --base origin/main")
    parameters = parse_assignments(param or [])
    single = paths is not None and len(paths) == 1 and not paths[0].is_dir()
    specs = paths if single and paths else _specs(paths, base, head)
    reports, failures = [], []
    for spec in specs:
        try:
            shown = as_typed(spec)
            reports.append(
                diff_revisions(shown, base, head, parameters=parameters, snapshot=data_snapshot, max_cells=max_cells)
            )
        except ReportctlError as exc:
            if single:
                raise
            failures.append((as_typed(spec), exc))
    color = output_format == Format.text and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    if single:
        echo(render_diff(reports[0], output_format.value, color=color))
    else:
        echo(_several(reports, failures, output_format, base, head, color=color))
    for spec, failure in failures:
        error(f"{spec}: {failure}")
    if failures:
        raise typer.Exit(max(int(failure.exit_code) for _, failure in failures))
    if exit_code and any(report.changed for report in reports):
        raise typer.Exit(int(ExitCode.FAILED))


def _specs(paths: list[Path] | None, base: str, head: str | None) -> list[Path]:
    """The specs to compare: files as named; in folders, those the change touches."""
    from reportctl.review.affected import affected_specs

    if not paths:
        from reportctl.config import find_project

        project = find_project(Path.cwd())
        paths = [folder for folder in project.spec_dirs if folder.is_dir()]
        if not paths:
            raise UsageError("no spec folders here: name the specs or folders to compare")
    files = [p for p in paths if not p.is_dir()]
    folders = [p for p in paths if p.is_dir()]
    return files + [p for p in affected_specs(folders, base, head) if p not in files] if folders else files


def _several(
    reports: list[ReportDiff],
    failures: list[tuple[Path, ReportctlError]],
    output_format: Format,
    base: str,
    head: str | None,
    *,
    color: bool,
) -> str:
    """The diffs of several specs in one document: one per spec, and those that could not be compared."""
    from reportctl.review.render_diff import render_diff

    if output_format is Format.json:
        return json.dumps(
            {
                "changed": any(r.changed for r in reports),
                "base": base,
                "head": head or "working tree",
                "reports": [r.as_dict() for r in reports],
                "errors": [{"spec": str(spec), **error_object(exc)} for spec, exc in failures],
            },
            indent=2,
            ensure_ascii=False,
        )
    from reportctl.secrets import redact

    kind: DiffFormat = "markdown" if output_format is Format.markdown else "text"
    parts = [render_diff(report, kind, color=color).rstrip("\n") for report in reports]
    if output_format is Format.markdown:
        parts += [f"### `{spec}`: cannot be compared\n\n```\n{redact(str(exc))}\n```" for spec, exc in failures]
    if not reports and not failures:
        target = head or "the working tree"
        return f"No spec changed between {base} and {target}."
    return "\n\n".join(parts)
