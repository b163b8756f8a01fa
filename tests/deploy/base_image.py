"""A Python base image made from Debian's packages, for building the project's image offline.

The test machines reach package registries but no container registry, so the
``PYTHON_IMAGE`` the Dockerfile starts from is made here: ``debootstrap`` of
this machine's Debian release with Python 3.11 and venv, imported into podman.
The root file system is kept as a tarball under ``~/.cache/headstart`` (or
``$XDG_CACHE_HOME/headstart``), named by a digest of everything that goes into
it (release, mirror, packages, this recipe), so a later run imports it again
instead of bootstrapping; a change to any of them makes a new one. By hand::

    python -m tests.deploy.base_image        # prints the image's name
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
# python-is-python3: the Dockerfile runs `python`, as the official python images name it.
PACKAGES = ("python3.11", "python3.11-venv", "python-is-python3", "ca-certificates")
RECIPE_VERSION = 1  # raise when the steps below change what the image holds


def release() -> str:
    """This machine's Debian release code name, from /etc/os-release."""
    fields = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    codename = fields.get("VERSION_CODENAME", "").strip('"')
    if fields.get("ID", "").strip('"') != "debian" or not codename:
        raise RuntimeError("the base image is bootstrapped from Debian: this is not Debian")
    return codename


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "headstart" / "base-images"


def digest(codename: str) -> str:
    """What the root file system is made of, as 12 hex digits."""
    recipe = f"{RECIPE_VERSION} {codename} {MIRROR} {' '.join(sorted(PACKAGES))}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result  # type: ignore[no-any-return]


def _bootstrap(codename: str, tarball: Path) -> None:
    """debootstrap the root file system and pack it as ``tarball`` (atomically)."""
    with tempfile.TemporaryDirectory(prefix="headstart-rootfs-", dir=tarball.parent) as work:
        rootfs = Path(work) / "rootfs"
        _run(["debootstrap", "--variant=minbase", codename, str(rootfs), MIRROR])
        # apt's resolver, not debootstrap's, installs Python: it follows every dependency.
        shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
        chroot = ["chroot", str(rootfs)]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"}
        _run([*chroot, "apt-get", "update", "-qq"], env=env)
        _run(
            [*chroot, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
            env=env,
        )
        # What an image need not carry: package lists, the download cache, the host's DNS.
        _run([*chroot, "apt-get", "clean"], env=env)
        shutil.rmtree(rootfs / "var/lib/apt/lists")
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        (rootfs / "etc/resolv.conf").unlink()
        partial = Path(work) / "rootfs.tar"
        _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."])
        partial.rename(tarball)


def ensure(podman: str, debootstrap_found: bool = True) -> str:
    """The name of the base image in podman's storage, made or imported as needed."""
    codename = release()
    key = digest(codename)
    name = f"localhost/headstart-python:3.11-{codename}-{key}"
    if _run([podman, "images", "--quiet", name]).stdout.strip():
        return name
    tarball = cache_dir() / f"python3.11-{codename}-{key}.tar"
    if not tarball.is_file():
        if not debootstrap_found:
            raise RuntimeError(f"no cached {tarball} and no debootstrap to make it")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        _bootstrap(codename, tarball)
    _run(
        [
            podman,
            "import",
            "--change",
            'CMD ["python3"]',
            "--change",
            "ENV LANG=C.UTF-8",
            str(tarball),
            name,
        ]
    )
    return name


def main() -> int:
    began = time.monotonic()
    print(ensure("podman"))
    print(f"ready in {time.monotonic() - began:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
