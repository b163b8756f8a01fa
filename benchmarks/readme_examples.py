"""The serving examples of the README and docs/api.md, run as written.

``python -m benchmarks.readme_examples`` serves a model repository with the canonical gunicorn
command on a free loopback port, runs the commands of docs/api.md's "With curl" part (from
the checkout: they send the digits committed under ``docs/digits/``), then its V2 part's
tritonclient program, then the README quickstart's curl, and prints each with the answer it
got in the pages' form: compact JSON, lists longer than three items cut to three and ``…``,
times elided as ``…``, wrapped into ``#`` lines. ``--update`` writes those answers into the
pages in place of the shown ones.

Run it on the default models (the committed ``model_repository``) whenever they change::

    python -m benchmarks.readme_examples --model-repository model_repository --update

``tests/http/test_readme_serving.py``, ``tests/http/test_v2_readme.py`` and
``tests/test_readme.py`` run the same examples against a quick build and check their answers
against the shown ones (JSON with :func:`shape_problems`): the same keys, types, sizes, labels
from the model's classes and exit codes, not a quick model's predictions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"
"""The page whose examples :func:`examples` reads."""
README = ROOT / "README.md"
"""The front page, whose quickstart holds one curl (:func:`quickstart`)."""
PART = "## With curl"
"""The part of docs/api.md whose ``sh`` blocks are run, in order."""
V2_PART = "## Open Inference Protocol (V2)"
"""The part of docs/api.md whose first ``python`` block is run last."""
QUICKSTART = "## Quickstart"
"""The README part whose ``curl`` commands are run."""
HOST = "localhost:8000"
"""The address the README's commands use; replaced by the live server's."""
PYTHON = ".venv/bin/python"
"""The interpreter the README's commands use; replaced by this one."""
MORE = "…"
"""Ends a list the README shows cut short."""
KEEP = 3
"""Items of a list shown before ``…``."""
WIDTH = 100
"""Longest line of a shown answer, ``#`` included."""
ELIDED = frozenset({"latency_ms"})
"""Keys whose values are times: shown as ``…``, never compared."""
EXACT = frozenset({"model", "variant", "normalized", "size", "images", "test", "blank"})
"""Keys whose values any build of the same architecture answers alike (the rest are the
trained weights' own: probabilities, labels, agreement, times)."""
LABELS = frozenset({"label", "true_label"})
"""Keys whose values are class names."""


@dataclass(frozen=True)
class Example:
    """One command of the part and the answer shown under it."""

    command: str
    """The command as one line (continuation backslashes joined)."""
    shown: str
    """The ``#`` lines under it, without the ``#``, joined by spaces ("" when none)."""
    line: int
    """The page's line (1-based) the command starts on."""
    shown_lines: tuple[int, int]
    """The page's lines (0-based, end exclusive) the shown answer takes."""
    language: str = "sh"
    """``sh``: a shell command; ``python``: a program, its shown output the ``#`` lines ending it."""


def examples(text: str) -> list[Example]:
    """Every command of docs/api.md's "With curl" part, in order, with its shown answer, then
    the V2 part's program with the output shown under it."""
    return [*_commands(text, PART), _program(text)]


def quickstart(text: str) -> list[Example]:
    """The ``curl`` commands of the README's quickstart, with their shown answers."""
    return [e for e in _commands(text, QUICKSTART) if e.command.startswith("curl ")]


def _program(text: str) -> Example:
    lines = text.splitlines()
    part = lines.index(V2_PART)
    start = next(i for i in range(part, len(lines)) if lines[i] == "```python") + 1
    end = next(i for i in range(start, len(lines)) if lines[i] == "```")
    shown_from = end
    while shown_from > start and lines[shown_from - 1].startswith("#"):
        shown_from -= 1
    return Example(
        "\n".join(lines[start:shown_from]),
        " ".join(line[1:].strip() for line in lines[shown_from:end]),
        start + 1,
        (shown_from, end),
        "python",
    )


