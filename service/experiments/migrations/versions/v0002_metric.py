"""Each experiment declares its metric; NULL for those stored before, which infer it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("metric", sa.String(10), nullable=True))


def downgrade() -> None:
    op.drop_column("experiments", "metric")
