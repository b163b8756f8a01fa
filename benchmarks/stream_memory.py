"""Peak memory of ``headstart build`` on generated image folders of two sizes.

    python -m benchmarks.stream_memory --sizes 5000,100000 --workdir /tmp/stream

For each size it writes a ``folder:`` data set of 28x28 PNGs (MNIST-5k's 5,000 images, each
encoded once and its bytes written again and again, so generating 100k files takes seconds),
runs ``headstart build --quick`` on it in a child process, and reports the child's peak
resident set size (the largest process of its tree, DataLoader workers included) and wall time.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def generate(root: Path, count: int) -> None:
    """``count`` PNGs under ``root/<digit>/``, cycling through MNIST-5k's images."""
    from PIL import Image

    from models.sources import load_dataset

    data = load_dataset("mnist-5k")
    # mnist-5k is sorted by class; a fixed shuffle puts every class in any prefix.
    order = np.random.default_rng(0).permutation(len(data))
    encoded, labels = [], data.labels[order]
    for image in data.images[order, 0]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    for name in data.class_names:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        j = i % len(encoded)
        (root / data.class_names[labels[j]] / f"{i:07d}.png").write_bytes(encoded[j])


def measure(dataset: Path, repository: Path, extra: list[str]) -> tuple[float, float]:
    """Peak RSS (MiB) and wall seconds of one ``headstart build --quick`` on ``dataset``."""
    command = [
        sys.executable, "-m", "scripts.cli", "build", "--quick", "--device", "cpu",
        "--dataset", f"folder:{dataset}", "--model-repository", str(repository), *extra,
    ]  # fmt: skip
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    # wait4's ru_maxrss: the high-water mark of this child and of every descendant it reaped
    # (its DataLoader workers), in KiB on Linux.
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} exited with {child.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,100000", help="images per data set")
    parser.add_argument("--workdir", type=Path, required=True, help="where the folders go")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    parser.add_argument("build_args", nargs="*", help="extra 'headstart build' options")
    args = parser.parse_args()
    print("| images | peak RSS (MiB) | build wall time (s) |")
    print("|---:|---:|---:|")
    for count in (int(v) for v in args.sizes.split(",")):
        root = args.workdir / f"images-{count}"
        shutil.rmtree(root, ignore_errors=True)
        generate(root, count)
        peak, seconds = measure(root, args.workdir / f"repository-{count}", args.build_args)
        print(f"| {count:,} | {peak:.0f} | {seconds:.0f} |", flush=True)
        if not args.keep:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
