"""Fetch canonical IDX data sets into a cache folder and verify their published checksums."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from models.errors import DataError

log = logging.getLogger(__name__)

FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclass(frozen=True)
class Remote:
    """One downloadable data set: where it lives, its files' MD5s and its class names."""

    base_url: str
    md5: dict[str, str]
    class_names: tuple[str, ...]


# The checksums are the ones the data sets' authors publish (and torchvision verifies).
REMOTES: dict[str, Remote] = {
    "mnist": Remote(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        dict(
            zip(
                FILES,
                (
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ),
                strict=True,
            )
        ),
        tuple(str(i) for i in range(10)),
    ),
    "fashion-mnist": Remote(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        dict(
            zip(
                FILES,
                (
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ),
                strict=True,
            )
        ),
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
    "kmnist": Remote(
        "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        dict(
            zip(
                FILES,
                (
                    "bdb82020997e1d708af4cf47b453dcf7",
                    "e144d726b3acfaa3e44228e80efcd344",
                    "5c965bf0a639b31b8f53240b1b52f4d7",
                    "7320c461ea6c1c855c0b718fb2a4b134",
                ),
                strict=True,
            )
        ),
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}


def default_cache() -> Path:
    """``$HEADSTART_DATA_CACHE``, else ``~/.cache/headstart/data``."""
    env = os.environ.get("HEADSTART_DATA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "headstart" / "data"


def md5_file(path: Path) -> str:
    """Hex MD5 of a file (the checksum the data sets publish; not used for security)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    name: str,
    cache: Path | None = None,
    *,
    base_url: str | None = None,
    md5: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download data set ``name`` into ``cache/name`` unless verified copies are there.

    ``base_url`` and ``md5`` override the canonical mirror and checksums (for a local mirror).
    """
    if name not in REMOTES:
        raise DataError(f"unknown download {name!r} (known: {', '.join(REMOTES)})")
    remote = REMOTES[name]
    url = base_url or remote.base_url
    sums = md5 or remote.md5
    folder = (cache or default_cache()) / name
    folder.mkdir(parents=True, exist_ok=True)
    for filename in FILES:
        target = folder / filename
        if target.is_file() and md5_file(target) == sums[filename]:
            continue
        source = url.rstrip("/") + "/" + filename
        log.info("downloading %s", source)
        # A name of its own: shards of one sweep may fetch into one shared cache at once.
        handle, name_part = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
        os.close(handle)
        partial = Path(name_part)
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response:
                partial.write_bytes(response.read())
        except (urllib.error.URLError, OSError) as exc:
            partial.unlink(missing_ok=True)
            raise DataError(f"cannot download {source}: {exc}") from None
        actual = md5_file(partial)
        if actual != sums[filename]:
            partial.unlink(missing_ok=True)
            raise DataError(
                f"{source}: checksum mismatch (md5 {actual}, expected {sums[filename]})"
            )
        partial.replace(target)
    return folder
