"""The daemon's runs in worker processes: each thread of a priority pool owns one process and renders through it.

PDF and Excel writers are pure Python and hold the GIL, so runs in threads take turns; and a thread cannot be
stopped, so a run past its timeout used to go on until its next state change. Here a run belongs to a process:
it opens its own connection to the state store, beats its own heartbeat, delivers, and when it passes its timeout
the daemon kills the process and its children (writer processes, the chart browser: one process group) and starts
a fresh one for the next run. Workers start on first use (spawned, not forked: no inherited threads or locks), stay
for the following runs, and are replaced after ``MAX_RUNS`` runs so memory a library keeps does not pile up.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportctl.errors import ReportctlError, exception_line

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from reportctl.config import Project
    from reportctl.state.store import StateStore

MAX_RUNS = 100
STOP_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class RenderedRun:
    """What the daemon needs of a run rendered in a worker (``TickOutcome`` takes its id and folder)."""

    run_id: str
    directory: Path
    sources: tuple[dict[str, Any], ...] = ()
    """How the run's cached sources were read (``RunResult.sources``), for the daemon's cache metrics."""
    warnings: tuple[dict[str, str], ...] = ()
    """The sections rendered as placeholders (``RunResult.warnings``): the run ends COMPLETED_WITH_WARNINGS."""


class WorkerLost(ReportctlError):
    """The worker process ended before it answered: killed (a timeout, shutdown) or crashed."""


class RenderWorkers:
    """A ``RenderFire`` that renders each run in the calling thread's worker process; ``stop`` kills one run's."""

    def __init__(self, project: Project, *, max_runs: int = MAX_RUNS) -> None:
        self.project, self.max_runs = project, max_runs
        self._local = threading.local()
        self._lock = threading.Lock()
        self._by_run: dict[str, _Worker] = {}
        self._workers: set[_Worker] = set()
        self._closed = False

    def __call__(
        self, store: StateStore, loaded: Any, run_id: str, *, parameters: dict[str, str], now: datetime
    ) -> RenderedRun:
        """Render ``loaded`` as run ``run_id`` in this thread's worker (what ``tick.render_fire`` does in-thread)."""
        worker = self._worker()
        with self._lock:
            self._by_run[run_id] = worker
        try:
            return worker.render(loaded, run_id, parameters, now)
        except WorkerLost as lost:
            fail_lost_run(store, loaded, run_id, str(lost), now)
            raise
        finally:
            with self._lock:
                self._by_run.pop(run_id, None)

    def stop(self, run_id: str) -> bool:
        """Kill the process rendering ``run_id`` (and its children); False when no worker here renders it."""
        with self._lock:
            worker = self._by_run.get(run_id)
        if worker is None:
            return False
        worker.kill()
        return True

    def pids(self) -> dict[str, int]:
        """The process id rendering each run, for logs and tests."""
        with self._lock:
            return {run_id: worker.pid for run_id, worker in self._by_run.items()}

    def close(self) -> None:
        """Kill every worker: runs still rendering after the shutdown grace have been recorded as cut off."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            worker.kill()

    def _worker(self) -> _Worker:
        worker: _Worker | None = getattr(self._local, "worker", None)
        if worker is not None and worker.usable(self.max_runs):
            return worker
        if worker is not None:
            worker.retire()
        with self._lock:
            if self._closed:
                raise WorkerLost("the daemon is stopping")
            worker = _Worker(self.project)
            self._workers = {w for w in self._workers if w.alive()} | {worker}
        self._local.worker = worker
        return worker


class _Worker:
    """One worker process and the pipe to it; used by one thread at a time."""

    def __init__(self, project: Project) -> None:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=serve, args=(theirs, project), name="reportctl-worker", daemon=True
        )
        self.process.start()
        theirs.close()
        self.connection: Connection = ours
        self.runs = 0
        self.killed = False

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def alive(self) -> bool:
        return not self.killed and self.process.is_alive()

    def usable(self, max_runs: int) -> bool:
        return self.alive() and self.runs < max_runs

    def render(self, loaded: Any, run_id: str, parameters: dict[str, str], now: datetime) -> RenderedRun:
        self.runs += 1
        try:
            self.connection.send((loaded, run_id, parameters, now))
            ok, value = self.connection.recv()
        except (EOFError, OSError):
            self.process.join(STOP_WAIT_SECONDS)
            how = "was stopped" if self.killed else f"ended unexpectedly (exit code {self.process.exitcode})"
            raise WorkerLost(f"worker process {self.pid} {how} while rendering run {run_id}") from None
        if ok:
            return RenderedRun(*value)
        raise value

    def kill(self) -> None:
        """SIGKILL the worker's process group: the worker, its writer processes, its chart browser."""
        self.killed = True
        if self.process.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.join(STOP_WAIT_SECONDS)
        self.connection.close()

    def retire(self) -> None:
        """Let an idle worker exit on its own (it sees the pipe close) and forget it."""
        self.connection.close()
        self.process.join(STOP_WAIT_SECONDS)
        if self.process.is_alive():
            self.kill()


def serve(connection: Connection, project: Project) -> None:
    """A worker's life: its own process group and store connection, then one run per message until the pipe
    closes. Errors go back to the daemon as they are (a ``SourceError`` is retried there)."""
    os.setpgrp()  # its children die with it when the daemon kills the group
    from reportctl.state import open_store
    from reportctl.state.recording import render_recorded

    with open_store(project) as store:
        while True:
            try:
                loaded, run_id, parameters, now = connection.recv()
            except (EOFError, OSError):
                return  # the daemon closed the pipe or is gone
            try:
                result = render_recorded(store, loaded, run_id, deliver=True, parameters=parameters, now=now)
                answer: tuple[bool, Any] = (
                    True,
                    (result.run_id, result.directory, tuple(result.sources), tuple(result.warnings)),
                )
            except ReportctlError as exc:
                answer = (False, exc)
            except Exception as exc:  # a bug in one report must not end the worker silently
                answer = (False, ReportctlError(f"internal error: {exception_line(exc)}"))
            try:
                connection.send(answer)
            except (BrokenPipeError, OSError):
                return


def fail_lost_run(store: StateStore, loaded: Any, run_id: str, error: str, now: datetime) -> None:
    """A run that ended without recording its end (its worker lost, killed at its timeout, or broken by a bug):
    recorded FAILED if nobody has done so, its ``when: failure`` deliveries sent as its worker would have, and the
    report's history tidied."""
    from reportctl.state.lifecycle import RunState
    from reportctl.state.recording import housekeeping, send_failure_deliveries

    with contextlib.suppress(ReportctlError):
        record = store.get_run(run_id)
        if not record.state.terminal:
            record = store.transition(run_id, RunState.FAILED, error=error)
        if record.state == RunState.FAILED:
            send_failure_deliveries(store, loaded, record, record.error or error, now)
        housekeeping(store, loaded.project, loaded.spec.name, loaded.spec.retention)


__all__ = ["MAX_RUNS", "RenderWorkers", "RenderedRun", "WorkerLost", "fail_lost_run", "serve"]
