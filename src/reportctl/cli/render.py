"""``reportctl render``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reportctl.cli.deliver import show_delivery
from reportctl.cli.output import as_typed, echo, errors_as_json, print_json, progress
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
    rev: Annotated[
        str | None,
        typer.Option("--rev", help="Render the spec and its bases as at this git revision (tag, branch, commit)."),
    ] = None,
    save_snapshot: Annotated[
        Path | None,
        typer.Option("--save-snapshot", help="Save the source data read into this folder (Parquet + manifest)."),
    ] = None,
    from_snapshot: Annotated[
        Path | None,
        typer.Option("--from-snapshot", help="Read the source data from this snapshot folder, not the sources."),
    ] = None,
) -> None:
    """Render SPEC once: read its data, write its outputs to OUT/<name>/<run-id>/ with a manifest."""
    from reportctl.formats import format_bytes
    from reportctl.runner import render_report
    from reportctl.spec.revisions import load_spec_at

    if as_json:
        errors_as_json()
    if deliver and no_state:
        raise UsageError("--deliver records each recipient in the state store's ledger; drop --no-state")
    if dry_run and not deliver:
        raise UsageError("--dry-run previews a delivery; use it with --deliver")
    values = parse_assignments(param or [])
    chosen = [f.strip() for f in formats.split(",") if f.strip()] if formats else None
    if save_snapshot is not None and from_snapshot is not None:
        raise UsageError("--save-snapshot and --from-snapshot: give one; a snapshot is saved from live sources")
    loaded = load_spec_at(spec, rev)
    options: dict[str, Any] = {
        "parameters": values, "formats": chosen, "output_dir": output,
        "snapshot": from_snapshot, "save_snapshot": save_snapshot,
    }  # fmt: skip
    with progress(not as_json) as say:
        if no_state:
            result = render_report(loaded, progress=say, **options)
        else:
            result = _render_recorded(loaded, options, say, deliver=deliver, dry_run=dry_run)
    if as_json:
        payload = {
            "run_id": result.run_id,
            "report": result.report,
            "status": result.status,
            "directory": str(result.directory),
            "manifest": str(result.manifest),
            "parameters": result.parameters,
            "git_commit": result.git_commit,
            "git_dirty": result.git_dirty,
            "revision": result.revision,
            "snapshot": str(result.snapshot) if result.snapshot else None,
            "timings": result.timings,
            "artifacts": [a.as_dict() | {"path": str(a.path)} for a in result.artifacts],
        }
        if result.delivery is None:
            print_json(payload)
        else:
            show_delivery(result.delivery, as_json=True, payload=payload)
        return
    for artifact in result.artifacts:
        echo(f"wrote {as_typed(artifact.path)} ({format_bytes(artifact.bytes)})")
    count = len(result.artifacts)
    echo(
        f"rendered {result.report} in {result.timings.get('total', 0):.2f} s: "
        f"{count} file{'s' if count != 1 else ''} in {as_typed(result.directory)}"
    )
    if result.delivery is not None:
        show_delivery(result.delivery)


def _render_recorded(loaded: Any, options: dict[str, Any], say: Any, *, deliver: bool, dry_run: bool) -> Any:
    """Render with the run recorded in the state store (parameters and formats are checked before anything is
    recorded)."""
    from reportctl.run_record import jsonable_parameters
    from reportctl.runner import chosen_writers, default_run_time, resolve_parameters
    from reportctl.state import open_store
    from reportctl.state.recording import render_recorded

    now = default_run_time()
    # a mistyped parameter or format is a usage problem, not a run: checked before anything is recorded
    resolved = resolve_parameters(loaded, options["parameters"], now)
    chosen_writers(loaded, options["formats"])
    with open_store(loaded.project) as store:
        run = store.create_run(
            loaded.spec.name,
            trigger="manual",
            spec_path=str(loaded.path),
            spec_hash=loaded.spec_hash,
            revision=loaded.ref,
            parameters=jsonable_parameters(resolved),
            now=now,
        )
        return render_recorded(
            store,
            loaded,
            run.id,
            deliver=deliver,
            dry_run=dry_run,
            now=now,
            progress=say,
            **options,
        )
