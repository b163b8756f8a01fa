"""Each experiment's guardrails and automatic policy, as JSON (NULL for those stored before,
which have no guardrail and act only when told), and the audit trail of model loads.

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

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("experiments", sa.Column("guardrails", sa.Text, nullable=True))
    op.add_column("experiments", sa.Column("policy", sa.Text, nullable=True))
    op.create_table(
        "repository_actions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("variant", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("repository_actions")
    op.drop_column("experiments", "policy")
    op.drop_column("experiments", "guardrails")
