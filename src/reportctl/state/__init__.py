"""The state store: every run of every report, its timeline, deliveries, audit log and scheduler ticks.

``open_store(project)`` gives a ``StateStore`` on SQLite (``.reportctl/state.db``) or PostgreSQL, migrated to the
newest schema. Names are imported on first use, so ``reportctl.state.lifecycle`` stays free of SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "ACTIVE_STATES",
    "LEGAL_TRANSITIONS",
    "STATE_URL_ENV",
    "TERMINAL_STATES",
    "IllegalTransition",
    "NoStateStore",
    "RunRecord",
    "RunState",
    "StateChange",
    "StateStore",
    "StateStoreError",
    "Trigger",
    "UnknownRun",
    "fire_key",
    "is_legal",
    "new_run_id",
    "open_store",
    "state_url",
    "worker_name",
]

_LOCATIONS = {
    "ACTIVE_STATES": "reportctl.state.lifecycle",
    "LEGAL_TRANSITIONS": "reportctl.state.lifecycle",
    "STATE_URL_ENV": "reportctl.state.store",
    "TERMINAL_STATES": "reportctl.state.lifecycle",
    "IllegalTransition": "reportctl.state.lifecycle",
    "NoStateStore": "reportctl.state.store",
    "RunRecord": "reportctl.state.models",
    "RunState": "reportctl.state.lifecycle",
    "StateChange": "reportctl.state.models",
    "StateStore": "reportctl.state.store",
    "StateStoreError": "reportctl.state.store",
    "Trigger": "reportctl.state.lifecycle",
    "UnknownRun": "reportctl.state.lifecycle",
    "fire_key": "reportctl.state.store",
    "is_legal": "reportctl.state.lifecycle",
    "new_run_id": "reportctl.state.lifecycle",
    "open_store": "reportctl.state.store",
    "state_url": "reportctl.state.store",
    "worker_name": "reportctl.state.liveness",
}

if TYPE_CHECKING:
    from reportctl.state.lifecycle import (
        ACTIVE_STATES,
        LEGAL_TRANSITIONS,
        TERMINAL_STATES,
        IllegalTransition,
        RunState,
        Trigger,
        UnknownRun,
        is_legal,
        new_run_id,
    )
    from reportctl.state.liveness import worker_name
    from reportctl.state.models import RunRecord, StateChange
    from reportctl.state.store import (
        STATE_URL_ENV,
        NoStateStore,
        StateStore,
        StateStoreError,
        fire_key,
        open_store,
        state_url,
    )


def __getattr__(name: str) -> Any:
    if name in _LOCATIONS:
        import importlib

        return getattr(importlib.import_module(_LOCATIONS[name]), name)
    raise AttributeError(f"module 'reportctl.state' has no attribute {name!r}")
