"""The schedule daemon with 5,000 scheduled specs: start time, resident memory, scheduler overhead per fire.

In-process, as the daemon's core:

- start: ``Daemon.start`` (read every spec, one APScheduler job each, in a paused BackgroundScheduler) until
  "scheduled N jobs", in a child process whose peak RSS (``ru_maxrss``) is the memory figure;
- overhead per fire: ``Daemon.dispatch_due`` at a minute when every spec is due, rendering stubbed out by a no-op
  callable, so what is timed is the dispatch path: due fires, loading the spec, the claim in a SQLite store.
  Specs fire ``*/5 * * * *`` with ``jitter: 5m``.

As a whole process (``reportctl schedule daemon``, nothing stubbed): 5,000 specs of which ``--firing`` (200) fire
every minute and render a small CSV in the daemon's worker processes. The daemon's own CPU time (its threads, not
its workers: ``/proc/PID/stat``) from before a minute's fires until every run has completed, less what it spends
idle over as long (measured before the fires: it polls the spec files every 2 s), divided by the fires.

Targets (issues 4 and 11): start under 10 s, under 300 MB, under 5 ms per fire. Prints a table with PASS/FAIL and
exits 0.

    .venv/bin/python benchmarks/bench_daemon.py [--specs 5000] [--firing 200] [--no-whole] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

SPEC = """\
apiVersion: reportctl/v1
name: report-{i:05d}
sources:
  metrics: {{kind: sample, rows: 20}}
sections:
  - {{id: t, type: table, dataset: metrics}}
outputs: [csv]
schedule: {{cron: "*/5 * * * *", timezone: {zone}, jitter: 5m, priority: {priority}, misfire_grace: 1h}}
"""
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def write_project(root: Path, count: int) -> None:
    (root / "reportctl.yaml").write_text(f"timezone: UTC\nstate: {{url: 'sqlite:///{root / 'state.db'}'}}\n")
    specs = root / "specs"
    specs.mkdir()
    for i in range(count):
        priority = "critical" if i % 10 == 0 else "standard"
        (specs / f"report-{i:05d}.yaml").write_text(SPEC.format(i=i, zone=ZONES[i % len(ZONES)], priority=priority))


def noop_render(store: Any, loaded: Any, run_id: str, *, parameters: dict[str, str], now: datetime) -> Any:
    """Rendering stubbed out: the benchmark times the scheduler, not the report."""
    return SimpleNamespace(run_id=run_id, directory=Path())


def child(root: Path) -> None:
    """Start the daemon core on APScheduler (paused, so nothing renders), then dispatch one due minute."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    from reportctl.config import find_project
    from reportctl.schedule.daemon import DAEMON_TICK, Daemon
    from reportctl.schedule.daemon_service import POOL_SIZES, ApschedulerJobs
    from reportctl.state import open_store

    began = time.perf_counter()
    project = find_project(root)
    store = open_store(project)
    executors = {name: ThreadPoolExecutor(size) for name, size in POOL_SIZES.items()}
    scheduler = BackgroundScheduler(executors=executors, timezone=UTC)
    store.set_last_tick(DAEMON_TICK, START)  # a daemon that ran until 09:00: no catch-up at its start
    clock = [START]
    daemon = Daemon(project, store, clock=lambda: clock[0], render=noop_render, sleep=lambda _s: None)
    daemon.jobs = ApschedulerJobs(scheduler, daemon.dispatch_spec)
    daemon.start(START)
    scheduler.start(paused=True)
    jobs = len(scheduler.get_jobs())
    start_seconds = time.perf_counter() - began
    # every fire scheduled 09:00 is planned within 5 minutes: at 09:05 all are due, each runs once
    clock[0] = START + timedelta(minutes=5)
    began = time.perf_counter()
    outcomes = daemon.dispatch_due(clock[0])
    dispatch_seconds = time.perf_counter() - began
    scheduler.shutdown(wait=False)
    store.close()
    ran = sum(1 for outcome in outcomes if outcome.state == "COMPLETED")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"jobs": jobs, "start": start_seconds, "fires": ran, "dispatch": dispatch_seconds, "rss": rss}))


def write_whole_project(root: Path, count: int, firing: int) -> None:
    """``count`` specs; the first ``firing`` fire every minute, the rest on the first of January."""
    (root / "reportctl.yaml").write_text("timezone: UTC\n")
    specs = root / "specs"
    specs.mkdir()
    for i in range(count):
        cron = "* * * * *" if i < firing else "0 3 1 1 *"
        text = SPEC.format(i=i, zone="UTC", priority="critical" if i % 10 == 0 else "standard")
        text = text.replace('"*/5 * * * *"', f'"{cron}"').replace("jitter: 5m", "jitter: 0s")
        (specs / f"report-{i:05d}.yaml").write_text(text)


