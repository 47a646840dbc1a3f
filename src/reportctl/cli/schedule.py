"""``reportctl schedule``: the scheduled specs and when they fire."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reportctl.cli.output import echo, error, print_json, progress
from reportctl.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from reportctl.schedule import ScheduledSpec

app = typer.Typer(no_args_is_help=True, help="Scheduled reports: list them, run what is due, or run the daemon.")

NEXT_FIRES = 3
NOW_HELP = "Pretend it is TIME (ISO 8601, e.g. 2026-11-30T08:55:00+01:00; without an offset, UTC)."


@app.callback()
def _schedule() -> None:
    """Scheduled reports: list them, run what is due, or run the daemon."""


def parse_now(value: str | None) -> datetime:
    """The clock for this command: ``value`` (ISO 8601, naive means UTC) or the current time."""
    from datetime import UTC

    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--now: '{value}' is not an ISO 8601 time; use e.g. 2026-11-30T08:55:00+01:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("list")
def list_schedules(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    now: Annotated[str | None, typer.Option("--now", metavar="TIME", help=NOW_HELP)] = None,
) -> None:
    """List every scheduled spec with its cron (and the preset it was read from), time zone, priority and next
    three fire times (local and UTC)."""
    from reportctl.config import find_project
    from reportctl.schedule import scheduled_specs

    clock = parse_now(now)
    project = find_project()
    specs, problems = scheduled_specs([d for d in project.spec_dirs if d.is_dir()], project)
    rows = [_row(spec, project.root, clock) for spec in sorted(specs, key=lambda s: s.name)]
    if as_json:
        print_json(rows)
    elif rows:
        _print_table(rows)
    elif not problems:
        echo("no scheduled specs found")
    for problem in problems:
        error(str(problem))
    if problems:
        raise typer.Exit(int(ExitCode.FAILED))


def _row(spec: ScheduledSpec, root: Path, clock: datetime) -> dict[str, Any]:
    from datetime import UTC

    from reportctl.schedule import fire_times, planned_time

    fires = []
    for fire in fire_times(spec.cron, spec.timezone, clock, count=NEXT_FIRES):
        planned = planned_time(spec.name, fire, spec.jitter)
        fires.append(
            {
                "scheduled": fire.isoformat(),
                "scheduled_utc": fire.astimezone(UTC).isoformat(),
                "planned": planned.isoformat(),
                "planned_utc": planned.astimezone(UTC).isoformat(),
            }
        )
    return {
        "name": spec.name,
        "path": str(spec.path.relative_to(root)) if spec.path.is_relative_to(root) else str(spec.path),
        "cron": spec.cron,
        "every": _preset(spec),
        "timezone": spec.timezone,
        "priority": spec.priority,
        "rev": spec.rev,
        "jitter_seconds": _seconds(spec.jitter),
        "overlap": spec.overlap,
        "misfire_grace_seconds": _seconds(spec.misfire_grace),
        "next": fires,
    }


def _preset(spec: ScheduledSpec) -> str | None:
    """The ``every:`` preset the spec's cron was read from, or None for a cron written as one."""
    schedule = spec.loaded.spec.schedule if spec.loaded is not None else None
    return schedule.every if schedule is not None else None


def _seconds(value: timedelta) -> int | float:
    seconds = value.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds


def _print_table(rows: list[dict[str, Any]]) -> None:
    """One line per fire, the spec's columns on its first; PLANNED is the first fire with its jitter. EVERY (the
    preset a cron was read from) is shown when any schedule is a preset, REV (the pinned revision) when any
    schedule pins one."""
    presets = any(row["every"] for row in rows)
    pinned = any(row["rev"] for row in rows)
    header = ["NAME", "CRON", *(["EVERY"] if presets else []), "TIMEZONE", "PRIORITY"]
    header += [*(["REV"] if pinned else []), "NEXT", "NEXT (UTC)", "PLANNED"]
    lines = [header]
    for row in rows:
        fires = row["next"] or [{"scheduled": "never", "scheduled_utc": "", "planned": ""}]
        for index, fire in enumerate(fires):
            first = [row["name"], row["cron"], *([row["every"] or "-"] if presets else []), row["timezone"]]
            first += [row["priority"]]
            first += [row["rev"] or "-"] if pinned else []
            spec_columns = first if index == 0 else [""] * len(first)
            planned = fire["planned"] if index == 0 else ""
            lines.append([*spec_columns, fire["scheduled"], fire["scheduled_utc"], planned])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


