"""The Flask app factory: ``gunicorn 'service:create_app()'``."""

from __future__ import annotations

from flask import Flask

from service import batching, http_errors, inline, metrics, request_id, state
from service.dataplane import DataPlane
from service.json_provider import OrjsonProvider
from service.runtime import ModelStore
from service.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Create the app and load every model in the repository."""
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = OrjsonProvider(app)
    app.extensions[inline.INLINE_RULE] = inline.rule(settings)
    store = ModelStore.load(
        settings.model_repository,
        intra_op_threads=settings.ort_threads,
        wrap=batching.wrapper(settings.batch_max_size, settings.batch_max_wait_ms),
    )
    state.attach(app, DataPlane(store, settings, observe=metrics.observe_run))

    from service.api import audit, experiments, health, meta, query, v1
    from service.v2 import api as v2_api

    request_id.init_app(app)
    query.init_app(app)
    metrics.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(v1.bp)
    app.register_blueprint(meta.bp)
    app.register_blueprint(v2_api.bp)
    app.register_blueprint(audit.bp)
    experiments.init_app(app, settings)
    http_errors.register(app)
    metrics.declare_series(app)
    return app


def start_background(app: Flask) -> None:
    """What a worker runs beside its requests, once it serves: the repository watcher (loads
    and unloads asked of other workers, the optional poll) and the experiments' policy."""
    from service.experiments import attach, policy

    repository = state.plane_of(app).repository
    repository.start_from_log()
    repository.start()
    interval = state.plane_of(app).settings.policy_interval_seconds
    policy.Runner(lambda: attach.store_of(app), interval).start()
    store = attach.store_of(app)
    if store is not None:
        store.keep_defaults_fresh()
