"""Generate the gRPC modules in :mod:`service.grpc.generated` from ``service/grpc/protos``.

The generated modules are committed, so the service needs grpcio and protobuf but not
grpcio-tools (a dev dependency)::

    python -m service.grpc.generate          # rewrite service/grpc/generated/
    python -m service.grpc.generate --check  # exit 1 when they differ from the .proto files
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTOS = HERE / "protos"
GENERATED = HERE / "generated"
_INIT = (
    '"""Modules generated from ``service/grpc/protos`` by ``python -m service.grpc.generate``."""\n'
)
# protoc writes `import model_config_pb2`, a top-level import; inside a package it must be
# relative.
_TOP_LEVEL_IMPORT = re.compile(r"^import (\w+_pb2) as ", re.MULTILINE)


def generate(target: Path) -> list[Path]:
    """Write the modules for every ``.proto`` into ``target``; return the files written."""
    from grpc_tools import protoc

    protos = sorted(PROTOS.glob("*.proto"))
    include = resources.files("grpc_tools") / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{include}",
            f"--python_out={target}",
            f"--pyi_out={target}",
            f"--grpc_python_out={target}",
            *(str(p) for p in protos),
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status}")
    written = []
    for path in sorted(target.glob("*.py*")):
        text = path.read_text(encoding="utf-8")
        if path.name.endswith("_pb2_grpc.py") and "class " not in text:
            path.unlink()  # a .proto without services yields an empty module
            continue
        path.write_text(_TOP_LEVEL_IMPORT.sub(r"from . import \1 as ", text), encoding="utf-8")
        written.append(path)
    init = target / "__init__.py"
    init.write_text(_INIT, encoding="utf-8")
    return [init, *written]


def differences(current: Path = GENERATED) -> list[str]:
    """The generated files that are missing, stale or extra in ``current``."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = {p.name: p.read_bytes() for p in generate(Path(scratch))}
    present = {p.name: p.read_bytes() for p in current.iterdir() if p.is_file()}
    problems = [f"{name}: missing" for name in sorted(fresh.keys() - present.keys())]
    problems += [
        f"{name}: not generated from the .proto files"
        for name in sorted(present.keys() - fresh.keys())
    ]
    problems += [
        f"{name}: differs from what the .proto files generate"
        for name in sorted(fresh.keys() & present.keys())
        if fresh[name] != present[name]
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for problem in problems:
            print(f"service/grpc/generated/{problem}", file=sys.stderr)
        if problems:
            print("regenerate with: python -m service.grpc.generate", file=sys.stderr)
        return 1 if problems else 0
    for stale in GENERATED.glob("*.py*"):
        stale.unlink()
    GENERATED.mkdir(exist_ok=True)
    for path in generate(GENERATED):
        print(path.relative_to(HERE.parents[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
