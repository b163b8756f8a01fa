"""Weights that change while an experiment runs (ramps), and a record of every action.

``periods`` holds each experiment's weights from the moment they applied; an exposure carries
the period whose weights assigned it, so the analysis can compare arms within periods.
``actions`` is the audit trail: who did what to an experiment, when, and on what evidence.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column(
        "experiments", sa.Column("period", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("exposures", sa.Column("period", sa.Integer, nullable=False, server_default="0"))
    periods = op.create_table(
        "periods",
        sa.Column("experiment_id", _ID, sa.ForeignKey("experiments.id"), primary_key=True),
        sa.Column("period", sa.Integer, primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("weights", sa.Text, nullable=False),  # JSON: {arm: weight}
    )
    op.create_table(
        "actions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", _ID, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),  # JSON
    )
    op.create_index("ix_actions_experiment", "actions", ["experiment_id"])
    # Every experiment stored before ramps ran under its arms' weights from its creation.
    connection = op.get_bind()
    weights: dict[int, dict[str, float]] = {}
    for experiment_id, name, weight in connection.execute(
        sa.text("SELECT experiment_id, name, weight FROM arms ORDER BY experiment_id, position")
    ):
        weights.setdefault(int(experiment_id), {})[name] = float(weight)
    created: dict[int, float] = {
        int(i): float(at)
        for i, at in connection.execute(sa.text("SELECT id, created_at FROM experiments"))
    }
    rows = [
        {
            "experiment_id": experiment_id,
            "period": 0,
            "started_at": float(created[experiment_id]),
            "weights": json.dumps(arm_weights),
        }
        for experiment_id, arm_weights in weights.items()
    ]
    if rows:
        op.bulk_insert(periods, rows)


def downgrade() -> None:
    op.drop_index("ix_actions_experiment", "actions")
    op.drop_table("actions")
    op.drop_table("periods")
    op.drop_column("exposures", "period")
    op.drop_column("experiments", "period")
