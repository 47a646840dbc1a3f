"""``reportctl history``: the commits that changed a spec or a base it extends."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reportctl.cli.output import echo, print_json


def history(
    spec: Annotated[Path, typer.Argument(help="The spec whose versions to list.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the commits that changed SPEC or any base it extends (as of HEAD), newest first."""
    from reportctl.cli.output import aligned_columns
    from reportctl.spec.history import spec_history
    from reportctl.spec.revisions import UNSHALLOW_HINT

    found = spec_history(spec)
    if as_json:
        print_json(
            {
                "spec": str(found.spec),
                "files": list(found.files),
                "shallow": found.shallow,
                "versions": [version.as_dict() for version in found.versions],
            }
        )
        return
    rows = [(v.short, v.date[:16].replace("T", " "), v.author, v.message, ", ".join(v.files)) for v in found.versions]
    if not rows:
        echo(f"no commits change {', '.join(found.files)}")
        return
    for line in aligned_columns(("COMMIT", "DATE", "AUTHOR", "MESSAGE", "CHANGED"), rows):
        echo(line)
    if found.shallow:
        typer.echo(f"note: older versions may be missing; {UNSHALLOW_HINT}", err=True)
