"""Scale-out with ``executor: celery``: two daemons and two worker processes over 200 scheduled fires.

Two daemons in this process, each with its own connection to one PostgreSQL store, claim and queue the fires; the
test moves their injected clock an hour at a time over fifty hours of four hourly reports. Two real ``reportctl
worker`` processes render on a Redis of the test's own and deliver to a webhook receiver on 127.0.0.1. On the way
a worker's pool process is killed mid-run, the leader dies between queuing an hour and recording its watermark
(then, stalled, tries one more fire), and Redis dies with runs in its queue while fires fall due. In the end every
fire is recorded once, rendered, and delivered once. Processes are started and stopped by their pid.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from celery_workers import make_celery_project, own_broker, own_redis, running_worker
from delivery.http_peers import HttpPeer, running
from reportctl.config import find_project
from reportctl.schedule.celery_broker import messages_in_broker
from reportctl.schedule.daemon import DAEMON_TICK, Daemon
from reportctl.schedule.tick import TickOutcome
from reportctl.state import RunState, StateStore
from reportctl.state.leader import Deposed, LeaseHolder
from reportctl.state.models import RunRecord, SchedulerLease
from slow_source import SlowSource

HOURS = 50
WORKER_KILLED_AT = 12
LEADER_DIES_AT = 24
"""The first daemon's last hour: it queues that hour's fires and dies before recording its watermark."""
REDIS_DIES_AT = 36
"""Redis dies with this hour's runs in it; the next hour's fires fall due while it is down."""
HELD, QUICK = ["held-a", "held-b"], ["quick-c", "quick-d"]
REPORTS = HELD + QUICK
"""In the order a daemon queues them (by name): the held reports first, so each worker takes one of them."""
LEASE = timedelta(minutes=1)
"""Longer than any hour of the test takes: a leader loses the lease only when the test expires it."""
WAIT = 120.0
HOST = socket.gethostname()
SECRET = "whsec_" + base64.b64encode(b"scale-out test signing key, 32b!").decode()
SPEC = """\
apiVersion: reportctl/v1
name: NAME
sources:
  metrics: SOURCE
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "MINUTE * * * *", timezone: UTC, misfire_grace: 1h, overlap: queue}
delivery:
  - {channel: webhook, url: "HOOK", secret: "SECRET"}
"""


def _spec(report: str, minute: int, source: SlowSource, receiver: HttpPeer) -> str:
    """An hourly report at ``minute`` past, delivered to ``receiver``; a held one reads ``source`` (never cached)."""
    held = f'{{kind: http, url: "{source.url}", timeout: 120s, retries: 0, cache: false}}'
    spec = SPEC.replace("NAME", report).replace("SOURCE", held if report in HELD else "{kind: sample, rows: 5}")
    return spec.replace("MINUTE", str(minute)).replace("HOOK", receiver.url("/hook")).replace("SECRET", SECRET)


def _compressed(seconds: float) -> None:
    """The daemons' waits (for a report's last run to end, before sending to the broker again), fifty times shorter:
    they only pace polling, the injected clock decides what is due."""
    time.sleep(seconds / 50)


class _Events(logging.Handler):
    """A daemon's log events as they come, to wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((str(getattr(record, "event", "")), record.getMessage()))


