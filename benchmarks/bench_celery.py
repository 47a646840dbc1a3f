"""Scheduled runs on Celery workers against ``executor: local``: runs per minute and latency from fire to start
with 1, 2 and 4 worker processes on this machine (issue 12).

The reports are ``--reports`` (60) scheduled specs of a ``sample`` source (5,000 rows, a seed each) grouped by
service and hour, with a table and outputs csv and json, each ``cron: "0 * * * *"``: a tick at five past an hour
finds every one of them due at once. The state store is the machine's PostgreSQL (127.0.0.1:5432, database
``test``) in a schema made for the run and dropped at its end; the broker is the machine's Redis (127.0.0.1:6379),
on queues named for the run, so no other run's messages mix in. Every tick is at an hour of its own, later than
the one before, so its fires are new.

For each number of processes N (``--workers``), one round after another, the two cases in alternating order:

- celery: ``reportctl schedule tick --now T`` in the project with ``executor: celery`` claims every fire and queues
  its run; ``reportctl worker --concurrency N``, started once for this N and waited for until it answers a ping,
  renders them. Timed from just before the tick to the end of the last run (its ``finished_at`` in the store,
  polled until every run has ended). The worker's first tick is left out of the comparison and printed apart
  ("celery first"): each pool process imports the render stack on its first run, as it does once after a worker
  starts (and again when it is replaced, every 100 runs: within the rounds at N=1).
- local: ``reportctl schedule tick --now T --jobs N`` with ``executor: local`` renders the fires itself (in its
  own process for N=1, in N spawned processes otherwise), timed as a whole process. The worker stays up, idle.

Runs per minute = reports / that time. Fire to start = each run's ``started_at`` less the moment just before the
tick was started (the fire, as cron or a daemon would make it); a run's ``created_at`` is the tick's ``--now``, a
pretended time, so it cannot serve. It counts the tick's own start, the claim and the wait behind the other runs
of the tick (for celery, in the queue). Every run must be COMPLETED.

Not measured here: failover time from killing the leading daemon to the next fire (the issue's third figure:
``benchmarks/bench_failover.py``). No target: prints figures and the ratio celery/local and exits 0; exits 2 when
a tick or a run fails or PostgreSQL or Redis is not reachable. About 2 minutes with the defaults on 2 cores.

    .venv/bin/python benchmarks/bench_celery.py [--reports 60] [--workers 1,2,4] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from childproc import result_header, spread, store_schema

if TYPE_CHECKING:
    from reportctl.state import StateStore

REPORTCTL = Path(sys.executable).with_name("reportctl")
REDIS_URL = "redis://127.0.0.1:6379/0"
FIRST_TICK = datetime(2026, 11, 30, 0, 5, tzinfo=UTC)
"""Ticks are at five past consecutive hours from here: each finds the top of its hour due."""
RUN_TIMEOUT = 300.0
SPEC = """\
apiVersion: reportctl/v1
name: r{number:03d}
title: Report {number}
sources:
  s: {{kind: sample, rows: 5000, seed: {number}}}
datasets:
  hourly:
    from: s
    group_by: [service]
    every: 1h
    aggregate: {{requests: count(), p95_latency: p95(latency_ms), errors: mean(error_rate)}}
sections:
  - {{id: t, type: table, dataset: hourly}}
outputs: [csv, json]
schedule: {{cron: "0 * * * *", timezone: UTC, misfire_grace: 2h}}
"""


class RunFailed(Exception):
    """A tick, a worker or a run did not do its work, so the figures would mean nothing."""


@dataclass
class Bench:
    """The project, its store and broker queues, and the clock of pretended hours every tick moves forward."""

    root: Path
    prefix: str
    reports: int
    env: dict[str, str]
    ticks: int = 0

    def use(self, executor: str) -> None:
        """Write reportctl.yaml for ``executor`` (celery or local); specs and store stay the same."""
        queues = f"{{critical: {self.prefix}.critical, standard: {self.prefix}.standard}}"
        line = f"executor: {{kind: celery, broker: '{REDIS_URL}', queues: {queues}}}\n" if executor == "celery" else ""
        (self.root / "reportctl.yaml").write_text(f"timezone: UTC\n{line}")

    def tick(self, jobs: int | None = None, *, first: bool = False) -> tuple[datetime, datetime, float]:
        """Run ``schedule tick`` at the next pretended hour; that hour, the real time just before, and its wall time.
        It must fire every report once (the first tick, with no tick before it, also records missed fires)."""
        now = FIRST_TICK + timedelta(hours=self.ticks)
        self.ticks += 1
        command = [str(REPORTCTL), "schedule", "tick", "--now", now.isoformat(), "--json"]
        command += ["--jobs", str(jobs)] if jobs else []
        fired = datetime.now(UTC)
        began = time.perf_counter()
        done = subprocess.run(command, cwd=self.root, env=self.env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - began
        if done.returncode != 0:
            why = done.stderr.strip() or "; ".join(_failed_fires(done.stdout))
            raise RunFailed(f"{' '.join(command[1:])} exited {done.returncode}: {why}")
        fires = json.loads(done.stdout)["fires"]
        if len(fires) != self.reports and not first:
            raise RunFailed(f"the tick at {now.isoformat()} fired {len(fires)} reports, expected {self.reports}")
        return now, fired, seconds


def _failed_fires(printed: str) -> list[str]:
    """The fires a tick's JSON says FAILED, each as ``run ID of REPORT: error``."""
    try:
        fires = json.loads(printed)["fires"]
    except (ValueError, KeyError):
        return [printed.strip()]
    return [f"run {f['run_id']} of {f['report']}: {f['detail']}" for f in fires if f["state"] == "FAILED"]


