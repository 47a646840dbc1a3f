"""Runs: whether the spec files were dirty, the revision asked for, and the data snapshot, for history and replay.

``git_commit`` already held the commit; ``git_dirty`` says whether the spec or any base it extends differed from it
(it was a '+dirty' suffix on the commit, for the spec file only). ``revision`` is the revision as asked for
(``render --rev v1.2``, a schedule's ``rev:``), ``snapshot`` the folder of the run's data snapshot.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.add_column(sa.Column("git_dirty", sa.Boolean(), nullable=True))
        table.add_column(sa.Column("revision", sa.String(200), nullable=True))
        table.add_column(sa.Column("snapshot", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.drop_column("snapshot")
        table.drop_column("revision")
        table.drop_column("git_dirty")
