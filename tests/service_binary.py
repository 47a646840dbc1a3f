"""A server binary a test starts itself (Prometheus, Alertmanager): run, waited for, and stopped by its process id.

    with running_binary([PROMETHEUS, ...], "prometheus", ready=lambda: ...) as process:
        ...

``ready`` is polled (bounded) until it returns true; a process that exits meanwhile fails the test with the end of
its output. A binary that is not installed skips the test, or fails it under REPORTCTL_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

STARTUP_SECONDS = 30.0


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail when REPORTCTL_REQUIRE_SERVICES=1 (the pattern of tests/conftest.py's require_service)."""
    if os.environ.get("REPORTCTL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and REPORTCTL_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason)


@contextmanager
def running_binary(
    argv: Sequence[str | Path], name: str, ready: Callable[[], bool], *, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` running until the block ends, entered once ``ready()`` holds (within ``STARTUP_SECONDS``)."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(part) for part in argv], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
        )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while not ready():
                if process.poll() is not None:
                    log.seek(0)
                    output = log.read().decode(errors="replace").strip()
                    pytest.fail(f"{name} exited with {process.returncode} on start: {output[-800:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} was not ready within {STARTUP_SECONDS:g}s")
                time.sleep(0.1)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
