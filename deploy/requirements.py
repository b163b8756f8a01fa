"""Print the project's requirements from pyproject.toml, one a line: base, plus any extras named.

The image build installs these before it copies the source, so that a change to
the code does not download the dependencies again. Standard library only.

    python requirements.py            # what the service needs
    python requirements.py train      # and what training and export need
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The base dependencies followed by those of each extra, in the file's order."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    known = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in known]
    if unknown:
        raise SystemExit(f"requirements: no extra {', '.join(unknown)} in {pyproject}")
    found: list[str] = list(project["dependencies"])
    for extra in extras:
        found.extend(known[extra])
    return found


def main(argv: list[str]) -> int:
    """Print the requirements of pyproject.toml in the working directory."""
    print("\n".join(requirements(Path("pyproject.toml"), argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
