"""``inference.GRPCInferenceService``: each method translates protobuf to the data plane and back.

The answers are the V2 REST answers (:mod:`service.v2.metadata`, :mod:`service.v2.triton`)
parsed into the protocol's messages, so the two protocols cannot drift apart. Errors are the
service's own (:mod:`service.errors`) under their gRPC status codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from flask import Flask
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from service.api.routed import infer_routed
from service.dataplane import DataPlane
from service.errors import NotFound, NotReady, NotSupported, ServiceError
from service.grpc import codec, metrics
from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated import grpc_service_pb2_grpc as pb_grpc
from service.grpc.generated import model_config_pb2
from service.metrics import variant_counts
from service.request_id import request_id
from service.state import plane
from service.v2 import triton
from service.v2.metadata import server_metadata

log = logging.getLogger(__name__)

M = TypeVar("M")

STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
"""The service's HTTP statuses as gRPC status codes; any other is ``INTERNAL``."""

REQUEST_ID = "x-request-id"
EXPERIMENT_UNIT = "x-experiment-unit"
EXPERIMENT_ARM = "x-experiment-arm"


def status_code(error: ServiceError) -> grpc.StatusCode:
    return STATUS.get(error.status_code, grpc.StatusCode.INTERNAL)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The V2 gRPC service of one worker, over that worker's app and data plane."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        with app.app_context():
            self.plane: DataPlane = plane()

    # --- health and metadata --------------------------------------------------------------

    def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return self._call("ServerLive", context, lambda: pb.ServerLiveResponse(live=True))

    def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        ready = self.plane.store.not_ready_reason is None
        return self._call("ServerReady", context, lambda: pb.ServerReadyResponse(ready=ready))

    def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        def ready() -> pb.ModelReadyResponse:
            try:
                self.plane.v2_variant(request.name, request.version or None)
            except (NotFound, NotReady):
                return pb.ModelReadyResponse(ready=False)  # as Triton answers: not an error
            return pb.ModelReadyResponse(ready=True)

        return self._call("ModelReady", context, ready, request.name)

    def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        return self._call(
            "ServerMetadata",
            context,
            lambda: _parse(server_metadata(), pb.ServerMetadataResponse()),
        )

    def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        def metadata() -> pb.ModelMetadataResponse:
            described = self.plane.v2_metadata(request.name, request.version or None)
            return _parse(described, pb.ModelMetadataResponse())

        return self._call("ModelMetadata", context, metadata, request.name)

    # --- Triton's extensions --------------------------------------------------------------

    def ModelConfig(self, request: pb.ModelConfigRequest, context: Any) -> pb.ModelConfigResponse:
        def config() -> pb.ModelConfigResponse:
            loaded = self.plane.v2_variant(request.name, request.version or None)
            settings = self.plane.settings
            batching = None
            if settings.batch_max_size > 1:
                batching = (settings.batch_max_size, settings.batch_max_wait_ms)
            shape = triton.model_config(loaded, settings.max_batch, batching)
            parsed = _parse(shape, model_config_pb2.ModelConfig())
            return pb.ModelConfigResponse(config=parsed)

        return self._call("ModelConfig", context, config, request.name)

    def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Any
    ) -> pb.ModelStatisticsResponse:
        def statistics() -> pb.ModelStatisticsResponse:
            variants = self.plane.v2_variants(request.name or None, request.version or None)
            shape = triton.model_statistics(variants, variant_counts())
            return _parse(shape, pb.ModelStatisticsResponse())

        return self._call("ModelStatistics", context, statistics, request.name)

    def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        def index() -> pb.RepositoryIndexResponse:
            store = self.plane.store
            entries = triton.repository_index(
                self.plane.served_versions(), store.unavailable, request.ready, store.load_failures
            )
            return _parse({"models": entries}, pb.RepositoryIndexResponse())

        return self._call("RepositoryIndex", context, index)

    def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        return self._call("RepositoryModelLoad", context, _not_supported)

    def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        return self._call("RepositoryModelUnload", context, _not_supported)

    # --- inference ------------------------------------------------------------------------

    def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        metadata = dict(context.invocation_metadata())
        rid = request_id(metadata.get(REQUEST_ID))
        answered: dict[str, Any] = {}

        def infer() -> pb.ModelInferResponse:
            name, version = request.model_name, request.model_version or None
            self.plane.v2_variant(name, version)  # an unknown model is named before the body
            inference, chunks = codec.read_request(request)
            if inference.id is None:  # every answer carries an id: the request's
                inference = inference.model_copy(update={"id": rid})
            if (inference.parameters or {}).get("experiment") is not None:
                result, route = infer_routed(
                    name, inference, chunks, metadata.get(EXPERIMENT_UNIT), rid
                )
                answered["variant"] = route.arm.variant
                context.set_trailing_metadata(((REQUEST_ID, rid), (EXPERIMENT_ARM, route.arm.name)))
            else:
                result = self.plane.infer(name, version, inference, chunks)
            answered["images"] = result.images
            raw = bool(request.raw_input_contents) or any(o.binary for o in result.outputs)
            return codec.write_response(result, raw)

        context.set_trailing_metadata(((REQUEST_ID, rid),))
        return self._call("ModelInfer", context, infer, request.model_name, answered)

    # --- one way through ------------------------------------------------------------------

    def _call(
        self,
        method: str,
        context: Any,
        work: Callable[[], M],
        name: str = "",
        answered: dict[str, Any] | None = None,
    ) -> M:
        """Run ``work`` in the app's context; count it, and turn an error into its status."""
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        message = ""
        try:
            with self.app.app_context():
                return work()
        except ServiceError as exc:
            code, message = status_code(exc), exc.message
        except Exception:
            log.exception("unhandled error in gRPC %s", method)
            code, message = grpc.StatusCode.INTERNAL, "internal server error"
        finally:
            model, variant = metrics.labels(name, self.plane.store.models)
            answered = answered or {}
            if "variant" in answered and model not in ("", "unknown"):
                variant = answered["variant"]  # an experiment chose it
            seconds = time.perf_counter() - start
            metrics.observe(method, model, variant, code.name, seconds, answered.get("images", 0))
        context.abort(code, message)
        raise AssertionError("context.abort returns only by raising")


