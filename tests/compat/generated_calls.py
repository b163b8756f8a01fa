"""Calls through a client generated from /openapi.json by openapi-python-client.

Usage: python generated_calls.py BASE_URL IMAGE.png PIXELS.raw OUT.json, with the generated package
``headstart_client`` on ``PYTHONPATH``. Run by the generator's virtualenv (it has httpx and
attrs, which the generated code needs); writes what each call returned.
"""

import base64
import json
import sys

from headstart_client import Client
from headstart_client.api.operations import get_health_ready
from headstart_client.api.v1 import get_v1_models, post_v1_models_model_classify
from headstart_client.api.v2 import (
    get_v2,
    get_v2_models_name,
    get_v2_models_name_config,
    get_v2_models_stats,
    post_v2_models_name_infer,
    post_v2_repository_index,
)
from headstart_client.models import (
    ImagesRequest,
    InferenceRequest,
    InferenceResponse,
    RepositoryIndexRequest,
    RequestInput,
    RequestOutput,
)
from headstart_client.models.post_v1_models_model_classify_invert import (
    PostV1ModelsModelClassifyInvert,
)


def main(base: str, image: bytes, raw: bytes) -> dict:
    """``image`` is a PNG of one 28x28 digit; ``raw`` its pixels, row by row."""
    client = Client(base_url=base, raise_on_unexpected_status=True, timeout=30)
    out = {}
    out["server"] = get_v2.sync(client=client).to_dict()
    out["ready"] = get_health_ready.sync(client=client).to_dict()
    out["models"] = [m.name for m in get_v1_models.sync(client=client).models]
    classified = post_v1_models_model_classify.sync(
        "tiny",
        client=client,
        body=ImagesRequest(images=[base64.b64encode(image).decode()]),
        variant="baseline",
        top_k=3,
        invert=PostV1ModelsModelClassifyInvert.FALSE,
    )
    out["classify"] = classified.to_dict()
    pixels = list(raw)
    inferred = post_v2_models_name_infer.sync(
        "tiny-baseline",
        client=client,
        body=InferenceRequest(
            inputs=[
                RequestInput(name="image", datatype="UINT8", shape=[1, 1, 28, 28], data=pixels)
            ],
            outputs=[RequestOutput(name="probabilities")],
            id="generated",
        ),
    )
    assert isinstance(inferred, InferenceResponse), inferred
    out["infer"] = inferred.to_dict()
    out["config"] = get_v2_models_name_config.sync("tiny-baseline", client=client).to_dict()
    out["stats"] = get_v2_models_stats.sync(client=client).to_dict()
    index = post_v2_repository_index.sync(client=client, body=RepositoryIndexRequest(ready=True))
    out["index"] = [entry.to_dict() for entry in index]
    out["unknown"] = get_v2_models_name.sync("tiny-distilled", client=client).to_dict()
    return out


if __name__ == "__main__":
    base_url, png_path, raw_path, target = sys.argv[1:5]
    with open(png_path, "rb") as png, open(raw_path, "rb") as raw_pixels:
        result = main(base_url, png.read(), raw_pixels.read())
    with open(target, "w", encoding="utf-8") as sink:
        json.dump(result, sink)