def cpu_seconds(pid: int) -> float:
    """User and system CPU of process ``pid``'s own threads (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def whole_process(count: int, firing: int) -> dict[str, float]:
    """Run ``reportctl schedule daemon`` until one minute's ``firing`` fires have completed; its CPU per fire."""
    reportctl = Path(sys.executable).with_name("reportctl")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_whole_project(root, count, firing)
        command = [str(reportctl), "schedule", "daemon", "--log-format", "json", "--grace", "30s"]
        daemon = subprocess.Popen(command, cwd=root, stderr=subprocess.PIPE, text=True)
        try:
            return _measure(daemon, firing)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def _measure(daemon: subprocess.Popen[str], firing: int) -> dict[str, float]:
    assert daemon.stderr is not None
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read() -> None:
        for line in daemon.stderr:  # type: ignore[union-attr]
            if line.startswith("{"):
                lines.put(json.loads(line))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    began = time.perf_counter()
    _wait_for(lines, lambda r: r["event"] == "daemon.started", 120)
    start = time.perf_counter() - began
    # a first start runs the latest fire within the grace at once (and, if the start spans a minute, records the
    # fire before it as coalesced): let all that finish, then measure one minute's fires on a quiet daemon
    _quiet(lines, 3)
    if time.time() % 60 > 48:  # too little idle time left in this minute: let the next one's fires pass first
        _wait_until_seconds(1)
        _quiet(lines, 3)
    idle_from, idle_cpu = time.perf_counter(), cpu_seconds(daemon.pid)
    _wait_until_seconds(59.5)
    idle_rate = (cpu_seconds(daemon.pid) - idle_cpu) / (time.perf_counter() - idle_from)
    minute = datetime.fromtimestamp(time.time() // 60 * 60 + 60, UTC).isoformat()
    busy_from, busy_cpu = time.perf_counter(), cpu_seconds(daemon.pid)
    states = _runs_end(lines, firing, minute)
    busy = time.perf_counter() - busy_from
    cpu = cpu_seconds(daemon.pid) - busy_cpu
    if states.get("run.completed", 0) != firing:
        raise SystemExit(f"bench_daemon: expected {firing} completed runs, got {states}")
    return {
        "whole_start": start, "whole_fires": firing, "whole_seconds": busy, "whole_cpu": cpu,
        "whole_idle_rate": idle_rate, "whole_per_fire_ms": 1000 * max(cpu - idle_rate * busy, 0) / firing,
    }  # fmt: skip


def _quiet(lines: queue.Queue[dict[str, Any] | None], seconds: float) -> None:
    """Wait until the daemon has logged no run event for ``seconds``."""
    while _next_record(lines, seconds) is not None:
        pass


def _runs_end(lines: queue.Queue[dict[str, Any] | None], count: int, scheduled: str) -> dict[str, int]:
    """Wait for ``count`` runs of the fires scheduled at ``scheduled`` to end; how many ended in each way."""
    states: dict[str, int] = {}
    ending = ("run.completed", "run.failed", "run.skipped")
    for _ in range(count):
        record = _wait_for(lines, lambda r: r["event"] in ending and r.get("scheduled") == scheduled, 300)
        states[record["event"]] = states.get(record["event"], 0) + 1
        if record["event"] != "run.completed":
            print(f"bench_daemon: {record['report']} {record['event']}: {record['message']}", file=sys.stderr)
    return states


def _wait_for(lines: queue.Queue[dict[str, Any] | None], match: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        record = _next_record(lines, left)
        if record is None:
            break
        if match(record):
            return record
    raise SystemExit(f"bench_daemon: nothing matched within {timeout:g} s")


def _next_record(lines: queue.Queue[dict[str, Any] | None], timeout: float) -> dict[str, Any] | None:
    """The daemon's next log record within ``timeout`` s, or None; ends the benchmark if the daemon has exited."""
    try:
        record = lines.get(timeout=timeout)
    except queue.Empty:
        return None
    if record is None:
        raise SystemExit("bench_daemon: the daemon exited")
    return record


def _wait_until_seconds(second: float) -> None:
    """Sleep until the wall clock's seconds reach ``second`` in the current (or, if past, the next) minute."""
    now = time.time()
    target = now - now % 60 + second
    time.sleep((target if target > now else target + 60) - now)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=5000)
    parser.add_argument("--firing", type=int, default=200, help="specs that fire each minute in the whole process")
    parser.add_argument("--no-whole", action="store_true", help="skip the whole-process measurement (about 90 s)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_project(root, args.specs)
        # the daemon's start in a fresh interpreter: its peak RSS is the daemon's, not this script's
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(root)], capture_output=True, text=True, check=True
        ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    per_fire_ms = 1000 * figures["dispatch"] / max(figures["fires"], 1)
    rows = [
        ("start to 'scheduled N jobs'", f"{figures['start']:.2f} s", "< 10 s", figures["start"] < 10),
        ("resident memory (peak)", f"{figures['rss']:.0f} MiB", "< 300 MB", figures["rss"] * 1.048576 < 300),
        ("overhead per fire (in-process)", f"{per_fire_ms:.2f} ms", "< 5 ms", per_fire_ms < 5),
    ]
    if not args.no_whole:
        figures |= whole_process(args.specs, args.firing)
        whole = figures["whole_per_fire_ms"]
        rows += [
            ("whole process: start", f"{figures['whole_start']:.2f} s", "< 10 s", figures["whole_start"] < 10),
            ("whole process: CPU per fire", f"{whole:.2f} ms", "< 5 ms", whole < 5),
        ]
    if args.json:
        print(json.dumps({**figures, "per_fire_ms": per_fire_ms, "pass": all(row[3] for row in rows)}))
        return 0
    print(f"daemon with {figures['jobs']} scheduled specs ({figures['fires']} fires dispatched at one minute)")
    if not args.no_whole:
        print(
            f"whole process: {figures['whole_fires']} fires rendered in {figures['whole_seconds']:.1f} s, daemon CPU "
            f"{figures['whole_cpu']:.2f} s, idle {1000 * figures['whole_idle_rate']:.0f} ms/s"
        )
    print(f"{'figure':<30}{'value':>12}  {'target':<10}result")
    for name, value, target, passed in rows:
        print(f"{name:<30}{value:>12}  {target:<10}{'PASS' if passed else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
