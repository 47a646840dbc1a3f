"""The store's clock: one clock for every machine sharing the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reportctl.state.store import StateStore


def test_the_clock_is_the_database_servers_and_aware(store_url: str) -> None:
    with StateStore(store_url) as store:
        before = datetime.now(UTC)
        moment = store.clock()
        after = datetime.now(UTC)
    assert moment.tzinfo is UTC
    # the server runs on this machine here, so its clock agrees with ours to within a transaction's span
    assert before - timedelta(seconds=2) <= moment <= after + timedelta(seconds=2)
