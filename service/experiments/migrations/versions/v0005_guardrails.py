"""Each experiment's guardrails and automatic policy, as JSON; NULL for those stored before,
which have no guardrail and act only when told.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("guardrails", sa.Text, nullable=True))
    op.add_column("experiments", sa.Column("policy", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("experiments", "policy")
    op.drop_column("experiments", "guardrails")
