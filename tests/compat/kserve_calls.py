"""Calls KServe's SDK makes against a V2 server; run by the kserve virtualenv's Python.

Usage: python kserve_calls.py BASE_URL MODEL PIXELS.npy OUT.json. It imports only
kserve and numpy (the headstart package is not installed there) and writes what each
call returned, for the test to check.
"""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


async def main(url: str, model: str, pixels: np.ndarray) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    out = {
        "live": await client.is_server_live(url),
        "ready": await client.is_server_ready(url),
        "model_ready": await client.is_model_ready(url, model),
    }
    for binary in (False, True):
        image = InferInput("image", list(pixels.shape), "UINT8")
        image.set_data_from_numpy(pixels, binary_data=binary)
        request = InferRequest(
            model,
            [image],
            request_id=f"kserve-{binary}",
            request_outputs=[RequestedOutput("probabilities"), RequestedOutput("embedding")],
        )
        response = await client.infer(url, request, model_name=model)
        tensors = {o.name: o.as_numpy() for o in response.outputs}
        out["binary" if binary else "json"] = {
            "id": response.id,
            "model_name": response.model_name,
            "probabilities": tensors["probabilities"].tolist(),
            "embedding_shape": list(tensors["embedding"].shape),
        }
    await client.close()
    return out


if __name__ == "__main__":
    base, name, path, target = sys.argv[1:5]
    result = asyncio.run(main(base, name, np.load(path)))
    with open(target, "w", encoding="utf-8") as sink:
        json.dump(result, sink)
