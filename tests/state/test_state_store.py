"""The state store on SQLite and on the machine's PostgreSQL: migrations, lifecycle, claims, reaping, retention."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import silence
from reportctl.state import IllegalTransition, RunState, StateStore, StateStoreError, UnknownRun, fire_key
from reportctl.state.migrations import head_revisions

TABLES = {"runs", "run_states", "deliveries", "audit", "scheduler_ticks", "alembic_version"}
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    with StateStore(store_url) as opened:
        yield opened


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_migrations_create_every_table_and_a_second_open_is_a_no_op(store_url: str) -> None:
    from reportctl.state.migrations import create_state_engine, database_url, upgrade_to_head

    StateStore(store_url).close()
    assert _tables(store_url) >= TABLES
    engine = create_state_engine(database_url(store_url))
    try:
        assert upgrade_to_head(engine) is False
    finally:
        engine.dispose()
    StateStore(store_url).close()


def test_the_models_match_the_migrations(store: StateStore, store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from reportctl.state.models import Base

    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            assert {r for (r,) in connection.execute(sa.text("SELECT version_num FROM alembic_version"))} == set(
                head_revisions()
            )
    finally:
        engine.dispose()


def test_a_run_moves_through_its_states_and_keeps_a_timeline(store: StateStore) -> None:
    run = store.create_run("weekly", parameters={"region": "eu"}, spec_path="specs/weekly.yaml", now=T0)
    assert run.state is RunState.SCHEDULED and run.created_at == T0 and run.parameters == {"region": "eu"}
    store.transition(run.id, RunState.GENERATING, now=T0 + timedelta(seconds=1))
    store.transition(run.id, "FORMATTING", now=T0 + timedelta(seconds=5))
    store.transition(run.id, RunState.DISTRIBUTING, now=T0 + timedelta(seconds=7))
    artifacts = [{"format": "csv", "path": "weekly.csv", "bytes": 12, "sha256": "ab"}]
    done = store.transition(run.id, RunState.COMPLETED, artifacts=artifacts, now=T0 + timedelta(seconds=8))
    assert done.state is RunState.COMPLETED
    assert done.started_at == T0 + timedelta(seconds=1) and done.finished_at == T0 + timedelta(seconds=8)
    assert done.duration_seconds == 7.0
    assert done.artifacts == tuple(artifacts)
    assert done.started_at is not None and done.started_at.tzinfo is not None
    timeline = store.timeline(run.id)
    assert [c.state for c in timeline] == [
        RunState.SCHEDULED,
        RunState.GENERATING,
        RunState.FORMATTING,
        RunState.DISTRIBUTING,
        RunState.COMPLETED,
    ]
    assert [c.at for c in timeline] == [T0 + timedelta(seconds=s) for s in (0, 1, 5, 7, 8)]
    assert all(c.at.utcoffset() == timedelta(0) for c in timeline)


def test_illegal_transitions_are_refused_and_change_nothing(store: StateStore) -> None:
    run = store.create_run("weekly")
    with pytest.raises(IllegalTransition, match="is SCHEDULED and cannot move to COMPLETED"):
        store.transition(run.id, RunState.COMPLETED)
    store.transition(run.id, RunState.FAILED, error="boom\nsecond line")
    for target in RunState:
        with pytest.raises(IllegalTransition, match="has finished"):
            store.transition(run.id, target)
    failed = store.get_run(run.id)
    assert failed.state is RunState.FAILED and failed.error == "boom\nsecond line"
    assert [(c.state, c.detail) for c in store.timeline(run.id)][-1] == (RunState.FAILED, "boom")
    with pytest.raises(UnknownRun):
        store.transition("nope", RunState.GENERATING)


def test_a_skipped_run_records_why(store: StateStore) -> None:
    run = store.create_run("weekly", trigger="schedule")
    skipped = store.transition(run.id, RunState.SKIPPED, detail="previous run still active")
    assert skipped.state.terminal and store.timeline(run.id)[-1].detail == "previous run still active"


def test_active_run_sees_only_unfinished_runs(store: StateStore) -> None:
    assert store.active_run("weekly") is None
    run = store.create_run("weekly")
    store.create_run("other")
    assert store.active_run("weekly") == store.get_run(run.id)
    store.transition(run.id, RunState.SKIPPED)
    assert store.active_run("weekly") is None


def test_a_fire_is_claimed_exactly_once(store: StateStore) -> None:
    berlin_nine = datetime(2026, 3, 30, 9, 0, tzinfo=UTC) + timedelta(hours=-2)
    first = store.claim_fire("weekly", berlin_nine, planned_at=berlin_nine + timedelta(minutes=2), spec_hash="h")
    assert first is not None and first.trigger == "schedule" and first.fire_key == "weekly@2026-03-30T07:00:00Z"
    assert first.planned_at == berlin_nine + timedelta(minutes=2)
    assert store.claim_fire("weekly", berlin_nine) is None
    assert store.claim_fire("weekly", berlin_nine + timedelta(days=7)) is not None
    assert store.claim_fire("other", berlin_nine) is not None
    assert len(store.list_runs(report="weekly")) == 2


def test_a_claim_notes_the_run_still_active_before_it(store: StateStore) -> None:
    nine = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    claim, active = store.claim_fire_noting_active("weekly", nine, spec_hash="h")
    assert claim is not None and active is None
    store.transition(claim.id, RunState.GENERATING)
    second, active = store.claim_fire_noting_active("weekly", nine + timedelta(days=7))
    assert second is not None and active is not None
    assert (active.id, active.state) == (claim.id, RunState.GENERATING)
    assert store.claim_fire_noting_active("weekly", nine) == (None, None)  # claimed already


OPENER = """
import sys, time
from reportctl.state import StateStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
StateStore(sys.argv[1]).close()
"""


def test_processes_opening_a_new_store_at_once_all_succeed(store_url: str) -> None:
    start = time.time() + 1.5
    processes = [
        subprocess.Popen([sys.executable, "-c", OPENER, store_url, str(start)], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=30)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], errors
    assert _tables(store_url) >= TABLES


CLAIMER = """
import sys, time
from datetime import datetime
from reportctl.state import StateStore
url, start, when = sys.argv[1], float(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
store = StateStore(url)
time.sleep(max(0.0, start - time.time()))
wins = sum(store.claim_fire("race", when) is not None for _ in range(10))
store.close()
print(wins)
"""


def test_two_processes_racing_for_one_fire_claim_it_once(store_url: str) -> None:
    start = time.time() + 1.5  # both processes are past their imports and racing at the same instant
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, store_url, str(start), T0.isoformat()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=30) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in results]
    assert sum(int(out) for out, _ in results) == 1
    with StateStore(store_url) as store:
        assert [r.fire_key for r in store.list_runs(report="race")] == [fire_key("race", T0)]


def test_reap_lost_fails_a_stale_run_and_spares_a_fresh_one(store: StateStore) -> None:
    stale = store.create_run("stale", now=T0)
    store.transition(stale.id, RunState.GENERATING, now=T0)
    fresh = store.create_run("fresh", now=T0)
    store.transition(fresh.id, RunState.GENERATING, now=T0)
    silence(store, stale.id)
    silence(store, fresh.id)
    silent_since = store.get_run(stale.id).heartbeat_at
    assert silent_since is not None and store.heartbeat(fresh.id)
    reaped = store.reap_lost(timedelta(minutes=2))
    assert [r.id for r in reaped] == [stale.id]
    assert reaped[0].state is RunState.FAILED
    shown = silent_since.isoformat(timespec="seconds").replace("+00:00", "Z")
    assert reaped[0].error == f"worker lost (no heartbeat since {shown} from elsewhere.invalid:4242)"
    assert store.get_run(fresh.id).state is RunState.GENERATING
    assert store.active_run("stale") is None
    assert not store.heartbeat(stale.id), "a reaped run's worker learns it has been given up"


WORKER = """
import sys, time
from reportctl.state import RunState, StateStore
store = StateStore(sys.argv[1])
run = store.create_run("killed")
store.transition(run.id, RunState.GENERATING)
store.heartbeat(run.id)
print(run.id, flush=True)
time.sleep(60)
"""


def test_a_worker_killed_mid_run_is_detected_as_lost(store_url: str) -> None:
    worker = subprocess.Popen([sys.executable, "-c", WORKER, store_url], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        run_id = worker.stdout.readline().strip()
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        assert worker.stdout is not None
        worker.stdout.close()
    assert worker.returncode == -signal.SIGKILL
    with StateStore(store_url) as store:
        run = store.get_run(run_id)
        assert run.state is RunState.GENERATING and run.worker is not None
        assert store.reap_lost(timedelta(minutes=2)) == [], "its last beat is recent by the store's clock"
        silence(store, run_id, silent_for=timedelta(minutes=3), worker=run.worker)
        reaped = store.reap_lost(timedelta(minutes=2))
        assert [r.id for r in reaped] == [run_id]
        run = store.get_run(run_id)
        assert run.state is RunState.FAILED and run.error is not None and "worker lost" in run.error
        assert run.worker is not None and run.worker.endswith(f":{worker.pid}")


def test_retention_forgets_finished_runs_beyond_the_newest(store: StateStore, tmp_path: Path) -> None:
    from reportctl.state.retention import forget_runs, runs_beyond

    ids = []
    for minute in range(5):
        run = store.create_run("weekly", now=T0 + timedelta(minutes=minute))
        store.transition(run.id, RunState.SKIPPED, now=T0 + timedelta(minutes=minute))
        ids.append(run.id)
    live = store.create_run("weekly", now=T0 - timedelta(days=1))
    other = store.create_run("other", now=T0)
    assert len(forget_runs(store, [run.id for run in runs_beyond(store, "weekly", 2)])) == 3
    remaining = [r.id for r in store.list_runs(report="weekly")]
    assert remaining == [ids[4], ids[3], live.id], "unfinished runs are never pruned"
    assert store.get_run(other.id).report == "other"
    with pytest.raises(UnknownRun):
        store.timeline(ids[0])


def test_retention_deletes_old_files_and_notes_it(store: StateStore, tmp_path: Path) -> None:
    from reportctl.state.retention import delete_run_files, record_files_deleted, runs_with_files_due

    def finished(report: str, at: datetime) -> tuple[str, Path]:
        run = store.create_run(report, now=at)
        folder = tmp_path / "out" / report / run.id
        folder.mkdir(parents=True)
        (folder / "r.csv").write_text("a\n1\n")
        (folder / "manifest.json").write_text("{}")
        store.transition(run.id, RunState.GENERATING, now=at)
        store.transition(run.id, RunState.FORMATTING, now=at)
        store.transition(run.id, RunState.DISTRIBUTING, now=at)
        artifacts = [{"format": "csv", "path": "r.csv", "bytes": 4, "sha256": "x"}]
        store.transition(run.id, RunState.COMPLETED, artifacts=artifacts, output_dir=folder, now=at)
        return run.id, folder

    old_id, old_folder = finished("old", T0 - timedelta(days=40))
    new_id, new_folder = finished("new", T0 - timedelta(days=3))
    due = [run for report in ("old", "new") for run in runs_with_files_due(store, report, timedelta(days=30), T0)]
    assert [r.id for r in due] == [old_id]
    for run in due:
        delete_run_files(run)
        record_files_deleted(store, run.id, "artifacts deleted after 30d retention", T0)
    assert not old_folder.exists() and (new_folder / "r.csv").exists()
    old = store.get_run(old_id)
    assert old.artifacts_note == "artifacts deleted after 30d retention" and old.artifacts_deleted_at == T0
    assert store.get_run(new_id).artifacts_deleted_at is None
    assert runs_with_files_due(store, "old", timedelta(days=30), T0) == []


def test_get_run_takes_a_unique_prefix(store: StateStore) -> None:
    a = store.create_run("weekly", run_id="20261128T090000Z-aaaaaa")
    store.create_run("weekly", run_id="20261128T090000Z-abbbbb")
    assert store.get_run("20261128T090000Z-aa") == a
    with pytest.raises(UnknownRun, match=r"ambiguous: it matches 20261128T090000Z-aaaaaa, 20261128T090000Z-abbbbb"):
        store.get_run("20261128T090000Z-a")
    with pytest.raises(UnknownRun, match=r"no run 'zzz'; the newest are: 20261128T090000Z-abbbbb"):
        store.get_run("zzz")
    with pytest.raises(UnknownRun, match="no run '20261128T090000Z-%'"):
        store.get_run("20261128T090000Z-%")


def test_ticks_and_audit(store: StateStore, store_url: str) -> None:
    assert store.last_tick("daemon") is None
    store.set_last_tick("daemon", T0)
    store.set_last_tick("daemon", T0 + timedelta(minutes=1))
    assert store.last_tick("daemon") == T0 + timedelta(minutes=1)
    store.record_audit("alice", "render", report="weekly", detail={"formats": ["csv"]}, now=T0)
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT actor, action, report FROM audit")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("alice", "render", "weekly")]


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.create_run("weekly", now=datetime(2026, 1, 1))


def test_an_unreachable_postgresql_names_the_url_without_its_password() -> None:
    with pytest.raises(StateStoreError) as caught:
        StateStore("postgresql://report:s3cret@127.0.0.1:1/reports")
    message = str(caught.value)
    assert message.startswith("state store postgresql+psycopg://report:***@127.0.0.1:1/reports: cannot connect: ")
    assert "connection refused" in message.lower()
    assert "s3cret" not in message and "\n" not in message


def test_many_processes_creating_one_sqlite_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Switching a new SQLite file to WAL can answer 'locked' at once while another process creates it."""
    code = (
        "import sys; from reportctl.state import StateStore; s = StateStore(sys.argv[1]); s.create_run('x'); s.close()"
    )
    for round_ in range(5):
        url = f"sqlite:///{tmp_path / f'state-{round_}.db'}"
        workers = [
            subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True) for _ in range(4)
        ]
        errors = [worker.communicate(timeout=60)[1] for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0, 0, 0], errors


def test_a_failed_run_is_recorded_once_the_store_answers_again(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reportctl.state.recording import record_failed_once_stored

    run = store.create_run("broken", now=T0)
    store.transition(run.id, RunState.GENERATING, now=T0)
    real, refusals = store.transition, [StateStoreError("state store x: connection refused")] * 2

    def down_twice(*args: object, **kwargs: object) -> object:
        if refusals:
            raise refusals.pop()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "transition", down_twice)
    waits: list[float] = []
    warnings: list[str] = []
    record_failed_once_stored(store, run.id, "the store went away", sleep=waits.append, warn=warnings.append)
    assert (store.get_run(run.id).state, store.get_run(run.id).error) == (RunState.FAILED, "the store went away")
    assert waits == [1.0, 2.0]
    assert warnings[0] == f"state store x: connection refused; recording run {run.id} FAILED again in 1s"
    record_failed_once_stored(store, run.id, "again", sleep=waits.append, warn=warnings.append)
    assert store.get_run(run.id).error == "the store went away" and waits == [1.0, 2.0], "ended: left as it is"
