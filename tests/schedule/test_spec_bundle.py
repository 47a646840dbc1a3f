"""The copy of a spec and its bases a queued run stores, so a worker whose own copy differs renders what the fire read.

A tick claims each fire on the machine's Redis (queues of the test's own, emptied afterwards); the worker's side is
``execute`` called in-process, in the same project folder, standing for a worker whose checkout is another.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from celery_workers import REDIS, make_celery_project
from conftest import CliResult
from reportctl.config import find_project
from reportctl.schedule.celery_executor import QueuedRun, celery_settings
from reportctl.schedule.celery_worker import execute
from reportctl.spec.bundle import spec_bundle
from reportctl.spec.loader import load_spec
from reportctl.state import RunState, StateStore
from reportctl.state.migrations import create_state_engine, database_url
from store_migrations import migrate, run_columns

Cli = Callable[..., CliResult]
T = "2026-11-30T09:05:00+00:00"
SPEC = "specs/reports/health.yaml"
BASE = """\
apiVersion: reportctl/v1
name: ops
abstract: true
title: "{title}"
sources:
  metrics: {{kind: file, path: data/metrics.csv}}
datasets:
  busy: {{from: metrics, where: "value > {threshold}"}}
sections:
  - {{id: busy, type: table, dataset: busy}}
outputs: [json]
"""
CHILD = """\
apiVersion: reportctl/v1
name: health
extends: base/ops.yaml
schedule: {cron: "0 * * * *", timezone: UTC, misfire_grace: 30m}
"""


@pytest.fixture
def bundled(project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A celery project whose ``health`` report extends a base in another folder and reads ``data/metrics.csv``;
    its queues are emptied afterwards (no worker takes what the tests queue)."""
    import redis

    make_celery_project(project, store_url, monkeypatch)
    (project / "specs" / "hourly.yaml").unlink()
    (project / "specs" / "base").mkdir()
    (project / "specs" / "reports").mkdir()
    (project / "data").mkdir()
    (project / "data" / "metrics.csv").write_text("host,value\n" + "".join(f"h{i},{i}\n" for i in range(10)))
    _write_base(project, "Health v1", 2)
    (project / SPEC).write_text(CHILD)
    yield project
    queues = celery_settings(find_project(project)).queues
    client = redis.Redis.from_url(REDIS)
    try:
        client.delete(*queues.values())
    finally:
        client.close()


def _write_base(project: Path, title: str, threshold: int) -> None:
    (project / "specs" / "base" / "ops.yaml").write_text(BASE.format(title=title, threshold=threshold))


def _tick(cli: Cli) -> dict[str, Any]:
    result = cli("schedule", "tick", "--now", T, "--json")
    (fire,) = json.loads(result.stdout)["fires"]
    assert isinstance(fire, dict)
    return fire


def _message(store_url: str, run_id: str) -> QueuedRun:
    """The message the tick sent for ``run_id``, as a worker gets it."""
    with StateStore(store_url) as store:
        now = store.clock()
    return QueuedRun(
        run_id=run_id, report="health", spec=SPEC, revision=None, parameters={},
        scheduled="2026-11-30T09:00:00+00:00", queued_at=now.isoformat(), late_seconds=300.0, priority="standard",
        timeout_seconds=None, misfire_grace_seconds=1800.0, retries=0,
    )  # fmt: skip


def _rendered(store_url: str, run_id: str) -> dict[str, Any]:
    with StateStore(store_url) as store:
        run = store.get_run(run_id)
    document = json.loads((Path(run.output_dir or "") / "health.json").read_text())
    assert isinstance(document, dict)
    return document


def test_a_worker_whose_copy_differs_renders_the_spec_stored_with_the_run(
    cli: Cli, bundled: Path, store_url: str
) -> None:
    fire = _tick(cli)
    assert fire["state"] == "QUEUED", fire
    with StateStore(store_url) as store:
        recorded = store.get_run(fire["run_id"]).spec_hash
    # the daemon's copy moved on after the fire (an uncommitted edit, a later deploy): the worker's copy differs
    _write_base(bundled, "Health v2", 6)
    assert load_spec(bundled / SPEC).spec_hash != recorded

    outcome = execute(find_project(bundled), _message(store_url, fire["run_id"]), "w1")

    assert outcome.startswith("COMPLETED on w1"), outcome
    document = _rendered(store_url, fire["run_id"])
    assert document["report"]["title"] == "Health v1"  # the base as the fire read it
    assert document["report"]["spec_hash"] == recorded
    (table,) = document["sections"]
    assert table["row_count"] == 7  # values 3..9 of the project's data file, the stored copy's `value > 2`
    with StateStore(store_url) as store:
        run = store.get_run(fire["run_id"])
        notes = [change.detail for change in store.timeline(run.id) if change.state is RunState.SCHEDULED]
    assert (run.state, run.spec_hash, run.git_commit) == (RunState.COMPLETED, recorded, None)
    assert notes[-1] == "rendered from the spec stored with the run: this worker's copy differs"