@dataclass
class Sample:
    """One timed tick of one case: runs per minute, and each run's fire to start and render seconds."""

    per_minute: float
    seconds: float
    to_start: list[float]
    durations: list[float]
    tick_seconds: float


def _ended_runs(store: StateStore, created: datetime, count: int, timeout: float) -> list[tuple[datetime, datetime]]:
    """When each run of the tick at ``created`` started and finished, once all ``count`` have ended (waiting at
    most ``timeout`` seconds); every one must be COMPLETED."""
    from reportctl.state import RunState

    deadline = time.monotonic() + timeout
    while True:
        runs = store.list_runs(since=created, limit=count + 1)
        if len(runs) == count and all(run.state.terminal for run in runs):
            break
        if time.monotonic() > deadline:
            waiting = sum(not run.state.terminal for run in runs)
            raise RunFailed(f"{waiting + count - len(runs)} of {count} runs had not ended {timeout:g} s after the tick")
        time.sleep(0.2)
    spans = []
    for run in runs:
        if run.state is not RunState.COMPLETED or run.started_at is None or run.finished_at is None:
            raise RunFailed(f"run {run.id} of {run.report} is {run.state.value}: {run.error or 'no error recorded'}")
        spans.append((run.started_at, run.finished_at))
    return spans


def _sample(spans: list[tuple[datetime, datetime]], fired: datetime, seconds: float, tick_seconds: float) -> Sample:
    return Sample(
        per_minute=len(spans) * 60 / seconds,
        seconds=seconds,
        to_start=[(started - fired).total_seconds() for started, _ in spans],
        durations=[(finished - started).total_seconds() for started, finished in spans],
        tick_seconds=tick_seconds,
    )


def celery_round(bench: Bench, store: StateStore) -> Sample:
    """One tick queued to the running worker, timed until its last run has ended."""
    bench.use("celery")
    created, fired, tick_seconds = bench.tick()
    spans = _ended_runs(store, created, bench.reports, RUN_TIMEOUT)
    last = max(finished for _, finished in spans)
    return _sample(spans, fired, (last - fired).total_seconds(), tick_seconds)


def local_round(bench: Bench, store: StateStore, jobs: int) -> Sample:
    """One tick that renders its fires itself in ``jobs`` processes, timed as a whole process."""
    bench.use("local")
    created, fired, seconds = bench.tick(jobs)
    return _sample(_ended_runs(store, created, bench.reports, 0), fired, seconds, seconds)


@contextmanager
def running_worker(bench: Bench, concurrency: int) -> Iterator[str]:
    """``reportctl worker -c CONCURRENCY`` in the project until it answers a ping; its name. Stopped by its process
    id (SIGTERM, then SIGKILL)."""
    from reportctl.config import find_project
    from reportctl.schedule.celery_broker import broker_status

    bench.use("celery")
    name = f"{bench.prefix}-{concurrency}@bench"
    log = bench.root / f"worker-{concurrency}.log"
    command = [str(REPORTCTL), "worker", "--concurrency", str(concurrency), "--name", name]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=bench.root, env=bench.env, stdout=output, stderr=subprocess.STDOUT)
    try:
        project = find_project(bench.root)
        deadline = time.monotonic() + 60
        while name not in broker_status(project, timeout=0.5).workers:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise RunFailed(f"reportctl worker -c {concurrency} did not answer: {' / '.join(tail)}")
        yield name
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def broker_queues(prefix: str) -> Iterator[None]:
    """Queues named ``PREFIX.critical`` and ``PREFIX.standard``; what Redis keeps of them deleted afterwards."""
    import redis

    try:
        yield
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for pattern in (f"{prefix}.*", f"_kombu.binding.{prefix}.*", f"_kombu.binding_permanent.{prefix}.*"):
            for key in client.scan_iter(match=pattern):
                client.delete(key)
        client.close()


