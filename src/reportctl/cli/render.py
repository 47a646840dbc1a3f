"""``reportctl render``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reportctl.cli.deliver import show_delivery
from reportctl.cli.output import echo, errors_as_json, print_json, progress
from reportctl.errors import UsageError


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """['region=eu', 'days=7'] -> {'region': 'eu', 'days': '7'}; a pair without '=' is a usage error."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-p expects KEY=VALUE, got '{pair}'")
        values[name.strip()] = value
    return values


def render(
    spec: Annotated[Path, typer.Argument(help="The spec to render.", show_default=False)],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A parameter value, KEY=VALUE; repeatable.")
    ] = None,
    formats: Annotated[
        str | None,
        typer.Option("--format", "-f", help="Comma-separated formats, e.g. csv,json (default: the spec's)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output folder (default: the project's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object describing the run.")] = False,
    no_state: Annotated[bool, typer.Option("--no-state", help="Do not record this run in the state store.")] = False,
    deliver: Annotated[
        bool, typer.Option("--deliver", help="Send the outputs through the spec's deliveries once rendered.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --deliver: show recipients and messages, send nothing.")
    ] = False,
) -> None:
    """Render SPEC once: read its data, write its outputs to OUT/<name>/<run-id>/ with a manifest."""
    from reportctl.formats import format_bytes
    from reportctl.runner import render_report
    from reportctl.spec.loader import load_spec

    if as_json:
        errors_as_json()
    if deliver and no_state:
        raise UsageError("--deliver records each recipient in the state store's ledger; drop --no-state")
    if dry_run and not deliver:
        raise UsageError("--dry-run previews a delivery; use it with --deliver")
    values = parse_assignments(param or [])
    chosen = [f.strip() for f in formats.split(",") if f.strip()] if formats else None
    loaded = load_spec(spec)
    with progress(not as_json) as say:
        if no_state:
            result = render_report(loaded, parameters=values, formats=chosen, output_dir=output, progress=say)
        else:
            result = _render_recorded(loaded, values, chosen, output, say, deliver=deliver, dry_run=dry_run)
    if as_json:
        payload = {
            "run_id": result.run_id,
            "report": result.report,
            "status": result.status,
            "directory": str(result.directory),
            "manifest": str(result.manifest),
            "parameters": result.parameters,
            "timings": result.timings,
            "artifacts": [a.as_dict() | {"path": str(a.path)} for a in result.artifacts],
        }
        if result.delivery is None:
            print_json(payload)
        else:
            show_delivery(result.delivery, as_json=True, payload=payload)
        return
    for artifact in result.artifacts:
        echo(f"wrote {_shown(artifact.path)} ({format_bytes(artifact.bytes)})")
    count = len(result.artifacts)
    echo(
        f"rendered {result.report} in {result.timings.get('total', 0):.2f} s: "
        f"{count} file{'s' if count != 1 else ''} in {_shown(result.directory)}"
    )
    if result.delivery is not None:
        show_delivery(result.delivery)


def _render_recorded(
    loaded: Any,
    values: dict[str, str],
    formats: list[str] | None,
    output: Path | None,
    say: Any,
    *,
    deliver: bool,
    dry_run: bool,
) -> Any:
    """Render with the run recorded in the state store (the parameters are checked before anything is recorded)."""
    from reportctl.runner import default_run_time, jsonable_parameters, resolve_parameters
    from reportctl.state import open_store
    from reportctl.state.recording import render_recorded

    now = default_run_time()
    resolved = resolve_parameters(loaded, values, now)
    with open_store(loaded.project) as store:
        run = store.create_run(
            loaded.spec.name,
            trigger="manual",
            spec_path=str(loaded.path),
            spec_hash=loaded.spec_hash,
            parameters=jsonable_parameters(resolved),
            now=now,
        )
        return render_recorded(
            store,
            loaded,
            run.id,
            deliver=deliver,
            dry_run=dry_run,
            parameters=values,
            formats=formats,
            output_dir=output,
            now=now,
            progress=say,
        )


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
