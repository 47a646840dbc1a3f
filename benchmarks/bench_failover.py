"""Failover of the schedule daemon: how long a minute's fire waits when the leading daemon is killed just before it
(issue 12).

Two real ``reportctl schedule daemon --log-format json`` processes on one project, whose state store is the
machine's PostgreSQL (127.0.0.1:5432, database ``test``) in a schema made for the run and dropped at its end, with
``state: {scheduler_lease: LEASE}`` (``--lease``, default 15s, the product default) and one spec fired every minute
(``cron: "* * * * *"``, a 20-row sample source to csv). The first daemon leads, the second stands by. Once the leader
has fired one minute on its own, each round:

1. waits until ``--before`` seconds (3) before the next minute, then kills the leader with SIGKILL by its pid (and
   its render workers, as a crashed machine would lose them), so that minute's fire falls while nobody leads;
2. reads from the standby's log when it took over (``daemon.took_over``) and waits for the minute's run to end
   (``run.completed`` with that ``scheduled`` time);
3. reads the run from the store: claimed (``created_at``) and started (``started_at``, set by the render worker as
   the run enters GENERATING), and checks that the minute has exactly one scheduled run, the new leader's, COMPLETED;
4. starts a fresh daemon, waits until it stands by: the next round kills the new leader.

Figures per round: kill -> took over (bounded by the lease: the standby tries as the lease it saw expires), fire ->
start (the minute's scheduled time to its run's start: the fire-to-start latency during failover), kill -> start. The
minutes fired by a live leader give fire -> start without failover, for comparison. At the end every minute from
the first fire to the last must be recorded once (COMPLETED or SKIPPED), none twice and none missing.

No timing target: prints the rounds, min / median / max, PASS/FAIL for "each fire recorded once" and for "took over
within the lease" (what ``state.scheduler_lease``'s description promises; give or take ``TAKEOVER_SLACK`` for the
try itself and the log line), and exits 0. Exits 2 when PostgreSQL is
not reachable, a daemon does not start, lead or take over, or a failover minute's run does not complete (then the
figures would mean nothing). About a minute a round plus a minute to start; every process it starts is stopped by
its pid, also on error.

    .venv/bin/python benchmarks/bench_failover.py [--rounds 3] [--lease 15s] [--before 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from childproc import result_header, spread, store_schema

if TYPE_CHECKING:
    from reportctl.state import StateStore
    from reportctl.state.models import RunRecord

REPORTCTL = Path(sys.executable).with_name("reportctl")
REPORT = "minutely"
SPEC = """\
apiVersion: reportctl/v1
name: minutely
sources:
  metrics: {kind: sample, rows: 20}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "* * * * *", timezone: UTC, misfire_grace: 1h, overlap: skip}
"""
START_TIMEOUT = 120.0
"""Seconds a daemon may take to start and lead or stand by (two cores, shared with other work)."""
RUN_TIMEOUT = 120.0
ENDINGS = ("run.completed", "run.failed", "run.skipped", "fire.claimed_elsewhere", "fire.refused", "fire.lost")

TAKEOVER_SLACK = 0.25
"""Seconds beyond the lease a takeover may take: the standby's try itself, by the store's clock, and its log line."""


class FailoverFailed(Exception):
    """A daemon did not start, lead, take over or complete the minute's run: the figures would mean nothing."""