@contextmanager
def _daemon(root: Path, url: str, now: list[datetime], name: str) -> Iterator[tuple[Daemon, LeaseHolder, _Events]]:
    """A daemon with a state store connection of its own, the test's clock and a lease on the scheduler."""
    events = _Events()
    logger = logging.getLogger(f"reportctl.test.scale_out.{name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(events)
    try:
        with StateStore(url) as store:
            lease = LeaseHolder(store, LEASE)
            daemon = Daemon(
                find_project(root), store, clock=lambda: now[0], sleep=_compressed, lease=lease, logger=logger
            )
            yield daemon, lease, events
    finally:
        logger.removeHandler(events)


@dataclass
class Fleet:
    """The test's clock, the store as an observer sees it, the held source and the worker processes by pid."""

    store: StateStore
    start: datetime
    source: SlowSource
    workers: dict[int, str]
    now: list[datetime]
    pools: dict[int, str] = field(default_factory=dict)
    """Every pool process seen under a worker, with the worker's name: a killed one is replaced by a new one."""

    def at(self, hour: int) -> datetime:
        return self.start + timedelta(hours=hour)

    def fire(self, daemon: Daemon, lease: LeaseHolder, hour: int, *, watermark: bool = True) -> list[TickOutcome]:
        """The leader's hour: renew its lease, queue the fires due, record its watermark."""
        self.now[0] = self.at(hour)
        lease.acquire()
        outcomes = daemon.dispatch_due(self.now[0])
        if watermark:
            daemon.save_watermark(self.now[0])
        assert [(o.report, o.scheduled, o.state) for o in outcomes] == [
            (report, self.at(hour), "QUEUED") for report in REPORTS
        ], outcomes
        self.watch_pools()
        return outcomes

    def watch_pools(self) -> None:
        for pid, name in self.workers.items():
            for child in _children(pid):
                self.pools.setdefault(child, name)

    def wait_until(self, done: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                unfinished = [(run.report, run.id, run.state.value) for run in self.runs() if not run.state.terminal]
                raise AssertionError(f"{what}: not within {timeout:g} s; unfinished runs: {unfinished}")
            self.watch_pools()
            time.sleep(0.05)

    def state(self, run_id: str) -> RunState:
        return self.store.get_run(run_id).state

    def settle(self) -> None:
        """Wait until every run recorded so far has ended (no report's run still queued or rendering)."""
        self.wait_until(lambda: all(run.state.terminal for run in self.runs()), "every run ended")

    def runs(self) -> list[RunRecord]:
        return self.store.list_runs(limit=1000)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (by /proc, as ``DaemonProcess.descendants`` finds them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def _ids(outcomes: list[TickOutcome]) -> dict[str, str]:
    return {outcome.report: outcome.run_id or "" for outcome in outcomes}


def test_two_daemons_and_two_workers_record_and_deliver_every_fire_exactly_once(
    project: Path, pg_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_celery_project(project, pg_store_url, monkeypatch)
    port = own_broker(root)
    with ExitStack() as stack:
        store = stack.enter_context(StateStore(pg_store_url))
        # The hour Redis dies lies ten minutes behind the store's clock: a run sent again after the restart is
        # judged late by that clock, so it must be within its misfire grace by it, and the next hour's runs, still
        # ahead of it, are not taken for stranded ones.
        behind = (store.clock() - timedelta(minutes=10)).replace(second=0, microsecond=0)
        start = behind - timedelta(hours=REDIS_DIES_AT)
        source = SlowSource()
        stack.callback(source.close)
        source.release.set()  # answers at once until the test holds it
        receiver = stack.enter_context(running(HttpPeer()))
        (root / "specs" / "hourly.yaml").unlink()
        for report in REPORTS:
            (root / "specs" / f"{report}.yaml").write_text(_spec(report, start.minute, source, receiver))
        redis = stack.enter_context(own_redis(port))
        now = [start]
        first, first_lease, _ = stack.enter_context(_daemon(root, pg_store_url, now, "first"))
        second, second_lease, second_log = stack.enter_context(_daemon(root, pg_store_url, now, "second"))
        with running_worker(root, "w1@scale-out") as w1, running_worker(root, "w2@scale-out") as w2:
            fleet = Fleet(store, start, source, {w1.pid: "w1@scale-out", w2.pid: "w2@scale-out"}, now)
            first.start(start, leading=first_lease.acquire().holder == first_lease.holder)
            second.start(start, leading=second_lease.acquire().holder == second_lease.holder)
            assert (first.leading, second.leading) == (True, False)
            assert second.dispatch_due(start) == [], "a standby fires nothing"

            leader, lease = first, first_lease
            for hour in range(HOURS):
                if hour == WORKER_KILLED_AT:
                    killed, lost = _a_pool_process_is_killed_mid_run(fleet, leader, lease, hour)
                elif hour == LEADER_DIES_AT:
                    fleet.fire(leader, lease, hour, watermark=False)  # and the process dies before recording it
                elif hour == LEADER_DIES_AT + 1:
                    _the_standby_takes_over(fleet, first, second, second_lease, hour)
                    leader, lease = second, second_lease
                elif hour == REDIS_DIES_AT:
                    in_redis = _redis_dies_with_runs_in_its_queue(fleet, leader, lease, hour, redis)
                elif hour == REDIS_DIES_AT + 1:
                    back = partial(stack.enter_context, own_redis(port))  # on the same port, empty
                    _fires_fall_due_while_redis_is_down(fleet, leader, lease, hour, in_redis, back, second_log)
                else:
                    fleet.fire(leader, lease, hour)
            fleet.settle()
        _every_fire_was_recorded_rendered_and_delivered_once(fleet, receiver, killed, lost)


def _a_pool_process_is_killed_mid_run(fleet: Fleet, daemon: Daemon, lease: LeaseHolder, hour: int) -> tuple[str, str]:
    """Each worker renders a held report; one worker's pool process is killed by its pid while it does. The run is
    taken over by the worker that gets its message again, under the same record. Its id and the lost worker."""
    fleet.settle()  # no earlier request of a held report still on its way
    fleet.source.release.clear()
    runs = _ids(fleet.fire(daemon, lease, hour))
    fleet.wait_until(
        lambda: all(fleet.state(runs[report]) is RunState.GENERATING for report in HELD), "both workers rendering"
    )
    lost = fleet.store.get_run(runs["held-a"]).worker or ""
    pid = int(lost.rpartition(":")[2])
    fleet.watch_pools()
    assert pid in fleet.pools and pid not in fleet.workers, "the pool process, not the worker"
    os.kill(pid, signal.SIGKILL)
    fleet.source.release.set()
    fleet.wait_until(lambda: fleet.state(runs["held-a"]).terminal, "the killed run taken over")
    return runs["held-a"], lost


def _the_standby_takes_over(fleet: Fleet, old: Daemon, new: Daemon, new_lease: LeaseHolder, hour: int) -> None:
    """The leader stalls past its lease by the store's clock; the standby takes the lease and catches up from the
    watermark, finding the leader's last hour claimed. The old leader wakes, still sure it leads: its claim is
    refused (fencing) and it stands by."""
    with fleet.store._session(write=True) as session:
        session.execute(sa.update(SchedulerLease).values(expires_at=fleet.store.clock() - timedelta(seconds=1)))
    assert new_lease.acquire().token == 2
    fleet.now[0] = fleet.at(hour)
    assert old.leading, "the old leader has not tried to renew: it still believes it leads"
    assert old.dispatch_due(fleet.at(hour)) == [], "its claim carried token 1 and was refused"
    assert not old.leading
    with pytest.raises(Deposed):
        old.save_watermark(fleet.at(hour))
    assert [run.scheduled_for for run in fleet.runs()].count(fleet.at(hour)) == 0, "nothing recorded"
    assert fleet.store.last_tick(DAEMON_TICK) == fleet.at(hour - 2), (
        "the old leader died before recording its last hour"
    )
    new.take_over(fleet.at(hour))
    fleet.fire(new, new_lease, hour)  # the last leader's hour, due again from its watermark, is found claimed


def _redis_dies_with_runs_in_its_queue(
    fleet: Fleet, daemon: Daemon, lease: LeaseHolder, hour: int, redis: subprocess.Popen[bytes]
) -> dict[str, str]:
    """Both workers render a held report while the quick ones wait in the queue; Redis is killed by its pid with
    all four messages in it. This hour's runs by report."""
    fleet.settle()
    fleet.source.release.clear()
    runs = _ids(fleet.fire(daemon, lease, hour))
    fleet.wait_until(
        lambda: all(fleet.state(runs[report]) is RunState.GENERATING for report in HELD), "both workers rendering"
    )
    assert messages_in_broker(daemon.project) == set(runs.values()), "two taken, two waiting"
    redis.kill()
    redis.wait()
    return runs


def _fires_fall_due_while_redis_is_down(
    fleet: Fleet,
    daemon: Daemon,
    lease: LeaseHolder,
    hour: int,
    in_redis: dict[str, str],
    restart: Callable[[], object],
    log: _Events,
) -> None:
    """The held runs end (the store needs no broker). The next hour's fires are claimed and wait while sending is
    retried; Redis comes back empty, the workers reconnect, the waiting fires go out, and the leader sends again the
    quick runs whose messages Redis lost."""
    fleet.source.release.set()
    fleet.wait_until(lambda: all(fleet.state(in_redis[report]).terminal for report in HELD), "the held runs ended")
    with ThreadPoolExecutor(1) as job:  # the daemon's job thread; the test goes on as its housekeeping
        dispatching = job.submit(fleet.fire, daemon, lease, hour)
        fleet.wait_until(
            lambda: any(event == "run.waiting" and "waits, sending again in" in line for event, line in log.seen),
            "a warning that the run waits for the broker",
        )
        waiting = fleet.store.list_runs(state=RunState.SCHEDULED, limit=1000)
        assert {(run.report, run.scheduled_for) for run in waiting} == {
            ("held-a", fleet.at(hour)),
            *((report, fleet.at(hour - 1)) for report in QUICK),
        }, "claimed and waiting: the fire being sent, and the runs whose messages Redis lost"
        assert daemon.queue_stranded() == [], "the broker does not answer: tried again later"
        restart()
        assert sorted(daemon.queue_stranded()) == sorted(in_redis[report] for report in QUICK)
        dispatching.result(timeout=WAIT)


def _every_fire_was_recorded_rendered_and_delivered_once(
    fleet: Fleet, receiver: HttpPeer, killed: str, lost: str
) -> None:
    runs = fleet.runs()
    assert len(runs) == len(REPORTS) * HOURS
    assert {run.trigger for run in runs} == {"schedule"}
    fires = sorted((run.report, run.scheduled_for) for run in runs)
    assert fires == sorted((report, fleet.at(hour)) for report in REPORTS for hour in range(HOURS))
    assert {run.state for run in runs} == {RunState.COMPLETED}
    assert [run.id for run in runs if run.attempt != 1] == [killed]
    timeline = [(change.state, change.detail) for change in fleet.store.timeline(killed)]
    assert [state for state, _ in timeline] == [
        RunState.SCHEDULED, RunState.GENERATING, RunState.SCHEDULED, RunState.GENERATING, RunState.FORMATTING,
        RunState.DISTRIBUTING, RunState.COMPLETED,
    ]  # fmt: skip
    assert timeline[2][1] == f"worker {lost} lost while GENERATING; rendered again by another worker"

    received = receiver.received("/hook")
    delivered = [Webhook(SECRET).verify(request.body, request.headers)["data"]["run_id"] for request in received]
    assert sorted(delivered) == sorted(run.id for run in runs), "each run delivered exactly once"
    assert len({request.header("webhook-id") for request in received}) == len(runs)

    workers = {fleet.pools.get(int((run.worker or ":0").rpartition(":")[2]), "?") for run in runs}
    assert workers == set(fleet.workers.values()), "each run rendered by a pool process of one of the two workers"
    assert all(run.worker_node == fleet.pools[int((run.worker or "").rpartition(":")[2])] for run in runs)
    assert all((run.worker or "").startswith(f"{HOST}:") for run in runs)
