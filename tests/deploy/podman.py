"""Build and run the project's image with podman, the way the README tells a user to.

What this machine needs, found when the image was first run here, and passed on
every call: the ``runc`` runtime (podman's default, crun, may refuse a host's
cgroup set-up), per-container limits the host lets root set (podman's defaults
for open files and processes may be above them), host networking (containers
talk on loopback only), Docker's image format (OCI images drop HEALTHCHECK),
wheels and the host's CA bundle for pip inside the build.
"""

from __future__ import annotations

import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.dockerfile import ROOT

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Far below any host's limit, far above what the service uses (two workers, a few threads).
PROCESS_LIMIT = 4096


@dataclass(frozen=True)
class Podman:
    """One podman program and the options every call of it needs here."""

    program: str

    def command(self, *args: str) -> list[str]:
        return [self.program, "--runtime", "runc", *args]

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
        return result

    def build(
        self, tag: str, base_image: str, wheels: Path, *options: str, timeout: float = 900
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        """``podman build`` of the project's Dockerfile; the result and its seconds."""
        secret = [f"--secret=id=ca-bundle,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
        args = [
            "build",
            "--format=docker",
            "--network=host",
            f"--build-arg=PYTHON_IMAGE={base_image}",
            f"--build-context=wheels={wheels}",
            # Torch's CPU wheel is among the wheels; its own index is not reachable here.
            "--build-arg=TORCH_INDEX_URL=",
            *secret,
            *options,
            f"--tag={tag}",
            str(ROOT),
        ]
        began = time.monotonic()
        result = self.run(*args, check=False, timeout=timeout)
        return result, time.monotonic() - began

    def limits(self) -> list[str]:
        """``--ulimit`` options within what this host lets root set."""
        _, files = resource.getrlimit(resource.RLIMIT_NOFILE)
        files = min(files, 65536) if files != resource.RLIM_INFINITY else 65536
        return [
            f"--ulimit=nofile={files}:{files}",
            f"--ulimit=nproc={PROCESS_LIMIT}:{PROCESS_LIMIT}",
        ]

    def start(self, name: str, image: str, port: int, *options: str) -> None:
        """Run ``image`` detached as ``name``, serving on 127.0.0.1:``port`` (host network)."""
        self.run("rm", "--force", "--ignore", name)
        self.run(
            "run",
            "--detach",
            f"--name={name}",
            "--network=host",
            *self.limits(),
            "--env=HEADSTART_HOST=127.0.0.1",
            f"--env=HEADSTART_PORT={port}",
            # Host networking: gRPC takes any free port rather than the shared 8001.
            "--env=HEADSTART_GRPC_PORT=0",
            *options,
            image,
        )

    def logs(self, name: str) -> str:
        result = self.run("logs", name, check=False)
        return result.stdout + result.stderr

    def pid1_uid(self, name: str) -> int:
        """The real uid of the container's PID 1, the server itself."""
        status = self.run("exec", name, "cat", "/proc/1/status").stdout
        line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        return int(line.split()[1])

    def size(self, image: str) -> int:
        return int(self.run("image", "inspect", "--format={{.Size}}", image).stdout.strip())
