"""The delivery ledger on SQLite and on the machine's PostgreSQL: planning, claims, outcomes, resumption."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from conftest import silence
from reportctl.state import RunState, StateStore
from reportctl.state.ledger import DeliveryLedger, PlannedRecipient, counts_by_delivery
from reportctl.state.retention import forget_runs, runs_beyond

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    with StateStore(store_url) as opened:
        yield opened


@pytest.fixture
def run_id(store: StateStore) -> str:
    return store.create_run("weekly", now=T0).id


def _planned(*addresses: str) -> list[PlannedRecipient]:
    return [PlannedRecipient(address, "to", f"key-{address}") for address in addresses]


def test_planning_twice_adds_nothing_and_keeps_the_order(store: StateStore, run_id: str) -> None:
    ledger = DeliveryLedger(store)
    first = ledger.plan(run_id, "email", "email", _planned("a@x.org", "b@x.org"))
    again = ledger.plan(run_id, "email", "email", _planned("b@x.org", "a@x.org", "c@x.org"))
    assert [e.recipient for e in first] == ["a@x.org", "b@x.org"]
    assert [e.recipient for e in again] == ["b@x.org", "a@x.org", "c@x.org"]
    assert {e.id for e in first} < {e.id for e in again}
    assert all(e.status == "pending" and e.attempts == 0 for e in again)
    assert len(ledger.entries(run_id)) == 3


def test_a_row_is_claimed_by_one_process_only(store: StateStore, run_id: str) -> None:
    ledger = DeliveryLedger(store)
    rows = ledger.plan(run_id, "email", "email", _planned("a@x.org", "b@x.org"))
    ids = [row.id for row in rows]
    assert sorted(ledger.claim(ids, "host:1", T0)) == sorted(ids)
    assert ledger.claim(ids, "host:2", T0) == [], "rows another process is sending are not sent again"
    entry = ledger.entries(run_id)[0]
    assert entry.attempts == 1 and entry.claimed_by == "host:1" and entry.first_attempt_at == T0


def test_outcomes_release_the_claim_and_a_retry_claims_again(store: StateStore, run_id: str) -> None:
    ledger = DeliveryLedger(store)
    a, b, c = (row.id for row in ledger.plan(run_id, "email", "email", _planned("a@x.org", "b@x.org", "c@x.org")))
    ledger.claim([a, b, c], "host:1", T0)
    ledger.record(
        [(a, "sent", "250 OK"), (b, "bounced", "550 no such user"), (c, "pending", "451 try later")], "host:1"
    )
    assert ledger.entries(run_id)[2].claimed_by is None, "a row waiting for its next try is not in flight"
    assert ledger.claim([c], "host:1", T0 + timedelta(seconds=1)) == [c]
    ledger.record([(c, "failed", "451 try later (gave up after 2 attempts)")], "host:1")
    entries = {e.recipient: e for e in ledger.entries(run_id)}
    assert (entries["a@x.org"].status, entries["a@x.org"].claimed_by) == ("sent", None)
    assert entries["b@x.org"].status == "bounced" and entries["b@x.org"].response == "550 no such user"
    assert entries["c@x.org"].status == "failed" and entries["c@x.org"].attempts == 2
    assert entries["c@x.org"].last_attempt_at == T0 + timedelta(seconds=1)
    assert counts_by_delivery(ledger.entries(run_id)) == {"email": {"sent": 1, "bounced": 1, "failed": 1}}


def test_an_outcome_from_a_process_that_lost_its_claim_is_ignored(store: StateStore, run_id: str) -> None:
    ledger = DeliveryLedger(store)
    (row,) = ledger.plan(run_id, "email", "email", _planned("a@x.org"))
    ledger.claim([row.id], "host:1", T0)
    ledger.record([(row.id, "sent", "250 OK")], "host:2")
    assert ledger.entries(run_id)[0].status == "pending"


def test_a_stopped_process_s_claims_become_unknown_and_only_resend_unknown_reopens_them(
    store: StateStore, run_id: str
) -> None:
    ledger = DeliveryLedger(store)
    a, b = (row.id for row in ledger.plan(run_id, "email", "email", _planned("a@x.org", "b@x.org")))
    ledger.claim([a], "host:1", T0)
    assert ledger.claims(run_id) == {"host:1": T0}
    assert ledger.release_claims(run_id, ["host:1"], "interrupted while sending") == 1
    entries = {e.recipient: e for e in ledger.entries(run_id)}
    assert entries["a@x.org"].status == "unknown" and entries["a@x.org"].claimed_by is None
    assert (entries["a@x.org"].attempts, entries["a@x.org"].last_attempt_at) == (1, T0), "kept: they group a batch"
    assert entries["b@x.org"].status == "pending", "an unclaimed row is simply still to send"
    assert ledger.claims(run_id) == {}
    ledger.reopen([a, b])
    assert ledger.entries(run_id)[0].status == "unknown", "reopening failed rows leaves unknown ones"
    ledger.reopen([a, b], "unknown")
    assert [e.status for e in ledger.entries(run_id)] == ["pending", "pending"]


def test_ledger_rows_go_with_their_pruned_run(store: StateStore, run_id: str) -> None:
    ledger = DeliveryLedger(store)
    (row,) = ledger.plan(run_id, "email", "email", _planned("a@x.org"))
    ledger.claim([row.id], "host:1", T0)
    ledger.record([(row.id, "failed", "421 try later")], "host:1")  # settled: retention spares pending rows
    store.transition(run_id, RunState.FAILED, error="boom")
    newer = store.create_run("weekly", now=T0 + timedelta(minutes=1))
    assert forget_runs(store, [run.id for run in runs_beyond(store, "weekly", 1)]) == {run_id}
    assert ledger.entries(run_id) == [] and store.get_run(newer.id).id == newer.id


def test_a_run_lost_while_delivering_completes_and_keeps_its_ledger(store: StateStore, run_id: str) -> None:
    ledger = DeliveryLedger(store)
    ledger.plan(run_id, "email", "email", _planned("a@x.org"))
    for state in (RunState.GENERATING, RunState.FORMATTING, RunState.DISTRIBUTING):
        store.transition(run_id, state, now=T0)
    silence(store, run_id)  # its worker, on another host, silent for 5 minutes
    (reaped,) = store.reap_lost(timedelta(minutes=2))
    assert reaped.state is RunState.COMPLETED and reaped.error is None
    assert "reportctl deliver" in (store.timeline(run_id)[-1].detail or "")
    assert ledger.entries(run_id)[0].status == "pending"
