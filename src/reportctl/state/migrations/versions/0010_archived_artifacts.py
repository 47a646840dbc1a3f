"""Runs: where retention archived a run's files, and when.

``archive_url`` is the ``s3://bucket/prefix/<report>/<run-id>/`` folder a run's artifacts and manifest.json were
moved to once they passed their retention age (``retention: {archive: ...}``); each artifact's own object is its
``archive`` entry in ``runs.artifacts``. ``archived_at`` is set in the same update, after every upload succeeded
and before any local file is deleted, so a prune cut short resumes: an archived run whose ``artifacts_deleted_at``
is still NULL only has its local files deleted. NULL for runs never archived.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from reportctl.state.models import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.add_column(sa.Column("archive_url", sa.Text(), nullable=True))
        table.add_column(sa.Column("archived_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.drop_column("archived_at")
        table.drop_column("archive_url")
