"""Where one request's time goes, stage by stage, in-process: ``python -m benchmarks.breakdown``.

Times each stage of a classify request with the service's own functions on the
benchmark's images (one PNG, and 64 PNGs as multipart and as JSON): parsing the
body, decoding the images, the ONNX Runtime call, turning probabilities into
the response, JSON encoding, and the whole request through the Flask app
without HTTP; then framing alone, on digits as clients send them (their outer
ring flat or not, PNG or JPEG) and on photos of a page. Each figure is the best of several repeats, so it is the cost of
the work, not of the machine's other load.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import report, scenarios


def best_ms(work: Callable[[], object], seconds: float) -> float:
    """Best mean time of ``work`` over five repeats of about ``seconds / 5`` each, in ms."""
    work()
    began = time.perf_counter()
    work()
    once = max(time.perf_counter() - began, 1e-6)
    number = max(1, int(seconds / 5 / once))
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(number):
            work()
        best = min(best, (time.perf_counter() - began) / number)
    return best * 1000


def _environ(path: str, body: bytes, content_type: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def breakdown(repository: Path, seconds: float) -> list[list[str]]:
    """One row per body form and stage: ms per request and µs per image."""
    from flask import Request, jsonify

    from service.api.payload import read_payload
    from service.app import create_app
    from service.decode import DecodeOptions, decode_batch
    from service.settings import Settings

    app = create_app(Settings(model_repository=repository))
    plane = app.extensions["headstart.plane"]
    name = min(plane.store.models)
    variant = plane.variant(name, "pretrained")
    spec = variant.manifest.input
    images = scenarios.load_images(spec)
    path = f"/v1/models/{name}/classify"
    batch_body, batch_type = scenarios.multipart(images.png)
    json_body = json.dumps({"images": [base64.b64encode(p).decode() for p in images.png]}).encode()
    forms = [
        ("1 PNG, image/png", images.png[0], "image/png", 1),
        (f"{scenarios.BATCH} PNGs, multipart", batch_body, batch_type, scenarios.BATCH),
        (f"{scenarios.BATCH} PNGs, JSON base64", json_body, "application/json", scenarios.BATCH),
    ]
    rows = []
    for label, body, content_type, count in forms:
        decoded = decode_batch(images.png[:count], spec, DecodeOptions())
        result = plane.classify(name, "pretrained", images.png[:count], DecodeOptions(), 5)

        def respond(result: dict[str, Any] = result) -> object:
            with app.app_context():
                return jsonify(result)

        def whole(body: bytes = body, content_type: str = content_type) -> object:
            out = app(_environ(path, body, content_type), _start_response)
            data = b"".join(out)
            out.close()  # type: ignore[attr-defined]
            return data

        def parse(body: bytes = body, content_type: str = content_type) -> object:
            request = Request(_environ(path, body, content_type))
            try:
                return read_payload(request, 1024).images
            finally:
                request.close()  # the multipart parser's spooled files

        stages: dict[str, Callable[[], object]] = {
            "parse the body": parse,
            "decode the images": partial(decode_batch, images.png[:count], spec, DecodeOptions()),
            "ONNX Runtime run": partial(plane.run, variant, decoded, ("probabilities",)),
            "run + top-k result": partial(_run_and_rank, plane, variant, decoded),
            "JSON response": respond,
            "whole request (Flask, no HTTP)": whole,
        }
        for stage, work in stages.items():
            ms = best_ms(work, seconds)
            rows.append([label, stage, f"{ms:.3f}", f"{ms * 1000 / count:.1f}"])
    return rows


def framing(seconds: float, count: int = 50) -> list[list[str]]:
    """What framing (with its polarity check and blank verdict) costs per decoded picture, as
    the service frames it, on MNIST digits whose outer ring is exactly flat, on those whose
    strokes reach into it, on the same digits JPEG'd (no pixel of the background exactly flat),
    on the digits moved two pixels off centre, and on 800x600 photos of a page."""
    import numpy as np
    from PIL import Image

    from benchmarks.realistic_digits import Look, on_page
    from service.decode import DecodeOptions, lay_out
    from service.manifest import MNIST_FRAMING, InputSpec

    spec = InputSpec(channels=1, height=28, width=28)
    framed = InputSpec(channels=1, height=28, width=28, framing=MNIST_FRAMING)
    options = DecodeOptions()
    digits = [np.asarray(Image.open(io.BytesIO(p))) for p in scenarios.load_images(spec, 5000).png]
    ring = max(1, 28 // 14)
    reaching = [
        bool(d[:ring].any() or d[-ring:].any() or d[:, :ring].any() or d[:, -ring:].any())
        for d in digits
    ]
    rng = np.random.default_rng(0)
    page = on_page(Look(lighting=0.45))
    pictures = {
        "28x28 digit, ring flat": [d for d, r in zip(digits, reaching, strict=True) if not r],
        "28x28 digit, ink in the ring": [d for d, r in zip(digits, reaching, strict=True) if r],
        "28x28 digit, JPEG": [_jpeg(d) for d in digits],
        "28x28 digit, off centre": [np.roll(d, 2, axis=1) for d in digits],
        "800x600 photo, unevenly lit": [
            255 - np.asarray(Image.open(io.BytesIO(page(d, rng))).convert("L")) for d in digits[:10]
        ],
    }
    rows = []
    for label, found in pictures.items():
        chosen = found[:: max(1, len(found) // count)][:count]  # every class, not the first

        def work(chosen: list[Any] = chosen) -> None:
            for picture in chosen:
                lay_out(picture, framed, options)

        ms = best_ms(work, seconds) / len(chosen)
        rows.append([label, str(len(chosen)), f"{ms * 1000:.1f}"])
    return rows


def _jpeg(digit: Any) -> Any:
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, "JPEG", quality=75)
    return np.asarray(Image.open(buffer))


def _run_and_rank(plane: Any, variant: Any, decoded: Any) -> object:
    from service import results

    probabilities = plane.run(variant, decoded, ("probabilities",))["probabilities"]
    return results.classification(variant.manifest, probabilities, 5, decoded)


def main(argv: list[str] | None = None) -> int:
    """Print the breakdown table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__)
    parser.add_argument("--model-repository", type=Path, required=True, metavar="DIR")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per stage (default: 1)")
    args = parser.parse_args(argv)
    # Metrics as under gunicorn: one file per process, in a directory of their own.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="headstart-"))
    rows = breakdown(args.model_repository, args.seconds)
    print(report.table(["request", "stage", "ms/request", "µs/image"], rows))
    print()
    print(
        report.table(["framing + blank verdict", "pictures", "µs/picture"], framing(args.seconds))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
