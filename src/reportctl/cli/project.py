"""``reportctl init``, ``list`` and ``schema``: the reports project as a whole."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reportctl.cli.output import echo, print_json


def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it to this file (e.g. reportctl.schema.json).")
    ] = None,
) -> None:
    """Print the JSON Schema of the spec (for editor validation and completion)."""
    from reportctl.config import find_project
    from reportctl.spec.schema import schema_text

    # a delivery may leave out what the project's channel defaults give it
    text = schema_text(find_project().config.channels)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    echo(f"wrote {output}")


def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new reports project.")] = Path("."),
) -> None:
    """Create a working reports project in DIRECTORY: reportctl.yaml, a base spec and a report."""
    from reportctl.scaffold import create_project

    created = create_project(directory)
    for path in created:
        echo(f"created {path}")
    echo(f"next: cd {directory} && reportctl render specs/server-health.yaml")


def list_specs(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the project's specs with their title, schedule and outputs."""
    from reportctl.config import CONFIG_NAME, find_project
    from reportctl.errors import ReportctlError
    from reportctl.spec.files import find_yaml
    from reportctl.spec.loader import load_spec, output_formats

    project = find_project()
    rows: list[dict[str, Any]] = []
    for file in find_yaml([d for d in project.spec_dirs if d.is_dir()]):
        if file.name == CONFIG_NAME:
            continue
        try:
            loaded = load_spec(file, project, check=False)
        except ReportctlError:
            rows.append({"name": None, "file": str(file), "valid": False})
            continue
        spec = loaded.spec
        if spec.abstract:
            continue
        rows.append(
            {
                "name": spec.name,
                "title": spec.title or spec.name,
                "file": str(file.relative_to(project.root)),
                "schedule": f"{spec.schedule.cron} {spec.schedule.timezone}" if spec.schedule else None,
                "outputs": output_formats(loaded),
                "valid": True,
            }
        )
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("no specs found")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "SCHEDULE", "OUTPUTS", "FILE"):
        table.add_column(column)
    for row in rows:
        if not row["valid"]:
            table.add_row("(invalid: run reportctl validate)", "", "", str(row["file"]))
        else:
            outputs = row["outputs"]
            table.add_row(
                str(row["name"]),
                str(row["schedule"] or "-"),
                ",".join(outputs) if isinstance(outputs, list) else "",
                str(row["file"]),
            )
    Console(highlight=False).print(table)