class DaemonProcess:
    """``reportctl schedule daemon`` in the project, its JSON log lines read by a thread as they come."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        command = [str(REPORTCTL), "schedule", "daemon", "--log-format", "json", "--grace", "10s"]
        self.process = subprocess.Popen(command, cwd=root, env=env, stderr=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        self.seen: list[dict[str, Any]] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stderr is not None
        threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, *events: str, timeout: float, scheduled: datetime | None = None) -> dict[str, Any]:
        """The next log record whose event is one of ``events`` (and, if given, whose fire is ``scheduled``)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise FailoverFailed(f"daemon {self.pid} exited {self.process.wait()}: {self._tail()}")
            record: dict[str, Any]
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = {"event": "stderr", "message": line.strip()}
            self.seen.append(record)
            if record["event"] in events and (scheduled is None or _at(record.get("scheduled")) == scheduled):
                return record
        wanted = " or ".join(events) + (f" of the fire at {scheduled:%H:%M}" if scheduled else "")
        raise FailoverFailed(f"daemon {self.pid}: no {wanted} within {timeout:g} s; last: {self._tail()}")

    def _tail(self) -> str:
        return " / ".join(f"{r['event']}: {r.get('message', '')}" for r in self.seen[-4:])

    def descendants(self) -> list[int]:
        """Its render worker processes (and theirs), by parent pid, so they can be stopped by pid after it dies."""
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

    def kill(self) -> datetime:
        """SIGKILL it and its workers by pid; the moment just before the signal."""
        orphans = self.descendants()
        killed = datetime.now(UTC)
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        _kill_pids(orphans)
        return killed

    def stop(self) -> None:
        """SIGTERM by pid (the lease is released, the workers stopped), SIGKILL if it has not ended in 30 s; then
        any worker left, by pid."""
        if self.process.poll() is None:
            orphans = self.descendants()
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
            _kill_pids(orphans)
        assert self.process.stderr is not None
        self.process.stderr.close()


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class Round:
    """One failover: the minute whose fire fell in the gap, when the leader died, and when its run was claimed and
    started by the new leader."""

    minute: datetime
    killed: datetime
    took_over: datetime
    claimed: datetime
    started: datetime
    run_id: str
    recorded: int
    """Scheduled runs of that minute in the store: 1 when the fire was neither lost nor doubled."""

    @property
    def to_take_over(self) -> float:
        return (self.took_over - self.killed).total_seconds()

    @property
    def fire_to_start(self) -> float:
        return (self.started - self.minute).total_seconds()

    @property
    def kill_to_start(self) -> float:
        return (self.started - self.killed).total_seconds()

    @property
    def in_gap(self) -> bool:
        """Whether the fire's time fell while nobody led (else the standby took over first and fired on time)."""
        return self.took_over > self.minute

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO-8601 UTC."""
        fields = asdict(self)
        times = {key: value.isoformat() for key, value in fields.items() if isinstance(value, datetime)}
        return {**fields, **times, "in_gap": self.in_gap}


@dataclass
class Result:
    """The rounds, and what the store's record of every minute says."""

    rounds: list[Round]
    steady: list[float]
    """Fire -> start of the minutes fired by a live leader (not the first daemon's catch-up at its start)."""
    problems: list[str]
    """Minutes recorded twice or not at all, runs not COMPLETED: empty when every fire was recorded once."""


def _next_minute(before: float) -> datetime:
    """The next minute boundary at least ``before`` + 1 s from now: there is time to kill the leader before it."""
    now = time.time()
    return datetime.fromtimestamp((now + before + 1) // 60 * 60 + 60, UTC)


def _sleep_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 0.5))


def _scheduled_runs(store: StateStore) -> list[RunRecord]:
    return [run for run in store.list_runs(report=REPORT, limit=10_000) if run.trigger == "schedule"]


def failover(store: StateStore, leader: DaemonProcess, standby: DaemonProcess, args: argparse.Namespace) -> Round:
    """Kill ``leader`` ``args.before`` seconds before the next minute; the standby's takeover and that minute's run."""
    minute = _next_minute(args.before)
    _sleep_until(minute.timestamp() - args.before)
    killed = leader.kill()
    took_over = standby.wait_for("daemon.took_over", timeout=2 * args.lease.total_seconds() + 30)
    ended = standby.wait_for(*ENDINGS, timeout=RUN_TIMEOUT, scheduled=minute)
    if ended["event"] != "run.completed":
        raise FailoverFailed(f"the fire at {minute:%H:%M:%S} ended {ended['event']}: {ended.get('message')}")
    runs = [run for run in _scheduled_runs(store) if run.scheduled_for and _utc(run.scheduled_for) == minute]
    mine = next((run for run in runs if run.id == ended["run_id"]), None)
    if mine is None or mine.started_at is None:
        raise FailoverFailed(f"run {ended['run_id']} of the fire at {minute:%H:%M:%S} is not in the store as started")
    return Round(
        minute=minute, killed=killed, took_over=_at(took_over["time"]) or killed, claimed=_utc(mine.created_at),
        started=_utc(mine.started_at), run_id=mine.id, recorded=len(runs),
    )  # fmt: skip


