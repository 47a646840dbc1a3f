"""Deliveries: the channel kind beside the delivery's name, and who is sending a row right now.

``claimed_by`` (host:pid) is set while a process sends to the recipient and cleared when the outcome is recorded,
so a crash mid-send leaves a visible mark and a resumed delivery never sends to that recipient again unasked.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.add_column(sa.Column("kind", sa.String(64), nullable=False, server_default=""))
        table.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="to"))
        table.add_column(sa.Column("claimed_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("claimed_by")
        table.drop_column("role")
        table.drop_column("kind")
