"""``reportctl audit``: who rendered, delivered, triggered, used a secret or had a policy applied, and when."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from reportctl.cli.output import aligned_columns, echo, local_time, moment_option, print_json


def audit(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only entries since a time (ISO, e.g. 2026-11-28T09:00) or a duration ago (7d)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only entries before a time (ISO) or a duration ago (1d).")
    ] = None,
    report: Annotated[str | None, typer.Option("--report", help="Only entries about this report.")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only entries by this actor.")] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action",
            help="Only this action: render, delivery, trigger (with trigger.skipped), secret, policy, api (with "
            "api.denied).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many entries, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: one array.")] = False,
) -> None:
    """Show the audit log, newest first. Entries are only ever added (retention by age: audit.retention)."""
    from reportctl.config import find_project
    from reportctl.state import NoStateStore, open_store
    from reportctl.state.audit import events

    start = moment_option("--since", since) if since is not None else None
    end = moment_option("--until", until) if until is not None else None
    project = find_project()
    try:
        with open_store(project, create=False) as store:
            found = events(store, since=start, until=end, report=report, actor=actor, action=action, limit=limit)
    except NoStateStore:
        found = []  # nothing recorded yet, and no state store is created for asking
    if as_json:
        print_json([event.as_dict() for event in found])
        return
    if not found:
        echo("no audit entries")
        return
    rows = [
        (
            local_time(event.at, project.config.timezone),
            event.actor,
            event.action,
            event.report or "-",
            event.run_id or "-",
            _what(event.detail),
        )
        for event in found
    ]
    for line in aligned_columns(("WHEN", "ACTOR", "ACTION", "REPORT", "RUN", "DETAIL"), rows):
        echo(line)


def _what(detail: dict[str, Any]) -> str:
    """The detail as ``key=value`` pairs, empty values left out, for one line of the table."""
    shown = []
    for key, value in detail.items():
        if value in (None, "", [], {}, False):
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        shown.append(f"{key}={text}")
    return " ".join(shown)
