"""Printing for the command line: one red line per error, JSON for machines, progress only on a terminal, and
text shaped for a terminal (times in a zone, shortened lines, aligned columns) that every command shares."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from reportctl.errors import ExitCode, ReportctlError


class State:
    """Options given before the command name, and how the running command reports errors."""

    debug = False
    json_errors = False
    printed_json = False  # a command's JSON document is out: an error after it must not add a second one


def errors_as_json() -> None:
    """For a command printing JSON (``--json``, ``--format json``): an error is also a JSON object on stdout.

    Machines reading stdout then get ``{"error": {"message", "exit_code", "problems"}}`` rather than nothing;
    the red line on stderr stays for people.
    """
    State.json_errors = True


def error_object(exc: ReportctlError) -> dict[str, object]:
    """An error as JSON: its message, exit code and each problem of a spec, secrets redacted."""
    from reportctl.secrets import redact

    problems = getattr(exc, "problems", None) or []
    return {
        "message": redact(str(exc)),
        "exit_code": int(exc.exit_code),
        "problems": [{**p.as_dict(), "message": redact(p.message)} for p in problems],
    }


def _print_error_object(message: str, exit_code: int, problems: list[dict[str, object]]) -> None:
    if State.json_errors and not State.printed_json:
        print_json({"error": {"message": message, "exit_code": exit_code, "problems": problems}})


def _color() -> bool:
    return "NO_COLOR" not in os.environ and sys.stderr.isatty()


def error(message: str) -> None:
    """Each line of ``message`` as an error line on stderr."""
    for line in message.splitlines() or [""]:
        if _color():
            typer.secho(f"error: {line}", err=True, fg="red")
        else:
            typer.echo(f"error: {line}", err=True)  # secho adds a reset code even without a colour


def echo(message: str = "") -> None:
    typer.echo(message)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))
    State.printed_json = True


def print_json_line(data: Any) -> None:
    """One JSON object on one line, for commands that print one per item (JSON Lines)."""
    typer.echo(json.dumps(data, default=str, separators=(",", ":")))
    State.printed_json = True


@contextmanager
def progress(enabled: bool) -> Iterator[Any]:
    """A status line on a terminal that the caller updates; nothing at all elsewhere."""
    if not (enabled and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"):
        yield lambda _message: None
        return
    from rich.console import Console

    console = Console(stderr=True, no_color="NO_COLOR" in os.environ)
    with console.status("starting") as status:
        yield status.update


def run_app(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run the typer app; a ``ReportctlError`` becomes its message and exit code, anything else a bug report."""
    State.debug = State.json_errors = State.printed_json = False
    try:
        code = app(args=args, standalone_mode=False, prog_name="reportctl")
    except ReportctlError as exc:
        if State.debug:
            traceback.print_exc()
        described = error_object(exc)
        error(str(described["message"]))
        if State.json_errors and not State.printed_json:
            print_json({"error": described})
        return int(exc.exit_code)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        error("aborted")
        return 130
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except Exception as exc:
        # click's usage errors (vendored inside typer in recent releases) know how to show themselves
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        message = f"internal error: {type(exc).__name__}: {exc}"
        if State.debug:
            traceback.print_exc()
        else:
            error(f"{message} (run with --debug for the traceback)")
        from reportctl.secrets import redact

        _print_error_object(redact(message), int(ExitCode.FAILED), [])
        return int(ExitCode.FAILED)
    return code if isinstance(code, int) else 0


# Text shaped for a terminal: a time in a zone, a line shortened to fit, columns aligned.

SHORT_WIDTH = 48


def local_time(moment: datetime | None, timezone: str | None = None, *, seconds: bool = True) -> str:
    """``moment`` in ``timezone`` (the project's; default this machine's) with the zone's abbreviation."""
    if moment is None:
        return "-"
    from zoneinfo import ZoneInfo

    shown = "%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z"
    return moment.astimezone(ZoneInfo(timezone) if timezone else None).strftime(shown)


def truncate(text: str | None, width: int = SHORT_WIDTH) -> str:
    """The first line of ``text``, shortened to ``width`` with '...' where it is longer."""
    line = (text or "").strip().splitlines()[0] if text and text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def aligned_columns(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> Iterator[str]:
    """Aligned columns; the last one (an error, a message) is shortened to the terminal width rather than wrapped."""
    import shutil

    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]
    room = max(shutil.get_terminal_size().columns - sum(widths[:-1]) - 2 * (len(headers) - 1), 12)
    widths[-1] = min(widths[-1], room)
    for row in [headers, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        yield "  ".join([*cells, truncate(row[-1], room)]).rstrip()


def as_typed(path: Path) -> Path:
    """``path`` relative to the working folder when it is inside it, as a person would type it; else as it is."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def moment_option(option: str, text: str, example: str = "7d") -> datetime:
    """``--since``/``--until``: an ISO time (in this machine's zone when it has no offset) or a duration meaning
    'that long ago'; a usage error naming the option otherwise."""
    from datetime import UTC

    from reportctl.errors import UsageError
    from reportctl.spec.types import parse_duration

    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option}: expected an ISO time such as 2026-11-28T09:00 or a duration such as {example}, got '{text}'"
        ) from None
    return moment if moment.tzinfo else moment.astimezone()
