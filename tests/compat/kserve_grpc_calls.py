"""Calls KServe's SDK makes against a V2 gRPC server; run by the kserve virtualenv's Python.

Usage: python kserve_grpc_calls.py HOST:PORT MODEL EXPERIMENT PIXELS.npy OUT.json. It imports
only kserve, grpc and numpy (the headstart package is not installed there) and writes what
each call returned, for the test to check. Metadata goes through KServe's own generated stub,
so KServe's copy of the protocol's messages parses the answers.
"""

import asyncio
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from kserve.protocol.infer_type import RequestedOutput


def _plain(value):
    """A parameter's value: KServe's response keeps gRPC's InferParameter messages."""
    if isinstance(value, pb.InferParameter):
        return getattr(value, value.WhichOneof("parameter_choice"))
    return value


def _tensors(response) -> dict:
    return {o.name: o.as_numpy() for o in response.outputs}


async def main(url: str, model: str, experiment: str, pixels: np.ndarray) -> dict:
    client = InferenceGRPCClient(url, timeout=30, retries=2)
    out = {
        "live": await client.is_server_live(),
        "ready": await client.is_server_ready(),
        "model_ready": await client.is_model_ready(model),
    }
    for binary in (False, True):
        image = InferInput("image", list(pixels.shape), "UINT8")
        image.set_data_from_numpy(pixels, binary_data=binary)
        request = InferRequest(
            model,
            [image],
            request_id=f"kserve-grpc-{binary}",
            request_outputs=[RequestedOutput("probabilities"), RequestedOutput("embedding")],
        )
        response = await client.infer(request)
        tensors = _tensors(response)
        out["raw" if binary else "contents"] = {
            "id": response.id,
            "model_name": response.model_name,
            "probabilities": tensors["probabilities"].tolist(),
            "embedding_shape": list(tensors["embedding"].shape),
        }
    image = InferInput("image", [1, *pixels.shape[1:]], "UINT8")
    image.set_data_from_numpy(pixels[:1], binary_data=True)
    routed = InferRequest(
        model, [image], parameters={"experiment": experiment, "unit": "kserve-user"}
    )
    response = await client.infer(routed)
    parameters = {k: _plain(v) for k, v in (response.parameters or {}).items()}
    out["routed"] = {"id": response.id, "parameters": parameters}
    try:
        await client.infer(InferRequest("tiny-none", [image]))
        out["unknown"] = None
    except grpc.RpcError as error:
        out["unknown"] = [error.code().name, error.details()]
    await client.close()
    async with grpc.aio.insecure_channel(url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        server = await stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=30)
        metadata = await stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=30)
    out["server"] = {"name": server.name, "extensions": list(server.extensions)}
    out["metadata"] = {
        "name": metadata.name,
        "inputs": [[t.name, t.datatype, list(t.shape)] for t in metadata.inputs],
        "outputs": [t.name for t in metadata.outputs],
    }
    return out


if __name__ == "__main__":
    address, name, experiment, path, target = sys.argv[1:6]
    result = asyncio.run(main(address, name, experiment, np.load(path)))
    with open(target, "w", encoding="utf-8") as sink:
        json.dump(result, sink, default=str)
