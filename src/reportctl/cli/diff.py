"""``reportctl diff``."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from reportctl.cli.output import echo, print_json
from reportctl.cli.render import parse_assignments
from reportctl.errors import ExitCode, ReportctlError


class Format(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def diff(
    spec: Annotated[Path, typer.Argument(help="The spec to compare.", show_default=False)],
    base: Annotated[
        str, typer.Option("--base", help="The revision to compare from: a branch, tag or commit.", show_default=False)
    ],
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
    """Render SPEC at two revisions on the same data and say what a reader would see change."""
    from reportctl.review.render_diff import render_diff
    from reportctl.review.versions import diff_revisions

    try:
        report = diff_revisions(
            spec,
            base,
            head,
            parameters=parse_assignments(param or []),
            snapshot=data_snapshot,
            max_cells=max_cells,
        )
    except ReportctlError as exc:
        if output_format == Format.json:
            print_json({"error": _error_object(exc)})
        raise
    color = output_format == Format.text and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    echo(render_diff(report, output_format.value, color=color))
    if exit_code and report.changed:
        raise typer.Exit(int(ExitCode.FAILED))


def _error_object(error: ReportctlError) -> dict[str, object]:
    """The failure as JSON, so a CI step that parses stdout reads why instead of nothing."""
    from reportctl.secrets import redact

    problems = getattr(error, "problems", None) or []
    listed = [p.as_dict() for p in problems]
    return {"message": redact(str(error)), "exit_code": int(error.exit_code), "problems": listed}
