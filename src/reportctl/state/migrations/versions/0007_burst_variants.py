"""Runs: the variants of a burst.

A spec with ``burst:`` renders one variant per recipient group, each a run of its own: ``burst_of`` names the run
that was fired (or asked for) and ``audience`` holds the addresses of the group it was filtered for and may be
delivered to (a JSON list); its ``viewer`` names the group (``team:frontend``, an address). NULL for every other
run and for those recorded before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.add_column(sa.Column("burst_of", sa.String(64), nullable=True))
        table.add_column(sa.Column("audience", sa.JSON(), nullable=True))
        table.create_index("ix_runs_burst_of", ["burst_of"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.drop_index("ix_runs_burst_of")
        table.drop_column("audience")
        table.drop_column("burst_of")
