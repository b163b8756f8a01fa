"""Read the project's Dockerfile and .dockerignore the way Docker does, for the tests."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
REQUIREMENTS = ROOT / "deploy" / "requirements.py"


def _script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"headstart_deploy_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def healthcheck_module() -> ModuleType:
    """``deploy/healthcheck.py``, the image's health check, imported from its file."""
    return _script(HEALTHCHECK)


def requirements_module() -> ModuleType:
    """``deploy/requirements.py``, which lists what the image build installs first."""
    return _script(REQUIREMENTS)


@dataclass
class Stage:
    """One ``FROM`` and the instructions under it."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        """The arguments of every instruction ``keyword`` in this stage."""
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        """The arguments of the last instruction ``keyword``; KeyError if there is none."""
        found = self.all(keyword)
        if not found:
            raise KeyError(f"stage {self.name or self.base} has no {keyword}")
        return found[-1]

    def env(self) -> dict[str, str]:
        """Every ``ENV KEY=VALUE`` of the stage, later ones winning."""
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                values[key] = value
        return values


def instructions(text: str) -> list[tuple[str, str]]:
    """``(KEYWORD, arguments)`` per instruction, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    return result


def stages(text: str | None = None) -> list[Stage]:
    """The build stages of the Dockerfile, in order."""
    found: list[Stage] = []
    for keyword, args in instructions(DOCKERFILE.read_text() if text is None else text):
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(base=words[0], name=name))
        elif found:
            found[-1].instructions.append((keyword, args))
    return found


def global_args(text: str | None = None) -> dict[str, str]:
    """``ARG NAME=default`` lines before the first ``FROM``."""
    values: dict[str, str] = {}
    for keyword, args in instructions(DOCKERFILE.read_text() if text is None else text):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = args.partition("=")
            values[name] = default
    return values


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form ``CMD``/``ENTRYPOINT``; ValueError for the shell form."""
    value = json.loads(args)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"not an exec-form JSON array of strings: {args}")
    return value


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``*`` and ``?`` stay within a path segment, ``**`` crosses."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out += "/?"  # "**/x" also matches "x" at the top
                i += 1
            continue
        char = pattern[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + r"\Z")


def ignored(path: str, text: str | None = None) -> bool:
    """Whether ``path`` (relative, ``/``-separated) is left out of the build context.

    The last matching pattern decides; a pattern matches a path or any of its
    parent directories; ``!`` re-includes.
    """
    lines = (DOCKERIGNORE.read_text() if text is None else text).splitlines()
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _pattern_regex(line.lstrip("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            result = not negate
    return result
