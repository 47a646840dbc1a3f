"""The audit log: the spec version and the process of each entry, indexed for ``reportctl audit``'s filters.

The ``audit`` table of 0001 stays the one log (renaming it would break stores and readers for nothing): every
render, delivery, trigger, secret use and policy applied is a row with who (``actor``), when (``at``) and what
(``action``, ``report``, ``run_id``, ``detail``). ``spec_hash`` and ``git_commit`` say which version of the spec a
row concerns; ``origin`` is the ``host:pid`` that wrote it. NULL for entries recorded before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit") as table:
        table.add_column(sa.Column("spec_hash", sa.String(128), nullable=True))
        table.add_column(sa.Column("git_commit", sa.String(80), nullable=True))
        table.add_column(sa.Column("origin", sa.String(300), nullable=True))
        table.create_index("ix_audit_report_at", ["report", "at"])
        table.create_index("ix_audit_actor_at", ["actor", "at"])
        table.create_index("ix_audit_run", ["run_id"])


def downgrade() -> None:
    with op.batch_alter_table("audit") as table:
        table.drop_index("ix_audit_run")
        table.drop_index("ix_audit_actor_at")
        table.drop_index("ix_audit_report_at")
        table.drop_column("origin")
        table.drop_column("git_commit")
        table.drop_column("spec_hash")
