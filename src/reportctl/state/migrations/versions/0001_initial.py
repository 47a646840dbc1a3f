"""The initial state store: runs, their timeline, deliveries, audit and scheduler ticks.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from reportctl.state.models import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("report", sa.String(200), nullable=False),
        sa.Column("spec_path", sa.Text(), nullable=False),
        sa.Column("spec_hash", sa.String(128), nullable=False),
        sa.Column("git_commit", sa.String(80), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("viewer", sa.String(200), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("scheduled_for", UTCDateTime(), nullable=True),
        sa.Column("fire_key", sa.String(300), nullable=True),
        sa.Column("planned_at", UTCDateTime(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(300), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("output_dir", sa.Text(), nullable=True),
        sa.Column("artifacts", sa.JSON(), nullable=False),
        sa.Column("artifacts_deleted_at", UTCDateTime(), nullable=True),
        sa.Column("artifacts_note", sa.Text(), nullable=True),
        sa.UniqueConstraint("fire_key", name="uq_runs_fire_key"),
    )
    op.create_index("ix_runs_report_created", "runs", ["report", "created_at"])
    op.create_index("ix_runs_state", "runs", ["state"])
    op.create_table(
        "run_states",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_run_states_run", "run_states", ["run_id", "at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(300), nullable=False),
        sa.Column("first_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_deliveries_idempotency_key"),
    )
    op.create_index("ix_deliveries_run", "deliveries", ["run_id"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("report", sa.String(200), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_table(
        "scheduler_ticks",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("last_tick_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("scheduler_ticks", "audit", "deliveries", "run_states", "runs"):
        op.drop_table(table)
