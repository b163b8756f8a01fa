"""The audit trail of model loads and unloads: written beside each one, read by the admin.

It lives in the experiments database with the experiments' own trail. A database that cannot
be written does not stop a load: the action log of the workers has already carried it."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from service.api.auth import require_admin
from service.experiments import attach

bp = Blueprint("audit", __name__)
log = logging.getLogger(__name__)


def record(action: str, model: str, variant: str, outcome: str, detail: dict[str, Any]) -> None:
    """Note one load or unload and how it went, if the experiments database is open."""
    store = attach.store_of(current_app)
    if store is None:
        return
    try:
        store.record_repository_action(action, model, variant, outcome, detail)
    except SQLAlchemyError as exc:
        log.warning("cannot record the %s of %s/%s: %s", action, model, variant, exc)


@bp.get("/v1/repository/actions")
def actions() -> ResponseReturnValue:
    """The latest 100 loads and unloads, newest first: who, when, what, and how it went."""
    require_admin()
    return {"actions": attach.experiment_store().repository_actions()}
