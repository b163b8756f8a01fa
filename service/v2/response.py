"""An inference result as the HTTP response the protocol asks for: JSON, or JSON and binary."""

from __future__ import annotations

from flask import Response

from service.v2 import codec
from service.v2.inference import InferenceResult


def inference_response(result: InferenceResult) -> Response:
    """JSON alone, or the JSON header followed by binary tensors with its length in a header."""
    body, header_length = codec.encode_response(result.header, result.outputs)
    if header_length is None:
        return Response(body, mimetype="application/json")
    response = Response(body, mimetype="application/octet-stream")
    response.headers[codec.HEADER_LENGTH] = str(header_length)
    return response
