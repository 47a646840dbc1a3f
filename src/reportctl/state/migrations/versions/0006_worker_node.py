"""Runs: the name of the Celery worker that rendered a run, beside its process.

``worker_node`` is the node name a ``reportctl worker`` was started with (``--name``, by default
``reportctl@HOST``), the name ``doctor`` and Celery's own tools list; ``worker`` stays the process (``host:pid``)
that liveness checks. NULL for runs rendered locally and for those recorded before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.add_column(sa.Column("worker_node", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.drop_column("worker_node")
