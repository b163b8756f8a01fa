"""The stack's floor: the least Flask + onnxruntime code that serves the same model.

Run by the benchmark as ``gunicorn -k gthread -w W --threads T
'benchmarks.minimal_app:create_app()'`` with ``BENCH_MODEL_DIR=<repository>/<model>``.
It trusts its input (28x28 greyscale PNGs, or raw uint8 tensors), so it skips
everything headstart does for a real client: content negotiation, validation,
resizing and polarity, error bodies, metrics, request ids and access logs.
With ``BENCH_FRAMING=1`` it frames every decoded image as the service does
(:func:`service.decode.lay_out` for an MNIST-framed model: the polarity check, and
:mod:`service.framing` unless the digit is framed already), the framed floor: what
framing costs, apart from the rest of the stack.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from numpy.typing import NDArray
from PIL import Image

from service.decode import DecodeOptions, lay_out
from service.manifest import MNIST_FRAMING, InputSpec

_FRAMED = InputSpec(channels=1, height=28, width=28, framing=MNIST_FRAMING)
_OPTIONS = DecodeOptions()


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _images(framed: bool) -> NDArray[np.uint8]:
    if request.mimetype == "multipart/form-data":
        parts = [f.read() for f in request.files.getlist("image")]
    else:
        parts = [request.get_data()]
    pixels = [np.asarray(Image.open(io.BytesIO(p)).convert("L")) for p in parts]
    if framed:
        return np.stack([lay_out(image, _FRAMED, _OPTIONS)[0] for image in pixels])
    return np.stack([image[None] for image in pixels])


def create_app() -> Flask:
    """One session per variant of ``$BENCH_MODEL_DIR``; bare routes."""
    directory = Path(os.environ["BENCH_MODEL_DIR"])
    threads = int(os.environ.get("BENCH_ORT_THREADS", "1"))
    sessions = {
        variant: _session(directory / variant / "model.onnx", threads)
        for variant in ("pretrained", "baseline")
        if (directory / variant / "model.onnx").is_file()
    }
    first = sessions["pretrained"]
    framed = os.environ.get("BENCH_FRAMING") == "1"
    app = Flask(__name__)

    @app.get("/health")
    def health() -> ResponseReturnValue:
        return "ok"

    @app.post("/classify")
    def classify() -> ResponseReturnValue:
        (probabilities,) = first.run(["probabilities"], {"image": _images(framed)})
        best = probabilities.argmax(axis=1)
        return jsonify(
            predictions=[
                {"class_index": int(c), "probability": float(row[c]), "probabilities": row.tolist()}
                for c, row in zip(best, probabilities, strict=True)
            ]
        )

    @app.post("/embed")
    def embed() -> ResponseReturnValue:
        (vectors,) = first.run(["embedding"], {"image": _images(framed)})
        return jsonify(embeddings=vectors.tolist())

    @app.post("/compare")
    def compare() -> ResponseReturnValue:
        images = _images(framed)
        (a,) = first.run(["probabilities"], {"image": images})
        (b,) = sessions["baseline"].run(["probabilities"], {"image": images})
        return jsonify(
            pretrained=a.argmax(axis=1).tolist(),
            baseline=b.argmax(axis=1).tolist(),
            agree=(a.argmax(axis=1) == b.argmax(axis=1)).tolist(),
        )

    @app.post("/infer")
    def infer() -> ResponseReturnValue:
        # Raw uint8 pixels in, raw float32 probabilities out: the binary-tensor path's floor.
        shape = [int(v) for v in request.headers["X-Shape"].split(",")]
        images = np.frombuffer(request.get_data(), dtype=np.uint8).reshape(shape)
        (probabilities,) = first.run(["probabilities"], {"image": images})
        return Response(probabilities.astype("<f4").tobytes(), mimetype="application/octet-stream")

    return app
