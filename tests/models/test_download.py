"""``download:`` against a real HTTP server on loopback that serves IDX files the test wrote."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from models import download
from models.data import ImageSet
from models.errors import DataError
from models.sources import load_dataset
from tests.models.helpers import idx_bytes


class Mirror:
    """Serves ``files`` by name and counts the requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                mirror.requests.append(name)
                body = mirror.files.get(name)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/data/"

    def md5s(self) -> dict[str, str]:
        import hashlib

        return {n: hashlib.md5(b, usedforsecurity=False).hexdigest() for n, b in self.files.items()}


@pytest.fixture
def mirror(digits300: ImageSet) -> Iterator[Mirror]:
    m = Mirror()
    half = len(digits300) // 2
    for prefix, part in (("train", slice(0, half)), ("t10k", slice(half, None))):
        m.files[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(
            idx_bytes(digits300.images[part, 0]), mtime=0
        )
        m.files[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(
            idx_bytes(digits300.labels[part].astype(np.uint8)), mtime=0
        )
    thread = threading.Thread(
        target=m.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield m
    m.server.shutdown()
    m.server.server_close()
    thread.join()


def test_fetch_verifies_checksums_and_reuses_the_cache(tmp_path: Path, mirror: Mirror) -> None:
    folder = download.fetch("kmnist", tmp_path, base_url=mirror.url, md5=mirror.md5s())
    assert sorted(p.name for p in folder.iterdir()) == sorted(mirror.files)
    assert len(mirror.requests) == 4
    download.fetch("kmnist", tmp_path, base_url=mirror.url, md5=mirror.md5s())
    assert len(mirror.requests) == 4  # verified copies are not fetched again


def test_checksum_mismatch_names_the_url_and_keeps_nothing(tmp_path: Path, mirror: Mirror) -> None:
    sums = mirror.md5s()
    sums["t10k-images-idx3-ubyte.gz"] = "0" * 32
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: checksum mismatch"):
        download.fetch("mnist", tmp_path, base_url=mirror.url, md5=sums)
    assert not (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").exists()
    assert not list((tmp_path / "mnist").glob("*.part"))


def test_missing_file_on_the_mirror_is_clear(tmp_path: Path, mirror: Mirror) -> None:
    del mirror.files["train-labels-idx1-ubyte.gz"]
    with pytest.raises(DataError, match=r"cannot download .*train-labels-idx1-ubyte.gz: HTTP"):
        download.fetch("mnist", tmp_path, base_url=mirror.url, md5=mirror.md5s())


def test_download_spec_loads_through_the_mirror(
    tmp_path: Path, mirror: Mirror, digits300: ImageSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = download.REMOTES["fashion-mnist"]
    monkeypatch.setitem(
        download.REMOTES,
        "fashion-mnist",
        download.Remote(remote.base_url, mirror.md5s(), remote.class_names),
    )
    monkeypatch.setenv("HEADSTART_DATA_MIRROR", mirror.url)
    data = load_dataset("download:fashion-mnist", cache=tmp_path)
    assert data.name == "download:fashion-mnist"
    assert data.class_names[0] == "T-shirt/top"
    assert np.array_equal(data.images, digits300.images)


def test_canonical_checksums_reject_other_files(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADSTART_DATA_MIRROR", mirror.url)
    with pytest.raises(
        DataError, match=r"checksum mismatch .* expected f68b3c2dcbeaaa9fbdd348bbdeb94873"
    ):
        load_dataset("download:mnist", cache=tmp_path)
