"""reportctl: reports as code.

The public surface is small on purpose; everything else is private to the package. Names are imported on first
use, so ``import reportctl`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

__all__ = [
    "Document",
    "ExitCode",
    "LoadedSpec",
    "Project",
    "ReportctlError",
    "RunResult",
    "SpecError",
    "__version__",
    "find_project",
    "load_spec",
    "render_report",
]

_LOCATIONS = {
    "Document": "reportctl.document",
    "ExitCode": "reportctl.errors",
    "LoadedSpec": "reportctl.spec.loader",
    "Project": "reportctl.config",
    "ReportctlError": "reportctl.errors",
    "RunResult": "reportctl.run_record",
    "SpecError": "reportctl.errors",
    "find_project": "reportctl.config",
    "load_spec": "reportctl.spec.loader",
    "render_report": "reportctl.runner",
}

if TYPE_CHECKING:
    from reportctl.config import Project, find_project
    from reportctl.document import Document
    from reportctl.errors import ExitCode, ReportctlError, SpecError
    from reportctl.run_record import RunResult
    from reportctl.runner import render_report
    from reportctl.spec.loader import LoadedSpec, load_spec


def __getattr__(name: str) -> Any:
    if name in _LOCATIONS:
        import importlib

        return getattr(importlib.import_module(_LOCATIONS[name]), name)
    raise AttributeError(f"module 'reportctl' has no attribute {name!r}")
