"""Hostile gRPC messages against the real server: oversized, compressed past the limit, not
protobuf at all, or well-formed with tensors that do not add up. Each gets a clear status
naming what is wrong, no worker dies, no traceback is logged, and good requests sent in
between are all answered."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from tests.adversarial.conftest import PRODUCTION, Server
from tests.builders import write_repository
from tests.server import grpc_address, running_server

pytestmark = pytest.mark.system

LIMIT = 64 * 1024
"""The server's ``max_body_bytes`` here: small, so that oversized messages stay cheap."""

MODEL = "tiny-pretrained"
INFER = "/inference.GRPCInferenceService/ModelInfer"
PIXELS = np.random.default_rng(3).integers(0, 256, (2, 1, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    repo = write_repository(tmp_path_factory.mktemp("grpc-repo"))
    log = tmp_path_factory.mktemp("grpc-log") / "gunicorn.log"
    env = {**PRODUCTION, "HEADSTART_MAX_BODY_BYTES": str(LIMIT), "HEADSTART_MAX_BATCH": "16"}
    with running_server(repo, env, log_path=log) as url:
        yield Server(url, log), grpc_address(log)


@pytest.fixture
def channel(server: tuple[Server, str]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server[1], options=[("grpc.max_send_message_length", -1)]) as ch:
        yield ch


def _request(pixels: np.ndarray = PIXELS, **fields: object) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="image", datatype="UINT8", shape=list(pixels.shape)
    )
    request = pb.ModelInferRequest(model_name=MODEL, inputs=[tensor], **fields)
    request.raw_input_contents.append(pixels.tobytes())
    return request


def _good(channel: grpc.Channel) -> None:
    answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_request(), timeout=60)
    probabilities = np.frombuffer(answer.raw_output_contents[0], dtype=np.float32)
    assert probabilities.shape == (2 * 10,)


def _refused(call: Callable[[], object], code: grpc.StatusCode, *phrases: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert error.code() == code, error.details()
    for phrase in phrases:
        assert phrase in error.details()


def _contents(datatype: str, shape: list[int], **contents: list) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype=datatype, shape=shape)
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    return pb.ModelInferRequest(model_name=MODEL, inputs=[tensor])


def _raw(pixels_bytes: bytes, shape: list[int], count: int = 1) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="UINT8", shape=shape)
    request = pb.ModelInferRequest(model_name=MODEL, inputs=[tensor])
    request.raw_input_contents.extend([pixels_bytes] * count)
    return request


MALFORMED: list[tuple[str, pb.ModelInferRequest, str]] = [
    ("raw bytes short", _raw(PIXELS.tobytes()[:-1], [2, 1, 28, 28]), "takes 1568"),
    ("two raw entries", _raw(PIXELS.tobytes(), [2, 1, 28, 28], count=2), "2 entries for 1 inputs"),
    ("no data", _contents("UINT8", [1, 1, 28, 28]), "has no data"),
    (
        "wrong contents",
        _contents("UINT8", [1, 1, 28, 28], fp32_contents=[0.0] * 784),
        "uint_contents",
    ),
    ("out of range", _contents("UINT8", [1, 1, 28, 28], uint_contents=[300] * 784), "0..255"),
    ("count mismatch", _contents("UINT8", [1, 1, 28, 28], uint_contents=[1, 2, 3]), "holds 784"),
    ("FP16 contents", _contents("FP16", [1, 1, 28, 28], fp32_contents=[0.0]), "FP16"),
    ("negative shape", _contents("UINT8", [-1, 1, 28, 28], uint_contents=[0]), "shape"),
    ("huge shape", _contents("UINT8", [2**40, 1, 28, 28], uint_contents=[0]), "shape"),
    ("wrong datatype", _contents("FP32", [1, 1, 28, 28], fp32_contents=[0.0] * 784), "UINT8"),
    ("unknown input", pb.ModelInferRequest(model_name=MODEL), "missing input 'image'"),
]


@pytest.mark.parametrize(("case", "request_", "phrase"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_tensors_that_do_not_add_up_are_invalid_argument(
    channel: grpc.Channel, case: str, request_: pb.ModelInferRequest, phrase: str
) -> None:
    infer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer
    _refused(lambda: infer(request_, timeout=60), grpc.StatusCode.INVALID_ARGUMENT, phrase)
    _good(channel)


def test_bytes_that_are_not_protobuf_are_invalid_argument(channel: grpc.Channel) -> None:
    send = channel.unary_unary(INFER)  # no serializer: the bytes go as they are
    _refused(
        lambda: send(b"\xff\xff\xff\xff not a message", timeout=60),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a valid inference.ModelInferRequest message",
    )
    _good(channel)


def test_oversized_and_bombs_are_resource_exhausted(channel: grpc.Channel) -> None:
    infer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer
    big = np.zeros((128, 1, 28, 28), dtype=np.uint8)  # 100 KB, over the 64 KiB limit
    _refused(lambda: infer(_request(big), timeout=60), grpc.StatusCode.RESOURCE_EXHAUSTED)
    # 1.5 MB of zeros gzip to a few KB: the limit holds after decompression too.
    bomb = np.zeros((2000, 1, 28, 28), dtype=np.uint8)
    _refused(
        lambda: infer(_request(bomb), timeout=60, compression=grpc.Compression.Gzip),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    # Under the message limit but over max_batch images.
    many = np.zeros((20, 1, 28, 28), dtype=np.uint8)
    _refused(
        lambda: infer(_request(many), timeout=60),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "over the limit of 16",
    )
    _good(channel)


def test_nothing_is_lost_while_attacks_run(
    server: tuple[Server, str], channel: grpc.Channel
) -> None:
    running, address = server
    workers = running.workers()
    failures: list[str] = []
    answered = [0]

    def steady() -> None:
        with grpc.insecure_channel(address) as own:
            for _ in range(40):
                try:
                    _good(own)
                    answered[0] += 1
                except (grpc.RpcError, AssertionError) as exc:
                    failures.append(repr(exc))

    client = threading.Thread(target=steady)
    client.start()
    infer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer
    raw = channel.unary_unary(INFER)
    for _ in range(5):
        for _, request, _ in MALFORMED:
            with pytest.raises(grpc.RpcError):
                infer(request, timeout=60)
        with pytest.raises(grpc.RpcError):
            raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=60)
    client.join(timeout=300)
    assert not client.is_alive()
    assert failures == []
    assert answered[0] == 40
    assert running.workers() == workers  # no worker died or was replaced
    log = Path(running.log).read_text()
    assert "Traceback" not in log
