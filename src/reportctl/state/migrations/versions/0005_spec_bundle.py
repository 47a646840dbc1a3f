"""Runs: the copy of the spec and its bases a queued run keeps, so every worker renders the version its fire read.

``spec_bundle`` holds, for a run claimed for ``executor: celery``, the text of the spec and of every base it extends,
keyed by path from the project root (``reportctl.spec.bundle``). It is NULL for every other run and for those
recorded before, and is read only by a worker whose own copy of the spec differs, never when runs are listed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.add_column(sa.Column("spec_bundle", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.drop_column("spec_bundle")