def _unreachable() -> str | None:
    """Which of PostgreSQL and Redis does not accept a connection, if either."""
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError as exc:
            return f"{name} is not reachable at 127.0.0.1:{port}: {exc}"
    return None


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def compare(bench: Bench, store: StateStore, workers: int, rounds: int) -> dict[str, list[Sample]]:
    """A worker of ``workers`` processes against ``--jobs workers``, in alternating order; samples keyed by
    ``"N celery"``, ``"N local"`` and ``"N celery first"`` (the worker's first tick, out of the comparison)."""
    samples: dict[str, list[Sample]] = {f"{workers} celery": [], f"{workers} local": []}
    with running_worker(bench, workers):
        first = celery_round(bench, store)
        for round_number in range(rounds):
            for case in ("celery", "local") if round_number % 2 == 0 else ("local", "celery"):
                sample = celery_round(bench, store) if case == "celery" else local_round(bench, store, workers)
                samples[f"{workers} {case}"].append(sample)
    return {**samples, f"{workers} celery first": [first]}


def measure(args: argparse.Namespace) -> dict[str, list[Sample]]:
    """Every case for every number of processes, in a project, store schema and queues made for this run."""
    from reportctl.state import StateStore

    prefix = f"bench{uuid.uuid4().hex[:10]}"
    temporary = tempfile.TemporaryDirectory(prefix="reportctl-bench-celery-")
    with store_schema("bench_celery") as url, broker_queues(prefix), temporary as folder:
        root = Path(folder)
        (root / "specs").mkdir()
        for number in range(args.reports):
            (root / "specs" / f"r{number:03d}.yaml").write_text(SPEC.format(number=number))
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", "REPORTCTL_STATE_URL": url}
        bench = Bench(root, prefix, args.reports, env)
        bench.use("local")
        # makes the store's tables and warms the file cache; with no tick before it, it also records missed fires
        bench.tick(2, first=True)
        with StateStore(url) as store:
            return {key: value for n in args.workers for key, value in compare(bench, store, n, args.rounds).items()}


def _numbers(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, e.g. 1,2,4, not '{text}'") from None
    if any(number < 1 for number in numbers):
        raise argparse.ArgumentTypeError(f"every number of processes must be at least 1, not '{text}'")
    return numbers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=60, help="scheduled reports due at each tick (default 60)")
    parser.add_argument(
        "--workers", type=_numbers, default="1,2,4", help="numbers of processes, comma-separated (default 1,2,4)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="timed ticks of each case and number (default 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    problem = _unreachable()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    began = time.perf_counter()
    try:
        samples = measure(args)
    except RunFailed as exc:
        print(exc, file=sys.stderr)
        return 2
    wall = time.perf_counter() - began
    report(args, samples, wall)
    return 0


def report(args: argparse.Namespace, samples: dict[str, list[Sample]], wall: float) -> None:
    """The table (or JSON) of every case, and the ratio celery/local per number of processes."""
    import celery

    ratios = {
        workers: statistics.median(s.per_minute for s in samples[f"{workers} celery"])
        / statistics.median(s.per_minute for s in samples[f"{workers} local"])
        for workers in args.workers
    }
    if args.json:
        result = {
            **result_header("bench_celery", celery=celery.__version__),
            "reports": args.reports,
            "rounds": args.rounds,
            "workers": args.workers,
            "wall_seconds": round(wall, 1),
            "cases": {
                key: {
                    "per_minute": [round(figure, 1) for figure in spread([s.per_minute for s in values])],
                    "seconds": [round(s.seconds, 3) for s in values],
                    "tick_seconds": [round(s.tick_seconds, 3) for s in values],
                    "to_start": {
                        "median": round(statistics.median(v for s in values for v in s.to_start), 3),
                        "p95": round(_p95([v for s in values for v in s.to_start]), 3),
                    },
                    "run_seconds_median": round(statistics.median(v for s in values for v in s.durations), 4),
                }
                for key, values in samples.items()
            },
            "celery_over_local": {workers: round(ratio, 3) for workers, ratio in ratios.items()},
        }
        print(json.dumps(result, indent=2))
        return
    print(
        f"{args.reports} scheduled reports due at each tick, {args.rounds} rounds, celery {celery.__version__}; "
        "runs per minute min / median / max, fire to start and a run's own seconds"
    )
    print(f"{'N':>2} {'case':<13} {'min':>6} {'median':>7} {'max':>6}  {'start med':>9} {'p95':>6}  {'run med':>7}")
    for workers in args.workers:
        for case in ("celery", "local", "celery first"):
            values = samples[f"{workers} {case}"]
            low, middle, high = spread([s.per_minute for s in values])
            to_start = [v for s in values for v in s.to_start]
            run = statistics.median(v for s in values for v in s.durations)
            print(
                f"{workers:>2} {case:<13} {low:>6.0f} {middle:>7.0f} {high:>6.0f}  "
                f"{statistics.median(to_start):>8.2f}s {_p95(to_start):>5.2f}s  {run:>6.3f}s"
            )
        ticks = statistics.median(s.tick_seconds for s in samples[f"{workers} celery"])
        print(f"   celery/local {ratios[workers]:.2f}x runs per minute; the celery tick itself took {ticks:.2f} s")
    print(f"celery first: the first tick of a worker just started, not in the ratio; wall {wall:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
