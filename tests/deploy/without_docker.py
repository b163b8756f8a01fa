"""Carry out the Dockerfile's stages without Docker, under a temporary root.

No Docker engine runs on the development and test machines. This follows the
Dockerfile's own instructions for a stage and the stages it builds on or copies
from, in order: WORKDIR, ENV, ARG, COPY from the build context (filtered by
.dockerignore) or from another stage, and every RUN but ``useradd``. Absolute
image paths are moved under the root; pip takes its settings (index or
wheelhouse) from the caller's PIP_* environment.

The container smoke test uses it with a tiny model repository standing in for
the trained one. By hand, the whole image, training included::

    python -m tests.deploy.without_docker /tmp/image --models build \
        --build-arg BUILD_OPTIONS="--quick --device cpu"
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.builders import write_repository
from tests.deploy import dockerfile
from tests.deploy.dockerfile import ROOT


def stage_named(name: str) -> dockerfile.Stage:
    return next(stage for stage in dockerfile.stages() if stage.name == name)


# Absolute paths of the image, moved under the temporary root wherever they appear.
_IMAGE_PATH = re.compile(
    r"(?<![\w.-])(/opt/venv|/opt/train|/src|/srv/headstart|/models"
    r"|/wheels|/usr/local/bin/headstart-healthcheck)"
    r"(?=$|[/\s\"'])"
)


def here(text: str, root: Path) -> str:
    return _IMAGE_PATH.sub(lambda m: str(root) + m.group(1), text)


class Builder:
    """Carry out a stage's instructions under one root, the stages it copies from first."""

    def __init__(
        self, root: Path, args: dict[str, str] | None = None, *, train: bool = False
    ) -> None:
        """``args`` override build arguments; ``train`` builds the models stage for real."""
        self.root = root
        self.args = dict(args or {})
        self.train = train
        base_bin = str(Path(getattr(sys, "_base_executable", sys.executable)).parent)
        (root / "tmp").mkdir()
        keep = {"HOME", "LANG"}
        # The base image's stand-in: this machine's Python first on PATH, pip's own
        # configuration (index, wheel files) kept, nothing of the test's virtualenv.
        self.base_env = {
            **{k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in keep},
            "PATH": f"{base_bin}:/usr/local/bin:/usr/bin:/bin",
            "TMPDIR": str(root / "tmp"),
        }
        self.built: dict[str, tuple[Path, dict[str, str]]] = {}
        self.names = {stage.name for stage in dockerfile.stages()}
        self.global_args = {**dockerfile.global_args(), **self.args}

    def here(self, text: str) -> str:
        """``text`` with the image's absolute paths moved under the root."""
        return here(text, self.root)

    def build(self, name: str) -> tuple[Path, dict[str, str]]:
        """Build stage ``name``; return its working directory and environment."""
        if name in self.built:
            return self.built[name]
        stage = stage_named(name)
        base = re.sub(r"\$\{(\w+)\}", lambda m: self.global_args[m.group(1)], stage.base)
        if base in self.names:
            cwd, parent_env = self.build(base)
            env = dict(parent_env)
        else:  # the base image or scratch
            cwd, env = self.root, dict(self.base_env)
        for keyword, args in stage.instructions:
            if keyword == "WORKDIR":
                cwd = Path(self.here(args))
                cwd.mkdir(parents=True, exist_ok=True)
            elif keyword == "ENV":
                for pair in shlex.split(args):
                    key, _, value = pair.partition("=")
                    env[key] = self.here(value).replace("$PATH", env["PATH"])
                # --no-cache-dir only keeps the image small; here pip may use its cache.
                env.pop("PIP_NO_CACHE_DIR", None)
            elif keyword == "ARG":
                arg, _, default = args.partition("=")
                env[arg] = self.args.get(arg, default.strip('"'))
            elif keyword == "COPY":
                self._copy(args, cwd)
            elif keyword == "RUN" and "useradd" not in args:  # users need root and a real image
                # Build secrets and mounts are the engine's; the steps go without them here.
                script = re.sub(r"^(--mount=\S+\s+)+", "", args)
                run_step(self.here(script).replace(" --no-cache-dir", ""), cwd, env)
        self.built[name] = (cwd, env)
        return cwd, env

    def _copy(self, args: str, cwd: Path) -> None:
        words = args.split()
        *sources, dest = words[1:] if words[0].startswith("--from=") else words
        target = Path(self.here(dest)) if dest.startswith("/") else cwd / dest
        if words[0] == "--from=models" and not self.train:
            # The models stage trains with torch; a tiny real repository stands in for it.
            write_repository(target)
        elif words[0].startswith("--from=") and _empty(stage_named(words[0][7:])):
            target.mkdir(parents=True, exist_ok=True)  # a named build context not given
        elif words[0].startswith("--from="):
            self.build(words[0].removeprefix("--from="))
            (origin,) = sources
            if Path(self.here(origin)) != target:
                shutil.copytree(self.here(origin), target, dirs_exist_ok=True)
        else:
            copy_context(sources, target, into=dest.endswith("/") or len(sources) > 1)


def _empty(stage: dockerfile.Stage) -> bool:
    return stage.base == "scratch" and not stage.instructions


def copy_context(sources: list[str], dest: Path, *, into: bool) -> None:
    """Copy what ``COPY <sources> <dest>`` copies from the build context."""
    for source in sources:
        origin = ROOT / source
        if origin.is_file():
            if dockerfile.ignored(source):
                continue
            target = dest / origin.name if into else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
            continue
        # A directory's contents go into dest, as Docker copies them.
        for file in sorted(p for p in origin.rglob("*") if p.is_file()):
            if dockerfile.ignored(file.relative_to(ROOT).as_posix()):
                continue
            target = dest / file.relative_to(origin)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
    return result


def main(argv: list[str] | None = None) -> int:
    """Build the given stages under a root directory; print how long each took."""
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.without_docker")
    parser.add_argument("root", type=Path, help="empty or missing directory to build under")
    parser.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a build argument, as docker build --build-arg does",
    )
    parser.add_argument(
        "--models",
        choices=("build", "stand-in"),
        default="stand-in",
        help="run the models stage for real (build), or write a tiny repository (stand-in)",
    )
    parser.add_argument(
        "--target",
        action="append",
        default=None,
        metavar="STAGE",
        help="stage to build, repeatable, in order (default: the last stage)",
    )
    args = parser.parse_args(argv)
    if args.root.exists() and any(args.root.iterdir()):
        parser.error(f"{args.root} is not empty")
    args.root.mkdir(parents=True, exist_ok=True)
    overrides = dict(pair.split("=", 1) for pair in args.build_arg)
    builder = Builder(args.root.resolve(), overrides, train=args.models == "build")
    for target in args.target or [dockerfile.stages()[-1].name]:
        began = time.monotonic()
        workdir, _ = builder.build(target)
        print(f"{target}: built in {time.monotonic() - began:.1f} s (workdir {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
