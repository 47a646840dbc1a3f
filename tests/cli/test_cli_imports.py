"""`reportctl --help` stays fast: the command line imports no heavy library until a command needs it."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("polars", "pydantic", "sqlalchemy", "jinja2", "numpy", "requests", "yaml", "rich")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = f"import sys, reportctl.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""