def check_history(store: StateStore, rounds: list[Round]) -> tuple[list[float], list[str]]:
    """Fire -> start of the minutes a live leader fired, and what is wrong with the record of every minute: each
    between the first fire and the last recorded once, COMPLETED (or SKIPPED by the overlap rule)."""
    from reportctl.state import RunState

    runs = sorted(_scheduled_runs(store), key=lambda run: run.scheduled_for or run.created_at)
    minutes = [_utc(run.scheduled_for) for run in runs if run.scheduled_for is not None]
    problems = (
        [f"{len(runs) - len(minutes)} scheduled runs without a scheduled minute"] if len(minutes) < len(runs) else []
    )
    for minute in sorted(set(minutes)):
        if (count := minutes.count(minute)) != 1:
            problems.append(f"the fire at {minute:%H:%M} is recorded {count} times")
    span = int((minutes[-1] - minutes[0]).total_seconds() // 60) + 1 if minutes else 0
    missing = sorted({minutes[0] + timedelta(minutes=n) for n in range(span)} - set(minutes))
    problems += [f"the fire at {minute:%H:%M} is not recorded" for minute in missing]
    problems += [
        f"run {run.id} of {run.scheduled_for:%H:%M} is {run.state.value}: {run.error or ''}"
        for run in runs
        if run.state not in (RunState.COMPLETED, RunState.SKIPPED)
    ]
    failovers = {r.minute for r in rounds}
    steady = [
        (_utc(run.started_at) - _utc(run.scheduled_for)).total_seconds()
        for run in runs[1:]  # the first is the first daemon's catch-up at its start, long after its minute
        if run.scheduled_for and run.started_at and _utc(run.scheduled_for) not in failovers
    ]
    return steady, problems


def measure(args: argparse.Namespace, show: Callable[[Round], None]) -> Result:
    """Every round (each shown as it ends), in a project and store schema made for this run; every daemon stopped
    by its pid at the end, also on error."""
    from reportctl.spec.types import format_duration_spec
    from reportctl.state import StateStore

    daemons: list[DaemonProcess] = []
    with (
        store_schema("bench_failover") as url,
        tempfile.TemporaryDirectory(prefix="reportctl-bench-failover-") as folder,
    ):
        root = Path(folder)
        lease = format_duration_spec(args.lease)
        (root / "reportctl.yaml").write_text(f"timezone: UTC\nstate: {{scheduler_lease: {lease}}}\n")
        (root / "specs").mkdir()
        (root / "specs" / f"{REPORT}.yaml").write_text(SPEC)
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", "REPORTCTL_STATE_URL": url}
        try:
            leader = DaemonProcess(root, env)
            daemons.append(leader)
            leader.wait_for("daemon.leading", timeout=START_TIMEOUT)
            # its catch-up run at start, then one minute fired as usual, so the worker is warm and steady is measured
            leader.wait_for("run.completed", timeout=RUN_TIMEOUT)
            leader.wait_for("run.completed", timeout=RUN_TIMEOUT + 60)
            rounds = []
            with StateStore(url) as store:
                for _ in range(args.rounds):
                    standby = DaemonProcess(root, env)
                    daemons.append(standby)
                    standby.wait_for("daemon.standby", timeout=START_TIMEOUT)
                    rounds.append(failover(store, leader, standby, args))
                    show(rounds[-1])
                    leader = standby
                steady, problems = check_history(store, rounds)
        finally:
            for daemon in daemons:
                daemon.stop()
    return Result(rounds, steady, problems)


HEADER = (
    f"{'fire':<5} {'kill':>8} {'took over':>9} {'claimed':>8} {'started':>8}  {'kill->took over':>15} "
    f"{'fire->start':>11} {'kill->start':>11}  {'in gap':<6} runs"
)


def show_round(r: Round) -> None:
    """One line per round: the times (UTC, to the second) and the three figures; whether the fire fell while nobody
    led; how many scheduled runs the store has of that minute."""
    print(
        f"{r.minute:%H:%M} {r.killed:%H:%M:%S} {r.took_over:%H:%M:%S}  {r.claimed:%H:%M:%S} {r.started:%H:%M:%S}  "
        f"{r.to_take_over:>14.2f}s {r.fire_to_start:>10.2f}s {r.kill_to_start:>10.2f}s  "
        f"{'yes' if r.in_gap else 'no':<6} {r.recorded}",
        flush=True,
    )


def _duration(text: str) -> timedelta:
    from reportctl.spec.types import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < timedelta(seconds=3):
        raise argparse.ArgumentTypeError(f"the scheduler lease must be at least 3s, not '{text}'")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="leaders killed, one a minute (default 3)")
    parser.add_argument(
        "--lease", type=_duration, default="15s", help="state.scheduler_lease, at least 3s (default 15s)"
    )
    parser.add_argument(
        "--before", type=float, default=3.0, help="seconds before a minute's fire the leader is killed (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if not 0 < args.before <= 30:
        parser.error(f"--before must be more than 0 and at most 30 seconds, not {args.before:g}")
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError as exc:
        print(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    if not args.json:
        print(f"lease {args.lease.total_seconds():g} s, the leader killed {args.before:g} s before a minute's fire")
        print(HEADER, flush=True)
    try:
        result = measure(args, (lambda _round: None) if args.json else show_round)
    except FailoverFailed as exc:
        print(exc, file=sys.stderr)
        return 2
    report(args, result, time.perf_counter() - began)
    return 0


def report(args: argparse.Namespace, result: Result, wall: float) -> None:
    """min / median / max of the three figures, and the verdicts."""
    rounds, lease = result.rounds, args.lease.total_seconds()
    figures = {
        "kill_to_took_over": [r.to_take_over for r in rounds],
        "fire_to_start": [r.fire_to_start for r in rounds],
        "kill_to_start": [r.kill_to_start for r in rounds],
    }
    once = not result.problems and all(r.recorded == 1 for r in rounds)
    within = max(figures["kill_to_took_over"]) <= lease + TAKEOVER_SLACK
    if args.json:
        print(
            json.dumps(
                {
                    **result_header("bench_failover"),
                    "lease_seconds": lease,
                    "before_seconds": args.before,
                    "wall_seconds": round(wall, 1),
                    "figures": {key: [round(v, 3) for v in spread(values)] for key, values in figures.items()},
                    "steady_fire_to_start": [round(v, 3) for v in result.steady],
                    "rounds": [r.as_dict() for r in rounds],
                    "problems": result.problems,
                    "recorded_once": once,
                    "took_over_within_lease": within,
                },
                indent=2,
            )
        )
        return
    print(f"{len(rounds)} rounds, seconds:")
    print(f"{'':<26} {'min':>7} {'median':>7} {'max':>7}")
    names = {
        "kill_to_took_over": "kill -> took over",
        "fire_to_start": "fire -> start (failover)",
        "kill_to_start": "kill -> run started",
    }
    for key, values in figures.items():
        low, middle, high = spread(values)
        print(f"{names[key]:<26} {low:>7.2f} {middle:>7.2f} {high:>7.2f}")
    if result.steady:
        low, middle, high = spread(result.steady)
        count = len(result.steady)
        print(f"{'fire -> start (no failover)':<27}{low:>7.2f} {middle:>7.2f} {high:>7.2f}  (fires: {count})")
    gap = sum(r.in_gap for r in rounds)
    print(f"the fire fell while nobody led in {gap} of {len(rounds)} rounds; wall {wall:.0f} s")
    single = sum(r.recorded == 1 for r in rounds)
    print(
        f"{'PASS' if once else 'FAIL'} every fire recorded exactly once: each failover minute's by the new leader "
        f"({single} of {len(rounds)}), and every minute from the first fire to the last"
        + "".join(f"; {problem}" for problem in result.problems)
    )
    print(
        f"{'PASS' if within else 'FAIL'} took over within the lease ({lease:g} s, +{TAKEOVER_SLACK:g} s) of the kill: "
        f"at most {max(figures['kill_to_took_over']):.2f} s"
    )


if __name__ == "__main__":
    raise SystemExit(main())
