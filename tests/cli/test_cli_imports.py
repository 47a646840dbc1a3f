"""`reportctl --help` stays fast: the command line imports no heavy library until a command needs it."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("polars", "pydantic", "sqlalchemy", "jinja2", "numpy", "requests", "yaml", "rich")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = f"import sys, reportctl.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_command_modules_import_each_other_in_one_direction_only() -> None:
    """No import circle between command modules (lazy imports inside functions count too): a piece two commands
    need lives in a module below both."""
    import ast
    from pathlib import Path

    import reportctl.cli

    folder = Path(reportctl.cli.__file__).parent
    imports: dict[str, set[str]] = {}
    for module in folder.glob("*.py"):
        tree = ast.parse(module.read_text())
        found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imports[module.stem] = {
            name.removeprefix("reportctl.cli.") for name in found if name.startswith("reportctl.cli.")
        }
    circles = sorted((a, b) for a, used in imports.items() for b in used if a in imports.get(b, set()) and a < b)
    assert circles == []
