"""``reportctl doctor``."""

from __future__ import annotations

from typing import Annotated

import typer

from reportctl.cli.output import echo, print_json
from reportctl.errors import ExitCode


def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check Python, plugins, fonts, the browser for charts and the project settings; say how to fix gaps."""
    from reportctl.doctor import run_checks

    checks = run_checks()
    if as_json:
        print_json([check.__dict__ for check in checks])
    else:
        for check in checks:
            mark = "ok" if check.ok else ("MISSING" if check.required else "warning")
            echo(f"{mark:8} {check.name:8} {check.detail}")
            if check.fix:
                echo(f"{'':17} fix: {check.fix}")
    if any(not check.ok and check.required for check in checks):
        raise typer.Exit(int(ExitCode.FAILED))
