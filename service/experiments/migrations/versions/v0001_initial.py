"""Experiments, their arms, exposures and feedback.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("alpha", sa.Float, nullable=False),
        sa.Column("mde", sa.Float, nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("stopped_at", sa.Float, nullable=True),
    )
    op.create_table(
        "arms",
        sa.Column("experiment_id", _ID, sa.ForeignKey("experiments.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("variant", sa.String(200), nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
    )
    op.create_table(
        "exposures",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", _ID, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("arm", sa.String(100), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("unit", sa.String(256), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("predicted", sa.String(200), nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("divergence", sa.Float, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("request_id", "role", name="uq_exposures_request_role"),
    )
    op.create_index("ix_exposures_experiment_arm", "exposures", ["experiment_id", "arm"])
    op.create_table(
        "feedback",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("outcome", sa.Float, nullable=True),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_index("ix_exposures_experiment_arm", "exposures")
    op.drop_table("exposures")
    op.drop_table("arms")
    op.drop_table("experiments")
