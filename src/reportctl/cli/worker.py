"""``reportctl worker``: a Celery worker that renders and delivers the runs daemons queue (``executor: celery``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from reportctl.config import Priority

PRIORITIES: tuple[Priority, ...] = ("critical", "standard")


def worker(
    queues: Annotated[
        str,
        typer.Option("--queues", "-Q", help="The priorities whose runs this worker takes, comma-separated."),
    ] = "critical,standard",
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="Runs rendered at once, each in a process (default: CPUs)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="The worker's name in runs and logs (default reportctl@HOST)."),
    ] = None,
) -> None:
    """Render and deliver queued runs until stopped (SIGTERM lets the runs at hand finish first).

    Needs executor: {kind: celery, broker: redis://...} in reportctl.yaml and the state store the daemons use
    (PostgreSQL when workers run on other machines). Each worker renders specs from its own checkout of the
    project, which must hold the revision each run recorded.
    """
    from reportctl.batch import default_jobs
    from reportctl.config import find_project
    from reportctl.errors import UsageError
    from reportctl.schedule.celery_executor import celery_app, celery_settings, worker_argv

    wanted = [part.strip() for part in queues.split(",") if part.strip()]
    unknown = [part for part in wanted if part not in PRIORITIES]
    if unknown or not wanted:
        raise UsageError(f"--queues: expected critical, standard or both (comma-separated), not '{queues}'")
    project = find_project()
    settings = celery_settings(project)
    app = celery_app(project)
    chosen = [settings.queues[priority] for priority in PRIORITIES if priority in wanted]
    app.worker_main(worker_argv(chosen, concurrency or default_jobs(), name))
