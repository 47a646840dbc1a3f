"""The command line. The only code in reportctl that prints or exits.

Command modules import heavy libraries inside their functions so that ``reportctl --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from reportctl import __version__
from reportctl.cli import (
    audit,
    cache,
    deliver,
    diff,
    doctor,
    explain,
    history,
    project,
    render,
    replay,
    runs,
    schedule,
    secrets,
    validate,
    worker,
)
from reportctl.cli.output import State

app = typer.Typer(
    name="reportctl",
    help="Reports as code: render YAML report specs from live data to CSV, JSON and more.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reportctl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            envvar="REPORTCTL_ACTOR",
            help="Who is acting, for the audit log (default: the OS user).",
            show_envvar=True,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    State.debug = debug
    if actor is not None and actor.strip():
        # the environment carries it to the processes this one starts (render workers, batches)
        os.environ["REPORTCTL_ACTOR"] = actor.strip()


app.command("render")(render.render)
app.command("validate")(validate.validate)
app.command("schema")(project.schema)
app.command("init")(project.init)
app.command("list")(project.list_specs)
app.command("deliver")(deliver.deliver)
app.command("doctor")(doctor.doctor)
app.command("history")(history.history)
app.command("diff")(diff.diff)
app.command("replay")(replay.replay)
app.command("explain")(explain.explain)
app.command("worker")(worker.worker)
app.command("audit")(audit.audit)
app.add_typer(runs.app, name="runs")
app.add_typer(schedule.app, name="schedule")
app.add_typer(secrets.app, name="secrets")
app.add_typer(cache.app, name="cache")


def main() -> None:
    """Entry point of the ``reportctl`` console script."""
    from reportctl.cli.output import run_app

    _main_is_the_package()
    code = run_app(app)
    sys.stdout.flush()
    sys.stderr.flush()
    # Tearing down the interpreter frees every large frame one object at a time (0.1 s after a million rows);
    # all output is flushed and written, and reportctl registers no atexit handlers, so skip it.
    os._exit(code)


def _main_is_the_package() -> None:
    """Say that ``__main__`` is ``reportctl.__main__`` when the console script runs, as under ``python -m``.

    Worker processes (batches, the daemon, the xlsx and pdf writers) are spawned, and a spawned process first runs
    the parent's main module again unless it is some package's ``__main__``: for the console script that meant
    importing the whole command line (typer, every command) in every worker, for nothing."""
    import importlib.util

    script = sys.modules["__main__"]
    if getattr(script, "__spec__", None) is None:
        script.__spec__ = importlib.util.find_spec("reportctl.__main__")
