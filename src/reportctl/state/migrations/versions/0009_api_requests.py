"""The daemon's HTTP API: each ``Idempotency-Key`` and the run it started, so a repeated request (a client's retry,
Alertmanager re-sending a firing group) returns that run instead of rendering again, across daemon restarts and
for every daemon sharing the store. ``key`` is the primary key, so two daemons taking the same key at once cannot
both start a run; rows older than the 24 h window are deleted as new keys come in.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from reportctl.state.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_requests",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("report", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_api_requests_created", "api_requests", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_api_requests_created", table_name="api_requests")
    op.drop_table("api_requests")
