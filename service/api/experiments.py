"""HTTP for the experiment admin routes (bearer token): create, list, show with results, ramp,
stop."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, Flask, current_app
from flask.typing import ResponseReturnValue

from service import state
from service.api.auth import require_admin
from service.api.json_body import read_json
from service.errors import Conflict, ExperimentNotFound, NotFound, ValidationFailed
from service.experiments import attach
from service.experiments.analysis import results
from service.experiments.definition import Experiment, ExperimentSpec, RampSpec, is_name
from service.settings import Settings

bp = Blueprint("experiments", __name__)


def init_app(app: Flask, settings: Settings) -> None:
    """Open (and upgrade) the experiments database and add the admin and feedback routes."""
    from service.api import feedback

    store = attach.attach(app, settings)
    if store is not None:
        state.plane_of(app).promoted = store.default_variant
    app.register_blueprint(bp)
    app.register_blueprint(feedback.bp)


@bp.get("/experiments")
def page() -> ResponseReturnValue:
    """The experiments web page; it asks for the admin token and reads the routes below."""
    return current_app.send_static_file("experiments.html")


@bp.post("/v1/experiments")
def create() -> ResponseReturnValue:
    require_admin()
    spec = read_json(ExperimentSpec)
    _check_variants(spec)
    experiment = attach.experiment_store().create(spec.to_experiment())
    return describe(experiment), 201


@bp.get("/v1/experiments")
def list_all() -> ResponseReturnValue:
    require_admin()
    return {"experiments": [describe(e) for e in attach.experiment_store().all()]}


@bp.get("/v1/experiments/<name>")
def show(name: str) -> ResponseReturnValue:
    require_admin()
    store = attach.experiment_store()
    experiment = find(name)
    return {
        **describe(experiment),
        **results(store, experiment),
        "periods": [asdict(p) for p in store.periods(experiment.id)],
        "actions": [asdict(a) for a in store.actions(experiment.id)],
    }


@bp.patch("/v1/experiments/<name>")
def ramp(name: str) -> ResponseReturnValue:
    """New weights for a running split experiment (a ramp), from the next request on."""
    require_admin()
    experiment = find(name)
    spec = read_json(RampSpec)
    try:
        weights = spec.checked(experiment)
    except ValueError as exc:
        raise ValidationFailed(f"weights: {exc}", field="weights") from None
    return describe(attach.experiment_store().ramp(name, weights))


@bp.post("/v1/experiments/<name>/promote")
def promote(name: str) -> ResponseReturnValue:
    """Make the winning arm's variant its model's default and stop the experiment; 409 while
    the results name no winner."""
    require_admin()
    store = attach.experiment_store()
    experiment = find(name)
    decision = results(store, experiment)["comparison"]["decision"]
    if decision["state"] != "winner":
        raise Conflict(
            f"experiment {name!r} has no winner to promote: {decision['message']}",
            experiment=name,
        )
    promoted = store.promote(name, decision["winner"], {"decision": decision["message"]})
    assert promoted is not None  # returns None only when asked to act while running
    arm = next(a for a in promoted.arms if a.name == decision["winner"])
    return {
        **describe(promoted),
        "promoted": {
            "model": promoted.model,
            "arm": arm.name,
            "variant": arm.variant,
            "version": arm.version,
        },
    }


@bp.post("/v1/experiments/<name>/stop")
def stop(name: str) -> ResponseReturnValue:
    require_admin()
    find(name)
    stopped = attach.experiment_store().stop(name)
    assert stopped is not None  # experiments are never deleted
    return describe(stopped)


def find(name: str) -> Experiment:
    """The stored experiment ``name``, or 404 naming the ones that exist."""
    # A name no experiment can have is not looked up: PostgreSQL refuses some (NUL) outright.
    experiment = attach.experiment_store().get(name) if is_name(name) else None
    if experiment is None:
        names = [e.name for e in attach.experiment_store().all()]
        raise ExperimentNotFound(
            f"no experiment named {name[:120]!r}; experiments: {', '.join(names) or 'none yet'}",
            experiment=name,
        )
    return experiment


def describe(e: Experiment) -> dict[str, Any]:
    """An experiment's definition as the API shows it (the salt stays inside)."""
    return {
        "name": e.name,
        "model": e.model,
        "mode": e.mode,
        "arms": [a.to_json() for a in e.arms],
        "alpha": e.alpha,
        "minimum_detectable_effect": e.mde,
        "declared_metric": e.metric,
        "guardrails": [g.to_json() for g in e.guardrails],
        "policy": None if e.policy is None else e.policy.to_json(),
        "status": e.status,
        "period": e.period,
        "created_at": e.created_at,
        "stopped_at": e.stopped_at,
    }


def _check_variants(spec: ExperimentSpec) -> None:
    plane = state.plane()
    for i, arm in enumerate(spec.arms):
        try:
            plane.variant(spec.model, arm.variant)
        except NotFound as exc:
            raise ValidationFailed(
                f"arms.{i}.variant: {exc.message}", field=f"arms.{i}.variant"
            ) from None
        if arm.version is None:
            continue
        try:
            plane.store.variant(spec.model, arm.variant, arm.version)
        except NotFound as exc:
            raise ValidationFailed(
                f"arms.{i}.version: {exc.message}", field=f"arms.{i}.version"
            ) from None
