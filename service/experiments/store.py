"""Experiments, exposures and feedback in a database (SQLite by default, PostgreSQL by URL).

Every write commits before it returns, so a caller that answers its client after the call
never acknowledges something a crash could lose. SQLite runs in WAL mode with
``synchronous=NORMAL``: a committed transaction survives the process being killed (it is in
the WAL file), and several gunicorn workers write to the same file, waiting on each other
through ``busy_timeout``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, case, create_engine, event, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from service.errors import Conflict, ExperimentNotFound, ExperimentStopped
from service.experiments import schema
from service.experiments.definition import (
    Arm,
    Experiment,
    guardrails_from_json,
    policy_from_json,
)

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x68656164  # any constant shared by every process migrating this database
CHECKPOINT_INTERVAL_S = 1.0
DEFINITION_TTL_S = 1.0
"""How long a worker uses its cached copy of an experiment's definition (its weights)."""
"""How often a worker folds SQLite's write-ahead log back into the database file."""

log = logging.getLogger(__name__)

# One exposure, written only while its experiment runs: the check and the write are one statement.
# The casts type NULLs for PostgreSQL.
_INSERT_WHILE_RUNNING_SQL = (
    "INSERT INTO exposures (experiment_id, arm, role, unit, request_id, predicted, probability, "
    "divergence, latency_ms, created_at, period) "
    "SELECT :experiment_id, :arm, :role, CAST(:unit AS VARCHAR(256)), :request_id, :predicted, "
    "CAST(:probability AS DOUBLE PRECISION), CAST(:divergence AS DOUBLE PRECISION), "
    "CAST(:latency_ms AS DOUBLE PRECISION), CAST(:created_at AS DOUBLE PRECISION), :period "
    "FROM experiments WHERE id = :experiment_id AND status = 'running'"
)
_INSERT_WHILE_RUNNING = text(_INSERT_WHILE_RUNNING_SQL)


@dataclass(frozen=True)
class Exposure:
    """One request answered (or shadowed) by an arm."""

    experiment_id: int
    arm: str
    role: str
    unit: str | None
    request_id: str
    predicted: str
    probability: float
    latency_ms: float
    divergence: float | None = None
    period: int = 0
    """The period whose weights assigned the request."""


@dataclass(frozen=True)
class FeedbackItem:
    request_id: str
    label: str | None
    outcome: float | None


@dataclass(frozen=True)
class ArmCounts:
    exposures: int
    """Served exposures: the requests the arm answered."""
    units: int
    without_unit: int
    assigned_units: int = 0
    """Distinct units assigned to the arm, whether it answered them or failed them."""
    assigned_without_unit: int = 0
    """Requests without a unit assigned to the arm, answered or failed."""


class RoutedRequest(NamedTuple):
    """One request an experiment routed to an arm."""

    arm: str
    period: int
    latency_ms: float
    failed: bool
    """The arm failed it (a ``failed`` exposure); else it answered."""


class Promoted(NamedTuple):
    """A model's default, as an experiment promoted (or rolled back to) it."""

    variant: str
    version: str | None
    """None: whichever version is the variant's default in the repository."""
    set_at: float
    """When, in seconds since the epoch: a ``default_version`` file written later wins."""


@dataclass(frozen=True)
class Observation:
    """A served (or shadow) exposure joined with its feedback, in the order feedback arrived."""

    arm: str
    role: str
    request_id: str
    predicted: str
    label: str | None
    outcome: float | None
    received_at: float
    period: int = 0


@dataclass(frozen=True)
class Period:
    """Weights that applied to an experiment from ``started_at`` until the next period."""

    period: int
    started_at: float
    weights: dict[str, float]


@dataclass(frozen=True)
class Action:
    """One entry of an experiment's audit trail."""

    action: str
    actor: str
    at: float
    detail: dict[str, Any]


@dataclass(frozen=True)
class ShadowPair:
    request_id: str
    served: str
    shadow: str
    divergence: float | None


def default_url(state_directory: Path) -> str:
    """The SQLite database in ``state_directory``."""
    return f"sqlite:///{state_directory.resolve() / 'headstart.db'}"


