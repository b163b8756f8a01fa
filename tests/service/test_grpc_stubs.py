"""The committed gRPC modules are what the committed .proto files generate, and those .proto
files describe the protocol exactly as Triton's client has it."""

from __future__ import annotations

import pytest

from tests.system import in_ci


def test_generated_modules_match_the_protos() -> None:
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        message = "grpcio-tools is not installed (the dev extra has it)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from service.grpc.generate import differences

    assert differences() == [], "run: python -m service.grpc.generate"


def test_the_protos_are_tritons() -> None:
    from tritonclient.grpc import model_config_pb2, service_pb2

    from service.grpc.generated import grpc_service_pb2
    from service.grpc.generated import model_config_pb2 as ours

    assert grpc_service_pb2.DESCRIPTOR.serialized_pb == service_pb2.DESCRIPTOR.serialized_pb
    assert ours.DESCRIPTOR.serialized_pb == model_config_pb2.DESCRIPTOR.serialized_pb
