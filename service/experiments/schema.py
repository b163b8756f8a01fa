"""The experiment tables, as SQLAlchemy Core metadata; migrations/ creates and upgrades them.

Times are seconds since the epoch (float): portable, ordered, and cheap to write.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
_ID = BigInteger().with_variant(Integer(), "sqlite")

experiments = Table(
    "experiments",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("model", String(200), nullable=False),
    Column("mode", String(10), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("alpha", Float, nullable=False),
    Column("mde", Float, nullable=True),
    Column("status", String(10), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),
    Column("metric", String(10), nullable=True),  # NULL: stored before metrics were declared
    # The current weights' period: 0 at creation, one more at every ramp.
    Column("period", Integer, nullable=False, server_default="0"),
    Column("guardrails", Text, nullable=True),  # JSON list; NULL: stored before guardrails
    Column("policy", Text, nullable=True),  # JSON; NULL: acts only when told
)

arms = Table(
    "arms",
    metadata,
    Column("experiment_id", _ID, ForeignKey("experiments.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("variant", String(200), nullable=False),
    Column("weight", Float, nullable=False),
    Column("version", String(20), nullable=True),  # NULL: the variant's default version
)

exposures = Table(
    "exposures",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("experiment_id", _ID, ForeignKey("experiments.id"), nullable=False),
    Column("arm", String(100), nullable=False),
    # "served": the arm answered the request; "shadow": it ran on the same input, unseen.
    Column("role", String(8), nullable=False),
    Column("unit", String(256), nullable=True),
    Column("request_id", String(128), nullable=False),
    Column("predicted", String(200), nullable=False),
    Column("probability", Float, nullable=False),
    Column("divergence", Float, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    # The period whose weights assigned the request (see ``periods``).
    Column("period", Integer, nullable=False, server_default="0"),
    UniqueConstraint("request_id", "role", name="uq_exposures_request_role"),
    Index("ix_exposures_experiment_arm", "experiment_id", "arm"),
)

periods = Table(
    "periods",
    metadata,
    Column("experiment_id", _ID, ForeignKey("experiments.id"), primary_key=True),
    Column("period", Integer, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("weights", Text, nullable=False),  # JSON: {arm: weight}
)

actions = Table(
    "actions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("experiment_id", _ID, ForeignKey("experiments.id"), nullable=False),
    Column("action", String(20), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("at", Float, nullable=False),
    Column("detail", Text, nullable=False),  # JSON
    Index("ix_actions_experiment", "experiment_id"),
)

defaults = Table(
    "defaults",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("variant", String(200), nullable=False),
    Column("version", String(20), nullable=True),  # NULL: the variant's default version
    Column("set_at", Float, nullable=False),
    # The experiment whose verdict promoted it.
    Column("experiment_id", _ID, ForeignKey("experiments.id"), nullable=True),
)

repository_actions = Table(
    "repository_actions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("action", String(10), nullable=False),  # load, unload
    Column("model", String(200), nullable=False),
    Column("variant", String(200), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("at", Float, nullable=False),
    Column("outcome", String(10), nullable=False),  # done, failed
    Column("detail", Text, nullable=False),  # JSON: the model file's sha256, or why it failed
)

feedback = Table(
    "feedback",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("label", String(200), nullable=True),
    Column("outcome", Float, nullable=True),
    Column("received_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