def test_a_worker_without_the_spec_renders_the_copy_stored_with_the_run(
    cli: Cli, bundled: Path, store_url: str
) -> None:
    fire = _tick(cli)
    (bundled / SPEC).unlink()  # a worker deployed before the report was added

    assert execute(find_project(bundled), _message(store_url, fire["run_id"]), "w1").startswith("COMPLETED on w1")

    assert _rendered(store_url, fire["run_id"])["report"]["title"] == "Health v1"
    with StateStore(store_url) as store:
        (note,) = [c.detail for c in store.timeline(fire["run_id"]) if c.state is RunState.SCHEDULED and c.detail]
    assert note == (
        f"rendered from the spec stored with the run: this worker's copy cannot be used ({bundled / SPEC}: file not "
        "found)"
    )


def test_a_run_queued_without_a_stored_copy_fails_when_the_workers_copy_differs(bundled: Path, store_url: str) -> None:
    """A run queued by a reportctl that stored no copy: the worker's checkout must have the recorded spec."""
    recorded = load_spec(bundled / SPEC, find_project(bundled)).spec_hash
    scheduled = datetime(2026, 11, 30, 9, tzinfo=UTC)
    with StateStore(store_url) as store:
        claim = store.claim_fire("health", scheduled, scheduled, spec_path=SPEC, spec_hash=recorded)
        assert claim is not None and store.spec_bundle(claim.id) is None
    _write_base(bundled, "Health v2", 6)

    why = execute(find_project(bundled), _message(store_url, claim.id), "w1")

    assert why == (
        f"{bundled / SPEC}: this worker's copy differs from the spec the fire recorded (hash {recorded[:12]}) and the "
        "run recorded no commit; deploy the same revision to workers and daemons"
    )
    with StateStore(store_url) as store:
        run = store.get_run(claim.id)
    assert (run.state, run.error) == (RunState.FAILED, why)


def test_a_spec_too_large_to_store_fails_its_fire_at_the_claim(cli: Cli, bundled: Path, store_url: str) -> None:
    spec = bundled / SPEC
    spec.write_text(spec.read_text() + "# " + "x" * (3 * 1024 * 1024 // 2) + "\n")

    fire = _tick(cli)

    expected = (
        f"{spec}: the spec and the bases it extends come to 1.5 MiB, over the 1 MiB a queued run stores of them; "
        "move inline data to a file the spec reads"
    )
    assert (fire["state"], fire["detail"]) == ("FAILED", expected)
    with StateStore(store_url) as store:
        run = store.get_run(fire["run_id"])
        assert store.spec_bundle(run.id) is None
    assert (run.state, run.error) == (RunState.FAILED, expected)


def test_the_stored_copy_holds_the_spec_and_its_bases_by_path_from_the_project(bundled: Path) -> None:
    loaded = load_spec(bundled / SPEC, find_project(bundled))
    bundle = spec_bundle(loaded)
    assert bundle == {
        "commit": None,
        "files": {SPEC: CHILD, "specs/base/ops.yaml": BASE.format(title="Health v1", threshold=2)},
    }


def test_0005_adds_the_stored_copy_and_runs_are_listed_without_it(store_url: str) -> None:
    migrate(store_url, "0004")
    assert "spec_bundle" not in run_columns(store_url)
    engine = create_state_engine(database_url(store_url))
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(
                sa.text(
                    "INSERT INTO runs (id, report, spec_path, spec_hash, parameters, trigger, state, attempt, "
                    "created_at, artifacts) VALUES ('r-old', 'health', 'specs/health.yaml', 'abc', '{}', 'schedule', "
                    "'SCHEDULED', 1, :at, '[]')"
                ),
                {"at": datetime(2026, 11, 30, 9).replace(tzinfo=None)},
            )
    finally:
        engine.dispose()

    bundle = {"commit": None, "files": {"specs/health.yaml": "apiVersion: reportctl/v1\nname: health\n"}}
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    with StateStore(store_url) as store:  # opening migrates to head
        assert store.spec_bundle("r-old") is None
        new = store.create_run("health", trigger="schedule", spec_bundle=bundle)
        plain = store.create_run("health")
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
        try:
            listed = store.list_runs(report="health")
            store.get_run(new.id)
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
        assert {run.id for run in listed} == {"r-old", new.id, plain.id}
        assert statements and not [s for s in statements if "spec_bundle" in s]
        assert store.spec_bundle(new.id) == bundle
        assert store.spec_bundle(plain.id) is None

    migrate(store_url, "0004", down=True)
    assert "spec_bundle" not in run_columns(store_url)
    migrate(store_url, "head")
    assert "spec_bundle" in run_columns(store_url)
