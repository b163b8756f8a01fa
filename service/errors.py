"""The service's one error hierarchy; ``service.app`` maps it to HTTP in one handler."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error the service reports to a client."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class InvalidImage(BadRequest):
    code = "invalid_image"


class LoadFailed(BadRequest):
    """A model in the repository cannot be loaded (as Triton answers a failed load: 400)."""

    code = "load_failed"


class Unauthorized(ServiceError):
    """No valid bearer token; the response carries ``WWW-Authenticate: Bearer``."""

    status_code = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VariantNotFound(NotFound):
    code = "variant_not_found"


class ExperimentNotFound(NotFound):
    code = "experiment_not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class ExperimentStopped(Conflict):
    code = "experiment_stopped"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class ValidationFailed(ServiceError):
    status_code = 422
    code = "validation_failed"


class NotReady(ServiceError):
    status_code = 503
    code = "not_ready"


class NotSupported(ServiceError):
    """An operation of a protocol that this server does not offer (yet)."""

    status_code = 501
    code = "not_supported"