def _parse(shape: Any, message: M) -> M:
    """``message`` filled from the REST answer's JSON shape (the same field names)."""
    json_format.ParseDict(shape, message)
    return message


def _not_supported() -> Any:
    raise NotSupported(triton.LOADING_NOT_SUPPORTED)


@dataclass(frozen=True)
class _Malformed:
    """What a request's bytes became when they were not the message they had to be."""

    message: str
    reason: str


def _lenient(message: type[Message]) -> Callable[[bytes], Message | _Malformed]:
    """A deserializer that lets the method answer bytes it cannot parse, instead of gRPC's
    bare ``INTERNAL`` ("Exception deserializing request!")."""

    def parse(data: bytes) -> Message | _Malformed:
        try:
            return message.FromString(data)
        except DecodeError as exc:
            return _Malformed(message.DESCRIPTOR.full_name, str(exc))

    return parse


def _checked(method: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def call(request: Any, context: Any) -> Any:
        if isinstance(request, _Malformed):
            metrics.observe(method, "", "", grpc.StatusCode.INVALID_ARGUMENT.name, 0.0)
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {request.message} message ({request.reason})",
            )
        return handler(request, context)

    return call


def add_to_server(servicer: InferenceServicer, server: grpc.Server) -> None:
    """Register every unary method of the service; the streaming one is not offered, so gRPC
    answers it ``UNIMPLEMENTED``, as it does the methods the servicer leaves to its base."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        if method.client_streaming or method.server_streaming:
            continue
        request = getattr(pb, method.input_type.name)
        response = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _checked(method.name, getattr(servicer, method.name)),
            request_deserializer=_lenient(request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(metrics.SERVICE, handlers),)
    )
