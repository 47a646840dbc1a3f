"""``reportctl replay``: render a recorded run again and say whether every file is byte-identical."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reportctl.cli.output import echo, print_json
from reportctl.errors import ExitCode

if TYPE_CHECKING:
    from reportctl.state.models import RunRecord


def replay(
    run: Annotated[str, typer.Argument(help="Run id, or enough of its start to be unique.", show_default=False)],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Keep the replayed files here (default: a temporary folder).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Render RUN again from its git commit, parameters, run time and data snapshot; exit 1 unless every file is
    byte-identical to the original."""
    from reportctl.config import find_project
    from reportctl.replay import replay_run
    from reportctl.state import open_store

    project = find_project()
    with open_store(project, create=False) as store:
        record = store.get_run(run)
        from reportctl.state import audit

        audit.record(
            store, "trigger", report=record.report, run_id=record.id, spec_hash=record.spec_hash,
            git_commit=record.git_commit, detail={"command": "replay"},
        )  # fmt: skip
    _check_snapshot_here(record)
    with tempfile.TemporaryDirectory(prefix="reportctl-replay-") as temporary:
        done = replay_run(record, output or Path(temporary), project)
        if as_json:
            print_json(
                {
                    "run_id": done.run_id,
                    "report": done.report,
                    "commit": done.commit,
                    "snapshot": str(done.snapshot),
                    "directory": str(done.directory) if output else None,
                    "identical": done.identical,
                    "files": [f.as_dict() for f in done.files],
                }
            )
        else:
            at = f"commit {done.commit[:12]}" if done.commit else "the working tree"
            echo(f"replayed {done.run_id} ({done.report}) at {at} on the snapshot {done.snapshot}")
            for file in done.files:
                echo(f"{file.verdict:<10} {file.path}{_detail(file.original, file.replayed)}")
            same = sum(1 for f in done.files if f.verdict == "identical")
            kept = f"; kept in {done.directory}" if output else ""
            echo(f"{same} of {len(done.files)} files byte-identical{kept}")
    if not done.identical:
        raise typer.Exit(int(ExitCode.FAILED))


def _check_snapshot_here(record: RunRecord) -> None:
    """A run rendered on another machine (a celery worker) left its data snapshot there: the artifact store keeps
    its files, which a replay compares by their recorded sha256, but never the snapshot (source rows as read, before
    row-level policies)."""
    import socket

    from reportctl.replay import ReplayError

    host = (record.worker or "").rpartition(":")[0]
    if record.snapshot and host and host != socket.gethostname() and not Path(record.snapshot).exists():
        raise ReplayError(
            f"run {record.id}: its data snapshot {record.snapshot} is on {host}, which rendered it, not on this "
            "machine; replay it there (the artifact store keeps a run's files, not its snapshot)"
        )


def _detail(original: str | None, replayed: str | None) -> str:
    if original is None:
        return " (only the replay wrote it)"
    if replayed is None:
        return " (the replay did not write it)"
    if original != replayed:
        return f" (sha256 {replayed[:12]}, the run recorded {original[:12]})"
    return ""