def _commands(text: str, part: str) -> list[Example]:
    """The ``sh`` blocks of ``part``, indented ones (in list items) included."""
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index(part)
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith(("## ", "### "))),
        len(lines),
    )
    found: list[Example] = []
    inside = False
    command: list[str] = []
    shown: list[str] = []
    first = shown_from = 0

    def flush(at: int) -> None:
        nonlocal command, shown
        if command:
            found.append(
                Example(
                    " ".join(command),
                    " ".join(shown),
                    first + 1,
                    (shown_from, shown_from + len(shown)) if shown else (at, at),
                )
            )
        command, shown = [], []

    for i in range(start, end):
        line = lines[i]
        if line.startswith("```"):
            if inside:
                flush(i)
            inside = line == "```sh"
            continue
        if not inside:
            continue
        if line.startswith("#"):
            if not shown:
                shown_from = i
            shown.append(line[1:].strip())
        elif line.strip():
            if shown:
                flush(i)
            if not command:
                first = i
            command.append(line.rstrip("\\").strip())
        else:
            flush(i)
    return found


def runnable(command: str, host: str) -> str:
    """The page's command for this machine: this Python, and the live server's address."""
    return command.replace(PYTHON, sys.executable).replace(HOST, host)


def run(
    example: Example, host: str, cwd: Path = ROOT, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run one example in ``cwd``: a command with bash, a program with this Python."""
    if example.language == "python":
        command = [sys.executable, "-c", example.command.replace(HOST, host)]
    else:
        command = ["bash", "-c", runnable(example.command, host)]
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- the shown form of an answer -------------------------------------------------------------


def abbreviate(value: Any) -> Any:
    """``value`` with every list of more than :data:`KEEP` items cut to them and ``…``, and
    every number under an :data:`ELIDED` key replaced by ``…``."""
    if isinstance(value, dict):
        return {
            key: _elide(item) if key in ELIDED else abbreviate(item) for key, item in value.items()
        }
    if isinstance(value, list):
        kept = [abbreviate(item) for item in value[:KEEP]]
        return [*kept, MORE] if len(value) > KEEP else kept
    return value


def _elide(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _elide(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_elide(item) for item in value]
    return MORE if isinstance(value, int | float) and not isinstance(value, bool) else value


def render(output: str) -> list[str]:
    """An answer as the pages show it: ``#`` lines, JSON compact, abbreviated and wrapped."""
    try:
        value = json.loads(output)
    except ValueError:
        return [f"# {line}" for line in output.splitlines()]
    text = json.dumps(abbreviate(value), ensure_ascii=False, separators=(",", ":"))
    text = text.replace(f'"{MORE}"', MORE)
    return [
        ("# " if i == 0 else "#   ") + piece
        for i, piece in enumerate(_wrap(text, WIDTH - len("#   ")))
    ]


def _wrap(text: str, width: int) -> list[str]:
    """Break JSON text after commas outside strings, into pieces of at most ``width``."""
    pieces: list[str] = []
    start = last_break = 0
    in_string = escaped = False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char == ",":
            last_break = i + 1
        if i - start >= width and last_break > start:
            pieces.append(text[start:last_break])
            start = last_break
    pieces.append(text[start:])
    return pieces


def parse_shown(shown: str) -> Any:
    """A shown JSON answer as data; ``…`` becomes the string ``"…"`` ending its list."""
    return json.loads(shown.replace(MORE, f'"{MORE}"'))


def shape_problems(
    actual: Any, shown: Any, classes: Sequence[str], where: str = "$", key: str = ""
) -> list[str]:
    """How ``actual`` differs from ``shown`` in what any build of the model answers alike.

    Keys must be the same; lists the same length (a shown list ending in ``…``: longer than
    what is shown); values the same type (numbers are one type: jq writes 1.0 as 1); the
    values of :data:`EXACT` keys equal; labels among ``classes``; other strings equal.
    """
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {type(actual).__name__}, shown an object"]
        if set(actual) != set(shown):
            return [f"{where}: keys {sorted(actual)}, shown {sorted(shown)}"]
        return [
            problem
            for name in shown
            for problem in shape_problems(
                actual[name], shown[name], classes, f"{where}.{name}", name
            )
        ]
    if isinstance(shown, list):
        if not isinstance(actual, list):
            return [f"{where}: {type(actual).__name__}, shown a list"]
        cut = bool(shown) and shown[-1] == MORE
        head = shown[:-1] if cut else shown
        if (len(actual) <= len(head)) if cut else (len(actual) != len(head)):
            more = "more than " if cut else ""
            return [f"{where}: {len(actual)} items, shown {more}{len(head)}"]
        return [
            problem
            for i, item in enumerate(head)
            for problem in shape_problems(actual[i], item, classes, f"{where}[{i}]", key)
        ]
    if shown == MORE:
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return [f"{where}: {actual!r}, shown an elided number"]
        return []
    if shown is None or isinstance(shown, (bool, str)):
        if type(actual) is not type(shown):
            return [f"{where}: {actual!r}, shown {shown!r}"]
        if isinstance(shown, str) and key in LABELS:
            stray = [v for v in (actual, shown) if v not in classes]
            return [f"{where}: {v!r} is not a class of the model" for v in stray]
        if key in EXACT or isinstance(shown, str):
            return [] if actual == shown else [f"{where}: {actual!r}, shown {shown!r}"]
        return []
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return [f"{where}: {actual!r}, shown the number {shown!r}"]
    if key in EXACT and actual != shown:
        return [f"{where}: {actual!r}, shown {shown!r}"]
    return []


# --- the command -----------------------------------------------------------------------------


def answers(
    found: Sequence[Example], url: str, cwd: Path = ROOT
) -> list[tuple[Example, subprocess.CompletedProcess[str]]]:
    """Run every example of ``found`` against the server at ``url``, in ``cwd``, in order."""
    host = url.removeprefix("http://")
    return [(example, run(example, host, cwd)) for example in found]


def updated(text: str, results: Sequence[tuple[Example, subprocess.CompletedProcess[str]]]) -> str:
    """``text`` with every example's shown answer replaced by the one it got."""
    lines = text.splitlines()
    # From the last example up, so earlier line numbers stay valid.
    for example, result in sorted(results, key=lambda r: r[0].line, reverse=True):
        start, end = example.shown_lines
        at = lines[start] if start < end else lines[example.line - 1]
        indent = at[: len(at) - len(at.lstrip())]
        lines[start:end] = [indent + line for line in render(result.stdout.strip())]
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.readme_examples",
        description="Run the serving examples of docs/api.md and the README's quickstart "
        "against a live server on a model repository and print (or, with --update, write) "
        "the answers they get.",
    )
    parser.add_argument(
        "--model-repository",
        type=Path,
        default=Path("model_repository"),
        help="the repository to serve: the default models (default: %(default)s)",
    )
    parser.add_argument(
        "--update", action="store_true", help="write the answers into the pages (default: print)"
    )
    args = parser.parse_args(argv)
    if not (args.model_repository / "mnist").is_dir():
        parser.error(f"--model-repository {args.model_repository}: no mnist model in it")
    pages = {
        API: examples(API.read_text(encoding="utf-8")),
        README: quickstart(README.read_text(encoding="utf-8")),
    }

    from benchmarks import servers
    from service.server_command import serve_command

    env = servers.environment(
        {
            "HEADSTART_MODEL_REPOSITORY": str(args.model_repository.resolve()),
            "HEADSTART_HOST": "127.0.0.1",
            "HEADSTART_PORT": "0",
            "HEADSTART_WORKERS": "1",
        }
    )
    with tempfile.TemporaryDirectory(prefix="readme-examples-") as scratch:
        server = servers.Server(serve_command(), env, "/health/ready")
        with servers.running({"headstart": server}, Path(scratch)) as urls:
            results = {page: answers(found, urls["headstart"]) for page, found in pages.items()}
    failed = [(page, e, r) for page, ran in results.items() for e, r in ran if r.returncode != 0]
    for page, example, result in failed:
        print(
            f"{page.relative_to(ROOT)}:{example.line}: exit {result.returncode}: "
            f"{example.command}\n{result.stderr.strip()}",
            file=sys.stderr,
        )
    if failed:
        return 1
    for page, ran in results.items():
        if args.update:
            page.write_text(updated(page.read_text(encoding="utf-8"), ran), encoding="utf-8")
            print(f"updated {len(ran)} answers in {page.relative_to(ROOT)}")
            continue
        for example, result in ran:
            print(f"$ {example.command}")
            print("\n".join(render(result.stdout.strip())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
