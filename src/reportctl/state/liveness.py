"""Which process runs a run or sends a delivery (``host:pid``), and whether it is still alive on this host."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def worker_name() -> str:
    """This process as ``host:pid``, recorded on the runs it executes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_alive_here(worker: str | None) -> bool:
    """Whether ``worker`` (``host:pid``) is a process of this host that is still running.

    False for another host's worker (nothing can be asked of it here) and for a process that has exited or is a
    zombie waiting for its parent. A process owned by another user answers with PermissionError: it exists.
    """
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) <= 0:
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a killed child its parent has not waited for yet still answers signal 0
        status = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return status.rpartition(")")[2].split()[:1] != ["Z"]


__all__ = ["worker_alive_here", "worker_name"]
