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
    specs: Annotated[
        list[Path],
        typer.Argument(
            help="The spec to render; several specs or folders render every report in them, in parallel.",
            show_default=False,
        ),
    ],
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
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Reports rendered at once, each in its own process (default: CPUs)."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Query every source live; neither read nor fill the query cache.")
    ] = False,
    viewer: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="USER",
            help="Render for this viewer (an address or a name in the directory; team:NAME or list:NAME for a "
            "burst's group): protected sources show only the rows policies.yaml allows them.",
        ),
    ] = None,
) -> None:
    """Render SPEC once: read its data, write its outputs to OUT/<name>/<run-id>/ with a manifest. Given several
    specs or folders, render every report in them in a pool of processes, one line each."""
    if as_json:
        errors_as_json()
    if deliver and no_state:
        raise UsageError("--deliver records each recipient in the state store's ledger; drop --no-state")
    if dry_run and not deliver:
        raise UsageError("--dry-run previews a delivery; use it with --deliver")
    if viewer is not None and deliver:
        raise UsageError(
            "--as renders one viewer's rows, and --deliver would send them to every recipient of the spec; "
            "render with --as alone, or give the spec a burst for one variant per recipient group"
        )
    if viewer is not None and not 0 < len(viewer.strip()) <= 200:
        raise UsageError("--as needs a viewer: an address or a name in the directory (at most 200 characters)")
    values = parse_assignments(param or [])
    chosen = [f.strip() for f in formats.split(",") if f.strip()] if formats else None
    if save_snapshot is not None and from_snapshot is not None:
        raise UsageError("--save-snapshot and --from-snapshot: give one; a snapshot is saved from live sources")
    if len(specs) > 1 or specs[0].is_dir() or jobs is not None:
        if save_snapshot is not None or from_snapshot is not None or dry_run:
            raise UsageError("--save-snapshot, --from-snapshot and --dry-run take one spec, not a batch")
        render_batch(
            specs, values, chosen, output, rev, jobs,
            record=not no_state, deliver=deliver, as_json=as_json, cache=not no_cache, viewer=viewer,
        )  # fmt: skip
        return
    # Imported here, not above: a batch's workers import them, and the parent starts its pool sooner without them.
    from reportctl.batch import run_payload
    from reportctl.data.cache import cache_hits
    from reportctl.formats import format_bytes
    from reportctl.runner import render_report
    from reportctl.spec.revisions import load_spec_at
    from reportctl.state.recording import record_manual_render

    loaded = load_spec_at(specs[0], rev)
    options: dict[str, Any] = {
        "parameters": values, "formats": chosen, "output_dir": output,
        "snapshot": from_snapshot, "save_snapshot": save_snapshot, "cache": not no_cache, "viewer": viewer,
    }  # fmt: skip
    with progress(not as_json) as say:
        if no_state:
            result = render_report(loaded, progress=say, **options)
        else:
            result = record_manual_render(loaded, options, say, deliver=deliver, dry_run=dry_run)
    if result.variants:
        show_burst(result, as_json=as_json)
        return
    if as_json:
        payload = {**run_payload(result), "warnings": result.warnings}
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
        f"{count} file{'s' if count != 1 else ''} in {as_typed(result.directory)}{cache_hits(result.sources)}"
    )
    show_warnings(result.warnings)
    if result.delivery is not None:
        show_delivery(result.delivery)


def show_warnings(warnings: list[dict[str, str]]) -> None:
    """The sections rendered as placeholders (``on_error: placeholder``), on stderr; the exit code stays 0."""
    for warning in warnings:
        typer.echo(f"warning: section '{warning['section']}' rendered as a placeholder: {warning['error']}", err=True)


def show_burst(result: Any, *, as_json: bool) -> None:
    """A burst's variants: each group's run, files and delivery; exit code 3 when a variant's recipient did not
    get it."""
    from reportctl.batch import run_payload
    from reportctl.cli.deliver import describe_delivery
    from reportctl.errors import DeliveryError

    if as_json:
        print_json(run_payload(result))
    for variant in result.variants:
        if as_json:
            continue
        done, members = variant.result, len(variant.audience.members)
        if variant.earlier:
            how = "rendered by an earlier attempt; its deliveries finished"
        else:
            files = len(done.artifacts)
            how = f"{files} file{'s' * (files != 1)} in {as_typed(done.directory)}"
        who = f"{members} recipient{'s' * (members != 1)}"
        echo(f"variant for {variant.audience} ({who}): run {variant.run_id}, {how}")
        for line in describe_delivery(variant.delivery) if variant.delivery is not None else ():
            echo(f"  {line}")
    undelivered = [v for v in result.variants if v.delivery is not None and v.delivery.undelivered]
    if not as_json:
        echo(f"burst {result.run_id}: {len(result.variants)} variants of {result.report}")
    if undelivered and not any(v.delivery.dry_run for v in undelivered):
        runs = ", ".join(v.run_id for v in undelivered)
        raise DeliveryError(
            f"not every recipient got their variant (runs {runs}); `reportctl runs show RUN` lists them"
        )


def render_batch(
    paths: list[Path],
    values: dict[str, str],
    formats: list[str] | None,
    output: Path | None,
    rev: str | None,
    jobs: int | None,
    *,
    record: bool,
    deliver: bool,
    as_json: bool,
    cache: bool = True,
    viewer: str | None = None,
) -> None:
    """Every report in ``paths`` in a process pool: a line (or a JSON object) per report as it finishes, a
    summary, and the worst exit code of them all."""
    from reportctl.batch import BatchJob, default_jobs, render_many
    from reportctl.cli.output import error, print_json_line
    from reportctl.data.cache import cache_hits
    from reportctl.spec.files import find_yaml, is_rendered_spec

    specs = [path for path in find_yaml(paths) if is_rendered_spec(path)]
    if not specs:
        raise UsageError(f"no specs to render in {', '.join(str(p) for p in paths)}")
    workers = jobs or default_jobs()
    batch = [BatchJob(spec, values, formats, output, rev, record, deliver, cache, viewer) for spec in specs]
    if not as_json:
        pool = min(workers, len(batch))
        echo(f"rendering {len(batch)} report{'s' * (len(batch) != 1)} with {pool} process{'es' * (pool != 1)}")
    worst, failed = 0, 0
    for outcome in render_many(batch, workers):
        worst = max(worst, outcome.exit_code)
        failed += outcome.exit_code == 1
        if as_json:
            print_json_line(
                {"spec": str(outcome.spec), "exit_code": outcome.exit_code, "error": outcome.error}
                | (outcome.payload or {})
                | ({"delivery": outcome.delivered} if outcome.delivered else {})
            )
        elif outcome.error is not None:
            named = str(outcome.spec.resolve()) in outcome.error or str(outcome.spec) in outcome.error
            error(outcome.error if named else f"{as_typed(outcome.spec)}: {outcome.error}")
        else:
            files = f"{outcome.files} file{'s' * (outcome.files != 1)}"
            where = as_typed(outcome.directory) if outcome.directory else "?"
            hits = cache_hits((outcome.payload or {}).get("sources", []))
            line = f"rendered {outcome.report} in {outcome.seconds:.2f} s: {files} in {where}{hits}"
            echo(line + (f"; delivered {outcome.delivered}" if outcome.delivered else ""))
    if not as_json:
        done = len(batch) - failed
        echo(f"{done} of {len(batch)} reports rendered" + (f", {failed} failed" if failed else ""))
    if worst:
        raise typer.Exit(worst)
