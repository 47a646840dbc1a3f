"""Runs and their timelines: room for the COMPLETED_WITH_WARNINGS state.

A run whose sections rendered as placeholders (``on_error: placeholder``) ends COMPLETED_WITH_WARNINGS, 23
characters; ``runs.state`` and ``run_states.state`` were VARCHAR(16), which PostgreSQL and MariaDB enforce.
Downgrading shortens them again and fails if such a run is stored (change those runs' state first).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for name in ("runs", "run_states"):
        with op.batch_alter_table(name) as table:
            table.alter_column("state", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False)


def downgrade() -> None:
    for name in ("runs", "run_states"):
        with op.batch_alter_table(name) as table:
            table.alter_column("state", type_=sa.String(16), existing_type=sa.String(32), existing_nullable=False)
