"""``reportctl explain SPEC --as USER``: which rows each source and dataset of a report shows a viewer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reportctl.cli.output import as_typed, echo, errors_as_json, print_json


def explain(
    spec: Annotated[Path, typer.Argument(help="The spec to explain.", show_default=False)],
    viewer: Annotated[
        str,
        typer.Option(
            "--as",
            metavar="USER",
            help="The viewer: an address or a name in the directory; team:NAME or list:NAME for a burst's group.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show the row filter each source and dataset of SPEC receives for a viewer under the project's policies,
    and the rules that give it; nothing is read or rendered."""
    if as_json:
        errors_as_json()
    from reportctl.data.policy_checks import explain_access
    from reportctl.spec.loader import load_spec

    loaded = load_spec(spec)
    explained = explain_access(loaded, viewer)
    if as_json:
        print_json(explained)
        return
    who = explained["viewer"] + (f" ({explained['name']})" if explained["name"] else "")
    if explained["members"] is not None:
        count = len(explained["members"])
        who += f" ({count} member{'s' * (count != 1)}: rows all of them may see)"
    known = "" if explained["in_directory"] else ", not in the directory"
    policies = as_typed(Path(explained["policies"])) if explained["policies"] else "no policies"
    echo(f"{loaded.spec.name} for {who}{known}, under {policies}")
    sources, datasets = explained["sources"], explained["datasets"]
    width = max(len(name) for name in [*sources, *datasets])
    echo("sources")
    for name, source in sources.items():
        columns = ", ".join(source["protected_by"])
        rules = f"  (by {', '.join(source['rules'])})" if source["rules"] else ""
        shown = f"protected_by {columns}: {source['filter']}{rules}" if columns else "unprotected: every row"
        echo(f"  {name:<{width}}  {shown}")
    if datasets:
        echo("datasets")
    for name, dataset in datasets.items():
        echo(f"  {name:<{width}}  {dataset['filter'] if dataset['reads'] else 'unprotected: every row'}")
