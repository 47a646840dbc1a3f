"""The scheduler lease on SQLite and PostgreSQL: acquire, renew, expire, take over, release, race, fencing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from reportctl.config import find_project
from reportctl.errors import SpecError
from reportctl.state import StateStore
from reportctl.state.leader import Deposed, Fence, LeaseHolder, describe_leader, read_lease
from reportctl.state.models import SchedulerLease

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=15)


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    with StateStore(store_url) as opened:
        yield opened


def expire(store: StateStore) -> None:
    """Make the lease's holder look gone: its lease ran out a second ago by the store's clock."""
    with store._session(write=True) as session:
        session.execute(sa.update(SchedulerLease).values(expires_at=store.clock() - timedelta(seconds=1)))


def test_the_first_acquire_wins_and_a_second_holder_waits(store: StateStore) -> None:
    first, second = LeaseHolder(store, LEASE), LeaseHolder(store, LEASE)
    taken = first.acquire()
    assert (taken.holder, taken.token, taken.live) == (first.holder, 1, True)
    assert taken.expires_at - taken.renewed_at == LEASE and taken.acquired_at == taken.renewed_at
    assert first.held() and first.fence == Fence("scheduler", 1)
    waiting = second.acquire()
    assert (waiting.holder, waiting.token) == (first.holder, 1)
    assert not second.held() and second.fence is None
    stored = read_lease(store)
    assert stored is not None and (stored.holder, stored.token, stored.expires_at) == (
        first.holder,
        1,
        taken.expires_at,
    )


def test_renewing_keeps_the_token_and_moves_the_expiry(store: StateStore) -> None:
    holder = LeaseHolder(store, LEASE)
    taken = holder.acquire()
    time.sleep(0.01)  # two reads of the store's clock must differ, however coarse it is
    renewed = holder.acquire()
    assert (renewed.holder, renewed.token, renewed.acquired_at) == (holder.holder, 1, taken.acquired_at)
    assert renewed.renewed_at > taken.renewed_at and renewed.expires_at > taken.expires_at


def test_an_expired_lease_is_taken_over_with_a_new_token(store: StateStore) -> None:
    old, new = LeaseHolder(store, LEASE), LeaseHolder(store, LEASE)
    old.acquire()
    expire(store)
    taken = new.acquire()
    assert (taken.holder, taken.token) == (new.holder, 2)
    assert taken.acquired_at == taken.renewed_at
    lost = old.acquire()  # the old holder comes back: it finds the lease held and is no longer the holder
    assert (lost.holder, lost.token) == (new.holder, 2)
    assert not old.held() and old.fence is None


def test_releasing_lets_a_standby_take_over_at_once(store: StateStore) -> None:
    leader, standby = LeaseHolder(store, LEASE), LeaseHolder(store, LEASE)
    leader.acquire()
    assert standby.acquire().holder == leader.holder
    assert leader.release() is True
    assert not leader.held()
    released = read_lease(store)
    assert released is not None and not released.live
    assert describe_leader(released).startswith("none: the last holder, ")
    taken = standby.acquire()
    assert (taken.holder, taken.token) == (standby.holder, 2)
    assert leader.release() is False, "a holder that has lost the lease releases nothing"
    assert read_lease(store).holder == standby.holder  # type: ignore[union-attr]


def test_a_hold_ends_by_the_monotonic_clock_when_renewal_stops(store: StateStore) -> None:
    """A leader whose renewals stop getting through (a store unreachable, a hung connection) stops acting on the
    lease once it may have expired, counted from before its last successful renewal was sent."""
    ticks = [100.0]
    holder = LeaseHolder(store, LEASE, monotonic=lambda: ticks[0])
    holder.acquire()
    ticks[0] = 114.9
    assert holder.held() and holder.fence is not None
    ticks[0] = 115.0
    assert not holder.held() and holder.fence is None


def test_nobody_holds_a_lease_never_taken(store: StateStore) -> None:
    assert read_lease(store) is None
    assert describe_leader(None) == "none (no daemon has run on this state store)"


def test_a_claim_with_an_old_token_records_nothing(store: StateStore) -> None:
    deposed, leader = LeaseHolder(store, LEASE), LeaseHolder(store, LEASE)
    deposed.acquire()
    old_fence = deposed.fence
    assert old_fence is not None
    store.set_last_tick("daemon", T0, fence=old_fence)
    expire(store)
    leader.acquire()
    with pytest.raises(Deposed, match="held with token 2, not this daemon's 1"):
        store.claim_fire("hourly", T0, T0, fence=old_fence, now=T0)
    with pytest.raises(Deposed):
        store.claim_fire_noting_active("hourly", T0, T0, fence=old_fence, now=T0)
    with pytest.raises(Deposed):
        store.set_last_tick("daemon", T0 + timedelta(hours=1), fence=old_fence)
    assert store.list_runs() == []
    assert store.last_tick("daemon") == T0
    claim = store.claim_fire("hourly", T0, T0, fence=leader.fence, now=T0)
    assert claim is not None and [r.id for r in store.list_runs()] == [claim.id]


RACER = """
import sys, time
from pathlib import Path
from reportctl.state import StateStore
from reportctl.state.leader import LeaseHolder

go = Path(sys.argv[2])
with StateStore(sys.argv[1]) as store:
    holder = LeaseHolder(store)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    lease = holder.acquire()
    print(int(lease.holder == holder.holder), lease.token, flush=True)
"""


def _race(store_url: str, tmp_path: Path, runners: int = 2) -> list[tuple[int, int]]:
    """``runners`` processes acquire the lease at the same moment; each says whether it won, and the token."""
    go = tmp_path / f"go-{time.monotonic_ns()}"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, store_url, str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(runners)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert racer.stdout.readline().strip() == "ready", racer.stderr.read() if racer.stderr else ""
        go.touch()
        results = [racer.communicate(timeout=60) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    assert [racer.returncode for racer in racers] == [0] * runners, [err for _, err in results]
    won, token = zip(*(map(int, out.split()) for out, _ in results), strict=True)
    return list(zip(won, token, strict=True))


def test_processes_racing_for_a_new_or_an_expired_lease_never_both_win(store_url: str, tmp_path: Path) -> None:
    with StateStore(store_url) as store:  # the schema exists before the race, so the racers only race for the lease
        assert read_lease(store) is None
    first = _race(store_url, tmp_path, runners=3)
    assert sorted(won for won, _ in first) == [0, 0, 1]
    assert {token for _, token in first} == {1}
    with StateStore(store_url) as store:
        expire(store)
    second = _race(store_url, tmp_path, runners=3)
    assert sorted(won for won, _ in second) == [0, 0, 1]
    assert {token for _, token in second} == {2}


def test_the_lease_length_is_a_checked_setting(project: Path) -> None:
    assert find_project().config.state.scheduler_lease == timedelta(seconds=15)
    (project / "reportctl.yaml").write_text("state:\n  scheduler_lease: 6s\n")
    assert find_project().config.state.scheduler_lease == timedelta(seconds=6)
    (project / "reportctl.yaml").write_text("state:\n  scheduler_lease: 1s\n")
    with pytest.raises(SpecError) as raised:
        find_project()
    (problem,) = raised.value.problems
    assert "state.scheduler_lease" in str(problem)
    assert "1s is too short: the lease is renewed every third of it, so it must be at least 3s" in str(problem)
    assert len(str(problem).splitlines()) == 1
