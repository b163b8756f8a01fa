"""The version an arm serves and the version a promotion made the default (NULL for those
stored before versions: the variant's own default version).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("arms", sa.Column("version", sa.String(20), nullable=True))
    op.add_column("defaults", sa.Column("version", sa.String(20), nullable=True))


def downgrade() -> None:
    op.drop_column("defaults", "version")
    op.drop_column("arms", "version")
