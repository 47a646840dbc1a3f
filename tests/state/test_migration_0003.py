"""Migration 0003 (git_dirty, revision, snapshot on runs) over a store that already holds runs, both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from reportctl.state import StateStore
from reportctl.state.lifecycle import RunState
from reportctl.state.migrations import create_state_engine, database_url
from store_migrations import migrate, run_columns

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def test_0003_adds_the_version_columns_and_keeps_existing_runs(store_url: str) -> None:
    migrate(store_url, "0002")
    assert not {"git_dirty", "revision", "snapshot"} & run_columns(store_url)
    engine = create_state_engine(database_url(store_url))
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(
                sa.text(
                    "INSERT INTO runs (id, report, spec_path, spec_hash, git_commit, parameters, trigger, state, "
                    "attempt, created_at, artifacts) VALUES ('r-old', 'health', 'specs/health.yaml', 'abc', "
                    "'0123abcd', '{}', 'manual', 'COMPLETED', 1, :at, '[]')"
                ),
                {"at": T0.replace(tzinfo=None)},
            )
    finally:
        engine.dispose()

    with StateStore(store_url) as store:  # opening migrates to head
        old = store.get_run("r-old")
        assert (old.git_commit, old.git_dirty, old.revision, old.snapshot) == ("0123abcd", None, None, None)
        new = store.create_run("health", revision="v1.2", now=T0)
        store.transition(new.id, RunState.GENERATING, now=T0)
        store.transition(new.id, RunState.FORMATTING, now=T0)
        store.transition(
            new.id, RunState.DISTRIBUTING, git_commit="f" * 40, git_dirty=True, snapshot="/data/snap", now=T0
        )
        again = store.get_run(new.id)
        assert (again.git_commit, again.git_dirty, again.revision, again.snapshot) == (
            "f" * 40, True, "v1.2", "/data/snap",
        )  # fmt: skip

    migrate(store_url, "0002", down=True)
    assert not {"git_dirty", "revision", "snapshot"} & run_columns(store_url)
    migrate(store_url, "head")
    assert {"git_dirty", "revision", "snapshot"} <= run_columns(store_url)