class ExperimentStore:
    """All the service's persistent state, behind a few typed calls."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                self.url, connect_args={"timeout": 30.0}, pool_pre_ping=False
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=8)
        self._write_lock = threading.Lock()
        self._lock_path: str | None = None
        database = self.url.database
        if self.is_sqlite and database and database != ":memory:":
            self._lock_path = f"{database}.write-lock"
        self._definitions: dict[str, tuple[Experiment, float]] = {}
        self._defaults: dict[str, tuple[Promoted | None, float]] = {}
        self._kept_defaults: dict[str, Promoted] | None = None
        """Every model's promoted default, while a thread keeps them fresh."""
        self._local = threading.local()
        self._checkpointer_pid = 0
        self._checkpointer_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread_connections: list[sqlite3.Connection] = []

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision`` (the newest by default); safe when several
        workers start at once."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._migration_lock(), self.engine.begin() as connection:
            if not self.is_sqlite:
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def schema_version(self) -> str | None:
        with self.engine.connect() as connection:
            row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
        return None if row is None else str(row[0])

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        database = self.url.database
        if not self.is_sqlite or not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def dispose(self) -> None:
        self._stopping.set()
        self.engine.dispose()
        for connection in self._thread_connections:
            connection.close()
        self._thread_connections.clear()

    # -- experiments -------------------------------------------------------------------

    def create(self, experiment: Experiment, actor: str = "admin") -> Experiment:
        """Store a new experiment; :class:`Conflict` if its name is taken."""
        try:
            with self.engine.begin() as connection:
                result = connection.execute(
                    schema.experiments.insert().values(
                        name=experiment.name,
                        model=experiment.model,
                        mode=experiment.mode,
                        salt=experiment.salt,
                        alpha=experiment.alpha,
                        mde=experiment.mde,
                        status=experiment.status,
                        created_at=experiment.created_at,
                        stopped_at=None,
                        metric=experiment.metric,
                        guardrails=json.dumps([g.to_json() for g in experiment.guardrails]),
                        policy=None
                        if experiment.policy is None
                        else json.dumps(experiment.policy.to_json()),
                    )
                )
                (experiment_id,) = result.inserted_primary_key or (None,)
                connection.execute(
                    schema.arms.insert(),
                    [
                        {
                            "experiment_id": experiment_id,
                            "position": i,
                            "name": arm.name,
                            "variant": arm.variant,
                            "version": arm.version,
                            "weight": arm.weight,
                        }
                        for i, arm in enumerate(experiment.arms)
                    ],
                )
                weights = {arm.name: arm.weight for arm in experiment.arms}
                assert experiment_id is not None  # the insert above returned its key
                created = int(experiment_id)
                self._start_period(connection, created, 0, experiment.created_at, weights)
                self._act(connection, created, "create", actor, {"weights": weights})
        except IntegrityError:
            raise Conflict(
                f"an experiment named {experiment.name!r} already exists; pick another name "
                "(stopped experiments keep their names so their results stay readable)",
                experiment=experiment.name,
            ) from None
        found = self.get(experiment.name)
        assert found is not None  # just written in a committed transaction
        return found

    def definition(self, name: str) -> Experiment | None:
        """``get`` through a per-process cache, for the request path.

        Experiments are never deleted or renamed. A cached definition is read again after
        :data:`DEFINITION_TTL_S`, so a ramp reaches every worker within it; its status may be
        stale meanwhile, and writes check that in the database (:meth:`record_exposures`).
        An exposure records the period of the weights that assigned it, so a worker still
        on the old weights for that second leaves the analysis valid.
        """
        cached = self._definitions.get(name)
        now = time.monotonic()
        if cached is not None and now - cached[1] < DEFINITION_TTL_S:
            return cached[0]
        found = self.get(name)
        if found is not None:
            self._definitions[name] = (found, now)
        return found

    def forget(self, name: str) -> None:
        """Drop ``name`` from the cache (it was found stopped)."""
        self._definitions.pop(name, None)

    def get(self, name: str) -> Experiment | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(schema.experiments).where(schema.experiments.c.name == name)
            ).first()
            if row is None:
                return None
            return self._with_arms(connection, row._mapping)

    def all(self) -> list[Experiment]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(schema.experiments).order_by(schema.experiments.c.id)
            ).all()
            return [self._with_arms(connection, row._mapping) for row in rows]

    def stop(
        self, name: str, actor: str = "admin", detail: dict[str, Any] | None = None
    ) -> Experiment | None:
        """Stop a running experiment (stopping a stopped one changes nothing)."""
        x = schema.experiments
        with self.engine.begin() as connection:
            stopped = connection.execute(
                update(x)
                .where(x.c.name == name)
                .where(x.c.status == "running")
                .values(status="stopped", stopped_at=time.time())
            ).rowcount
            if stopped:
                (experiment_id,) = connection.execute(select(x.c.id).where(x.c.name == name)).one()
                self._act(connection, experiment_id, "stop", actor, detail or {})
        return self.get(name)

    def ramp(self, name: str, weights: dict[str, float], actor: str = "admin") -> Experiment:
        """Give a running experiment's arms new ``weights`` (every arm, each > 0) from now on:
        a new period. :class:`ExperimentNotFound` or :class:`ExperimentStopped` otherwise."""
        x, a = schema.experiments, schema.arms
        now = time.time()
        with self._writing(), self.engine.begin() as connection:
            current = self._named(connection, name)
            if current.status != "running":
                raise ExperimentStopped(
                    f"experiment {name!r} is stopped: its weights no longer matter",
                    experiment=name,
                )
            period = current.period + 1
            updated = connection.execute(
                update(x)
                .where(x.c.id == current.id)
                .where(x.c.status == "running")
                .where(x.c.period == current.period)
                .values(period=period)
            ).rowcount
            if updated != 1:
                raise Conflict(
                    f"experiment {name!r} changed while it was being ramped; try again",
                    experiment=name,
                )
            for arm in current.arms:
                connection.execute(
                    update(a)
                    .where(a.c.experiment_id == current.id)
                    .where(a.c.name == arm.name)
                    .values(weight=weights[arm.name])
                )
            before = {arm.name: arm.weight for arm in current.arms}
            self._start_period(connection, current.id, period, now, weights)
            self._act(
                connection,
                current.id,
                "ramp",
                actor,
                {"period": period, "before": before, "after": weights},
            )
        self._definitions.pop(name, None)
        found = self.get(name)
        assert found is not None
        return found

    def promote(
        self,
        name: str,
        arm: str,
        evidence: dict[str, Any],
        actor: str = "admin",
        *,
        action: str = "promote",
        while_running: bool = False,
    ) -> Experiment | None:
        """Make ``arm``'s variant its model's default, stop the experiment (if it runs), and
        record both as ``action`` with the ``evidence``, in one transaction.

        With ``while_running`` nothing changes (and None comes back) unless this call is the
        one that stops the experiment: of several workers or replicas acting on the same
        results, exactly one does."""
        x, d = schema.experiments, schema.defaults
        now = time.time()
        with self._writing(), self.engine.begin() as connection:
            current = self._named(connection, name)
            chosen = next(a for a in current.arms if a.name == arm)
            stopped = connection.execute(
                update(x)
                .where(x.c.id == current.id)
                .where(x.c.status == "running")
                .values(status="stopped", stopped_at=now)
            ).rowcount
            if while_running and stopped != 1:
                return None
            connection.execute(d.delete().where(d.c.model == current.model))
            connection.execute(
                d.insert().values(
                    model=current.model,
                    variant=chosen.variant,
                    version=chosen.version,
                    set_at=now,
                    experiment_id=current.id,
                )
            )
            detail = {
                "arm": arm,
                "variant": chosen.variant,
                "version": chosen.version,
                "model": current.model,
                **evidence,
            }
            self._act(connection, current.id, action, actor, detail)
        self._defaults.clear()
        if self._kept_defaults is not None:
            self._read_defaults()
        self._definitions.pop(name, None)
        found = self.get(name)
        assert found is not None
        return found

    def default_variant(self, model: str) -> Promoted | None:
        """The variant, its version (None: the variant's own default) and when, that an
        experiment promoted to ``model``'s default, or None; cached per process for
        :data:`DEFINITION_TTL_S`, so a promotion reaches every worker within it, or, once
        :meth:`keep_defaults_fresh` was called, as its thread last read it."""
        kept = self._kept_defaults
        if kept is not None:
            return kept.get(model)
        cached = self._defaults.get(model)
        now = time.monotonic()
        if cached is not None and now - cached[1] < DEFINITION_TTL_S:
            return cached[0]
        d = schema.defaults
        found: Promoted | None
        try:
            with self.engine.connect() as connection:
                row = connection.execute(
                    select(d.c.variant, d.c.version, d.c.set_at).where(d.c.model == model)
                ).first()
            found = None if row is None else Promoted(row.variant, row.version, row.set_at)
        except SQLAlchemyError as exc:
            # Serving must not depend on the experiments database: keep what was known.
            found = cached[0] if cached is not None else None
            log.warning("cannot read %s's default variant, keeping %s: %s", model, found, exc)
        self._defaults[model] = (found, now)
        return found

    def keep_defaults_fresh(self, interval: float = DEFINITION_TTL_S / 2) -> None:
        """Read every model's promoted default now, then every ``interval`` seconds on a
        daemon thread; :meth:`default_variant` then answers from what was read and never
        waits on the database, as requests run on a worker's event loop must not
        (:mod:`service.inline`). A promotion still reaches every worker within a second."""
        self._read_defaults()
        if self._kept_defaults is None:
            self._kept_defaults = {}
        threading.Thread(
            target=self._keep_reading_defaults, args=(interval,), name="defaults", daemon=True
        ).start()

    def _keep_reading_defaults(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            self._read_defaults()

    def _read_defaults(self) -> None:
        d = schema.defaults
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(select(d.c.model, d.c.variant, d.c.version, d.c.set_at))
                found = {r.model: Promoted(r.variant, r.version, r.set_at) for r in rows}
        except SQLAlchemyError as exc:
            # Serving must not depend on the experiments database: keep what was known.
            log.warning("cannot read the promoted default variants, keeping those known: %s", exc)
            return
        self._kept_defaults = found

    def record_repository_action(
        self, action: str, model: str, variant: str, outcome: str, detail: dict[str, Any]
    ) -> None:
        """Note a load or unload of a model (by the admin, the only actor that can ask)."""
        with self._writing(), self.engine.begin() as connection:
            connection.execute(
                schema.repository_actions.insert().values(
                    action=action,
                    model=model,
                    variant=variant,
                    actor="admin",
                    at=time.time(),
                    outcome=outcome,
                    detail=json.dumps(detail),
                )
            )

    def repository_actions(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest loads and unloads, newest first."""
        t = schema.repository_actions
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            {
                "action": row["action"],
                "model": row["model"],
                "variant": row["variant"],
                "actor": row["actor"],
                "at": row["at"],
                "outcome": row["outcome"],
                "detail": json.loads(row["detail"]),
            }
            for row in rows
        ]

    def periods(self, experiment_id: int) -> list[Period]:
        """The experiment's weights over time, oldest first."""
        p = schema.periods
        query = select(p.c.period, p.c.started_at, p.c.weights).where(
            p.c.experiment_id == experiment_id
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(p.c.period)).all()
        return [Period(int(n), float(at), json.loads(w)) for n, at, w in rows]

    def actions(self, experiment_id: int) -> list[Action]:
        """The experiment's audit trail, oldest first."""
        t = schema.actions
        query = (
            select(t.c.action, t.c.actor, t.c.at, t.c.detail)
            .where(t.c.experiment_id == experiment_id)
            .order_by(t.c.id)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [Action(action, actor, float(at), json.loads(d)) for action, actor, at, d in rows]

    @staticmethod
    def _start_period(
        connection: Connection,
        experiment_id: int,
        period: int,
        started_at: float,
        weights: dict[str, float],
    ) -> None:
        connection.execute(
            schema.periods.insert().values(
                experiment_id=experiment_id,
                period=period,
                started_at=started_at,
                weights=json.dumps(weights),
            )
        )

    @staticmethod
    def _act(
        connection: Connection,
        experiment_id: int,
        action: str,
        actor: str,
        detail: dict[str, Any],
    ) -> None:
        connection.execute(
            schema.actions.insert().values(
                experiment_id=experiment_id,
                action=action,
                actor=actor,
                at=time.time(),
                detail=json.dumps(detail),
            )
        )

    def _named(self, connection: Connection, name: str) -> Experiment:
        """The experiment ``name`` as ``connection`` sees it; :class:`ExperimentNotFound`."""
        x = schema.experiments
        row = connection.execute(select(x).where(x.c.name == name)).first()
        if row is None:
            raise ExperimentNotFound(f"no experiment named {name!r}", experiment=name)
        return self._with_arms(connection, row._mapping)

    @staticmethod
    def _with_arms(connection: Connection, row: Any) -> Experiment:
        arm_rows = connection.execute(
            select(schema.arms)
            .where(schema.arms.c.experiment_id == row["id"])
            .order_by(schema.arms.c.position)
        ).all()
        return Experiment(
            id=int(row["id"]),
            name=row["name"],
            model=row["model"],
            mode=row["mode"],
            salt=row["salt"],
            alpha=row["alpha"],
            mde=row["mde"],
            status=row["status"],
            created_at=row["created_at"],
            stopped_at=row["stopped_at"],
            arms=tuple(Arm(a.name, a.variant, a.weight, a.version) for a in arm_rows),
            metric=row["metric"],
            period=int(row["period"]),
            guardrails=guardrails_from_json(row["guardrails"]),
            policy=policy_from_json(row["policy"]),
        )

    # -- exposures ---------------------------------------------------------------------

    def record_exposures(
        self, exposures: Sequence[Exposure], *, while_running: bool = True
    ) -> bool:
        """Store exposures in one transaction; :class:`Conflict` if a request id was used.

        With ``while_running`` each row is written only if its experiment is still running,
        in the same statement (so a concurrent stop cannot slip in between); returns False,
        storing nothing, if it was stopped.
        """
        now = time.time()
        rows = [
            {
                "experiment_id": e.experiment_id,
                "arm": e.arm,
                "role": e.role,
                "unit": e.unit,
                "request_id": e.request_id,
                "predicted": e.predicted,
                "probability": e.probability,
                "divergence": e.divergence,
                "latency_ms": e.latency_ms,
                "created_at": now,
                "period": e.period,
            }
            for e in exposures
        ]
        if while_running and self.is_sqlite and len(rows) == 1:
            return self._insert_one_sqlite(rows[0])
        try:
            with self._writing(), self.engine.begin() as connection:
                if not while_running:
                    connection.execute(schema.exposures.insert(), rows)
                    return True
                for row in rows:
                    if connection.execute(_INSERT_WHILE_RUNNING, row).rowcount != 1:
                        connection.rollback()
                        return False
                return True
        except IntegrityError:
            raise _request_id_taken(exposures[0].request_id) from None

    def _insert_one_sqlite(self, row: dict[str, Any]) -> bool:
        # The request path's one write, on a connection of this thread's own straight from
        # the driver: SQLAlchemy's statement handling and pool cost as much as SQLite's own
        # insert and commit. sqlite3 takes the :name parameters as they are.
        with self._writing():
            connection = self._thread_connection()
            try:
                stored = connection.execute(_INSERT_WHILE_RUNNING_SQL, row).rowcount == 1
            except sqlite3.IntegrityError:
                connection.rollback()
                raise _request_id_taken(row["request_id"]) from None
            connection.commit()
            return stored

    def _thread_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None or getattr(self._local, "pid", 0) != os.getpid():
            connection = sqlite3.connect(self.url.database or ":memory:", timeout=30.0)
            _sqlite_pragmas(connection, None)
            # A checkpoint copies the WAL into the database and syncs it: tens of
            # milliseconds on a busy disk. The request path leaves that to a background
            # thread instead of paying it inside every thousandth request.
            connection.execute("PRAGMA wal_autocheckpoint=0")
            self._local.connection, self._local.pid = connection, os.getpid()
            self._thread_connections.append(connection)
            self._start_checkpointer()
        return connection

    def _start_checkpointer(self) -> None:
        with self._checkpointer_lock:  # called with the write lock held
            if self._checkpointer_pid == os.getpid():
                return
            self._checkpointer_pid = os.getpid()
        database = self.url.database or ":memory:"

        def run() -> None:
            connection = sqlite3.connect(database, timeout=30.0)
            while not self._stopping.wait(CHECKPOINT_INTERVAL_S):
                try:
                    # PASSIVE: copies what it can without blocking the writers.
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    log.warning("WAL checkpoint failed; retrying", exc_info=True)
            connection.close()

        threading.Thread(target=run, name="wal-checkpoint", daemon=True).start()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        # SQLite has one writer at a time, and a connection that finds the lock taken polls
        # for it with sleeps of milliseconds. Writers queue instead: threads of this process
        # on a lock, processes on an flock of a file beside the database, both woken the
        # moment the holder is done. Anything else writing the file still meets the poll.
        if not self.is_sqlite:
            yield
            return
        with self._write_lock:
            if self._lock_path is None:
                yield
                return
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    # -- feedback ----------------------------------------------------------------------

    def record_feedback(self, items: Sequence[FeedbackItem]) -> list[tuple[str, str] | None]:
        """Store feedback for known request ids; per item, its (experiment, arm) or None if unknown.

        A repeated item overwrites the earlier value of the same field (label or outcome):
        the latest one wins; ``received_at`` keeps the first arrival.
        """
        now = time.time()
        with self._writing(), self.engine.begin() as connection:
            known = self._owners(connection, [item.request_id for item in items])
            # The last item per request id and field wins within one batch, too.
            merged: dict[str, dict[str, Any]] = {}
            for item in items:
                if item.request_id not in known:
                    continue
                row = merged.setdefault(item.request_id, {"request_id": item.request_id})
                if item.label is not None:
                    row["label"] = item.label
                if item.outcome is not None:
                    row["outcome"] = item.outcome
            for fields in (("label",), ("outcome",), ("label", "outcome")):
                batch = [
                    {"label": None, "outcome": None, **r, "received_at": now, "updated_at": now}
                    for r in merged.values()
                    if tuple(k for k in ("label", "outcome") if k in r) == fields
                ]
                if batch:
                    connection.execute(self._upsert(fields), batch)
        return [known.get(item.request_id) for item in items]

    def owners(self, request_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The (experiment, arm) that served each known request id."""
        with self.engine.connect() as connection:
            return self._owners(connection, request_ids)

    def _owners(
        self, connection: Connection, request_ids: Sequence[str]
    ) -> dict[str, tuple[str, str]]:
        ids = list(set(request_ids))
        e, x = schema.exposures, schema.experiments
        known: dict[str, tuple[str, str]] = {}
        for start in range(0, len(ids), 500):  # stay under every driver's parameter limit
            rows = connection.execute(
                select(e.c.request_id, x.c.name, e.c.arm)
                .join(x, x.c.id == e.c.experiment_id)
                .where(e.c.request_id.in_(ids[start : start + 500]))
                .where(e.c.role == "served")
            )
            known.update((rid, (name, arm)) for rid, name, arm in rows)
        return known

    def _upsert(self, fields: tuple[str, ...]) -> Any:
        insert = (sqlite.insert if self.is_sqlite else postgresql.insert)(schema.feedback)
        values = {name: insert.excluded[name] for name in fields}
        values["updated_at"] = insert.excluded.updated_at
        return insert.on_conflict_do_update(index_elements=["request_id"], set_=values)

    # -- what the statistics read --------------------------------------------------------

    def arm_counts(self, experiment_id: int) -> dict[str, ArmCounts]:
        """Per arm, served exposures, distinct units and exposures without a unit."""
        return {arm: c for (_, arm), c in self._counts(experiment_id, False).items()}

    def period_counts(self, experiment_id: int) -> dict[tuple[int, str], ArmCounts]:
        """The same per (period, arm): a unit seen in two periods counts in each."""
        return self._counts(experiment_id, True)

    def _counts(self, experiment_id: int, by_period: bool) -> dict[tuple[int, str], ArmCounts]:
        e = schema.exposures
        keys = [e.c.period, e.c.arm] if by_period else [e.c.arm]
        served = e.c.role == "served"
        query = (
            select(
                *keys,
                func.count(case((served, 1))),
                func.count(func.distinct(case((served, e.c.unit)))),
                func.count(case((served & e.c.unit.is_(None), 1))),
                # A request the arm failed was assigned all the same: the sample-ratio check
                # must not read an arm's errors as too few assignments.
                func.count(func.distinct(e.c.unit)),
                func.count() - func.count(e.c.unit),
            )
            .where(e.c.experiment_id == experiment_id)
            .where(e.c.role.in_(("served", "failed")))
            .group_by(*keys)
        )
        with self.engine.connect() as connection:
            rows = [tuple(row) for row in connection.execute(query)]
        counted: dict[tuple[int, str], ArmCounts] = {}
        for row in rows:
            period, arm = (int(row[0]), str(row[1])) if by_period else (0, str(row[0]))
            n, units, without, assigned, assigned_without = (int(v) for v in row[-5:])
            counted[(period, arm)] = ArmCounts(n, units, without, assigned, assigned_without)
        return counted

    def observations(self, experiment_id: int) -> list[Observation]:
        """Exposures with feedback, ordered by when their feedback first arrived."""
        e, f = schema.exposures, schema.feedback
        query = (
            select(
                e.c.arm,
                e.c.role,
                e.c.request_id,
                e.c.predicted,
                f.c.label,
                f.c.outcome,
                f.c.received_at,
                e.c.period,
            )
            .join(f, f.c.request_id == e.c.request_id)
            .where(e.c.experiment_id == experiment_id)
            # A failed request answered nothing to judge (a retry under its id may have).
            .where(e.c.role != "failed")
            .order_by(f.c.received_at, e.c.id)
        )
        with self.engine.connect() as connection:
            return [Observation(*row) for row in connection.execute(query)]

    def routed(self, experiment_id: int) -> list[RoutedRequest]:
        """Every request the experiment routed to an arm, answered or failed, in the order
        they were stored: what the latency and errors guardrails read."""
        e = schema.exposures
        query = (
            select(e.c.arm, e.c.period, e.c.latency_ms, e.c.role)
            .where(e.c.experiment_id == experiment_id)
            .where(e.c.role.in_(("served", "failed")))
            .order_by(e.c.id)
        )
        with self.engine.connect() as connection:
            return [
                RoutedRequest(str(a), int(p), float(ms), role == "failed")
                for a, p, ms, role in connection.execute(query)
            ]

    def shadow_pairs(self, experiment_id: int) -> list[ShadowPair]:
        """Served and shadow predictions on the same requests."""
        served = schema.exposures.alias("served")
        shadow = schema.exposures.alias("shadow")
        query = (
            select(served.c.request_id, served.c.predicted, shadow.c.predicted, shadow.c.divergence)
            .join(shadow, shadow.c.request_id == served.c.request_id)
            .where(served.c.experiment_id == experiment_id)
            .where(served.c.role == "served")
            .where(shadow.c.role == "shadow")
        )
        with self.engine.connect() as connection:
            return [ShadowPair(*row) for row in connection.execute(query)]


def _request_id_taken(request_id: str) -> Conflict:
    """The one answer to an exposure whose request id is stored already, whichever path wrote."""
    return Conflict(
        "this X-Request-ID already has an exposure: send a fresh request id per request "
        "(or none, and the service makes one)",
        request_id=request_id,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
