"""A `reportctl schedule daemon` run by a test as a real process, its JSON log lines read as they come."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any


class DaemonProcess:
    """One `reportctl schedule daemon` with its JSON log lines read by a thread, so a silent daemon never hangs."""

    def __init__(self, project: Path, *options: str) -> None:
        command = [sys.executable, "-m", "reportctl", "schedule", "daemon", "--log-format", "json", "--grace", "10s"]
        command += options
        self.process = subprocess.Popen(command, cwd=project, stderr=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        self.seen: list[dict[str, Any]] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, *events: str, timeout: float = 60) -> dict[str, Any]:
        """The next log record whose event is one of ``events``."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                self.seen.append({"event": "stderr", "message": line})
                continue
            self.seen.append(record)
            if record["event"] in events:
                return record
        raise AssertionError(f"daemon {self.pid}: no {' or '.join(events)} within {timeout:g}s; saw {self.seen}")

    def events(self, name: str) -> list[dict[str, Any]]:
        return [record for record in self.seen if record["event"] == name]

    def descendants(self) -> list[int]:
        """Its render worker processes (and theirs), found by parent pid, to stop them by pid after a SIGKILL."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(parent, []).append(int(entry.name))
        found, todo = [], [self.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found

    def stop(self) -> None:
        """Kill it by its pid if it still runs, and close its log once every line has been read."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        assert self.process.stderr is not None
        self.process.stderr.close()