@app.command("tick")
def tick(
    now: Annotated[str | None, typer.Option("--now", metavar="TIME", help=NOW_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Reports rendered at once, each in its own process (default: CPUs)."),
    ] = None,
) -> None:
    """Run every report that fell due since the last tick (with no earlier tick: within each misfire grace).

    For teams that drive reportctl from cron or a CI schedule instead of the daemon; fires are claimed in the
    state store, so a tick and a daemon never run the same fire twice. While a daemon holds the scheduler lease,
    a tick fires nothing and says so (exit 0): the daemon runs the schedules.
    """
    from reportctl.batch import default_jobs
    from reportctl.config import find_project
    from reportctl.schedule.tick import daemon_in_charge, run_tick
    from reportctl.state import open_store

    clock = parse_now(now)
    project = find_project()
    with open_store(project) as store:
        leader = daemon_in_charge(store, clock)
        if leader is not None:
            if as_json:
                print_json({"now": clock.isoformat(), "fires": [], "leader": leader.as_dict()})
            else:
                echo(f"nothing fired: the scheduler lease is held by {leader.describe()}; that daemon fires them")
            return
        with progress(not as_json) as say:
            outcomes, problems = run_tick(project, store, clock, say=say, jobs=jobs or default_jobs())
    if as_json:
        print_json({"now": clock.isoformat(), "fires": [outcome.as_dict() for outcome in outcomes], "leader": None})
    else:
        for outcome in outcomes:
            run = f" {outcome.run_id}" if outcome.run_id else ""
            echo(f"{outcome.state:9} {outcome.report} {outcome.scheduled.isoformat()}{run}  {outcome.detail}".rstrip())
        if not outcomes:
            echo(f"nothing due at {clock.isoformat()}")
    for problem in problems:
        error(str(problem))
    if problems or any(outcome.state == "FAILED" for outcome in outcomes):
        raise typer.Exit(int(ExitCode.FAILED))


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Which daemon fires the schedules: the scheduler lease's holder, its fencing token and when it expires."""
    from reportctl.config import find_project
    from reportctl.schedule.daemon import DAEMON_TICK
    from reportctl.state import NoStateStore, open_store
    from reportctl.state.leader import describe_leader, read_lease

    try:
        with open_store(find_project(), create=False) as store:
            lease, watermark = read_lease(store), store.last_tick(DAEMON_TICK)
    except NoStateStore:
        lease, watermark = None, None
    if as_json:
        print_json({"leader": lease.as_dict() if lease else None, "daemon_tick": _iso(watermark)})
        return
    echo(f"leader: {describe_leader(lease)}")
    echo(f"daemon watermark: {_iso(watermark) or 'never'}")


def _iso(moment: datetime | None) -> str | None:
    from datetime import UTC

    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@app.command("daemon")
def daemon(
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            metavar="text|json",
            help="Log lines as text or JSON (default: text on a terminal, JSON otherwise).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", metavar="PORT", help="Serve Prometheus metrics on this port.")
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", metavar="HOST", help="Address the metrics server binds to.")
    ] = "127.0.0.1",
    grace: Annotated[
        str, typer.Option("--grace", metavar="DURATION", help="How long running reports may finish after SIGTERM.")
    ] = "60s",
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help="Serve the HTTP API (runs, health, metrics, artifact links) here, e.g. 127.0.0.1:8080.",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", metavar="FILE", help="Serve the API over TLS with this certificate.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", metavar="FILE", help="The private key of --tls-cert.")
    ] = None,
    insecure_listen: Annotated[
        bool,
        typer.Option(
            "--insecure-listen", help="Allow --listen on a non-loopback address without TLS (behind a TLS proxy)."
        ),
    ] = False,
) -> None:
    """Run every scheduled spec on its cron schedule until SIGTERM or SIGINT.

    Specs are re-read on SIGHUP and when their files change; fires are claimed in the state store, so a daemon
    and `schedule tick` never run the same fire twice. Only the daemon holding the scheduler lease fires; a second
    daemon on the same state store stands by and takes over when the first stops (see `schedule status`).
    """
    import os
    import sys

    from reportctl.config import find_project
    from reportctl.schedule.daemon_service import DaemonService
    from reportctl.schedule.logs import configure_logging
    from reportctl.spec.types import parse_duration
    from reportctl.state import open_store

    if log_format not in (None, "text", "json"):
        raise UsageError(f"--log-format: '{log_format}' is not a log format; use text or json")
    try:
        grace_period = parse_duration(grace)
    except ValueError as exc:
        raise UsageError(f"--grace: {exc}") from None
    project = find_project()
    logger = configure_logging("text" if log_format == "text" else "json" if log_format == "json" else None)
    metrics = None
    if metrics_port is not None:
        from reportctl.schedule.metrics import DaemonMetrics

        metrics = DaemonMetrics()
        try:
            metrics.serve(metrics_port, metrics_host)
        except OSError as exc:
            raise UsageError(f"--metrics-port: cannot serve on {metrics_host}:{metrics_port}: {exc}") from None
    api = None
    if listen is not None:
        from reportctl.schedule.http_api import DaemonApi
        from reportctl.schedule.metrics import DaemonMetrics

        if (tls_cert is None) != (tls_key is None):
            raise UsageError("--tls-cert and --tls-key go together; give both or neither")
        metrics = metrics or DaemonMetrics()  # GET /metrics serves the same registry as --metrics-port
        tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
        api = DaemonApi(project, metrics, listen=listen, tls=tls, insecure_listen=insecure_listen, logger=logger)
    elif tls_cert is not None or tls_key is not None or insecure_listen:
        raise UsageError("--tls-cert, --tls-key and --insecure-listen need --listen HOST:PORT")
    store = open_store(project)
    ended = DaemonService(project, store, logger=logger, metrics=metrics, grace=grace_period, api=api).run()
    if ended.threads_left:  # renders cut off after the grace: recorded, so leave without waiting for their threads
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(ended.code)
    store.close()
    if ended.code:
        raise typer.Exit(ended.code)
