"""Each model's default variant, once an experiment has promoted one.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "defaults",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("variant", sa.String(200), nullable=False),
        sa.Column("set_at", sa.Float, nullable=False),
        sa.Column("experiment_id", _ID, sa.ForeignKey("experiments.id"), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("defaults")
