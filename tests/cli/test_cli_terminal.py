"""What a person sees on a real terminal (a pseudo-terminal here): colour only when NO_COLOR is not set."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest


def _stderr_on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> bytes:
    """The bytes ``reportctl ARGS`` writes to stderr when stderr is a terminal."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reportctl", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=follower,
            timeout=60,
            check=False,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal is closed once everything written has been read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert done.returncode == 1
    return b"".join(chunks)


@pytest.mark.parametrize(("no_color", "red"), [(True, False), (False, True)], ids=["NO_COLOR", "colour"])
def test_an_error_line_is_red_only_without_no_color(tmp_path: Path, no_color: bool, red: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm-256color"}
    if no_color:
        env["NO_COLOR"] = "1"

    written = _stderr_on_a_terminal(["render", "missing.yaml"], tmp_path, env)

    assert b"error: " in written
    assert (b"\x1b[" in written) is red  # not even a reset code at the end of the line under NO_COLOR
