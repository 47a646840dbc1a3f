"""``reportctl cache``: the project's query cache under .reportctl/cache."""

from __future__ import annotations

from typing import Annotated

import typer

from reportctl.cli.output import echo

app = typer.Typer(no_args_is_help=True, help="The query cache: results of sql and http sources shared by runs.")


@app.callback()
def _cache() -> None:
    """The query cache: results of sql and http sources shared by runs."""


@app.command("clear")
def clear(
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Remove only entries stored longer ago than this, e.g. 1h or 30m."),
    ] = None,
) -> None:
    """Remove the project's cached query results, so the next run of every report queries its sources."""
    from reportctl.config import find_project
    from reportctl.data.cache import QueryCache
    from reportctl.errors import UsageError
    from reportctl.formats import format_bytes
    from reportctl.spec.types import parse_duration

    age = None
    if older_than is not None:
        try:
            age = parse_duration(older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than: {exc}") from None
    project = find_project()
    removed, size = QueryCache(project.cache_dir).clear(age)
    entries = f"{removed} cached result{'s' * (removed != 1)}"
    echo(f"removed {entries} ({format_bytes(size)}) from {project.cache_dir}")
