"""Every code block of README.md and of the pages under docs/ runs as written, here or in the
test listed for it.

A fenced block in ``sh``, ``bash`` or ``python`` is something a reader copies and runs;
``text`` marks output, trees and formulas. Every runnable block is named in ``RUN_BY``, under
its page, by the start of its first line, with the test that runs it and why there; moving a
block to another page means moving its entry too. The cheap ones run in this module as
written, but for the port (a free one), the folder (a temporary one, where the pages'
relative ``model_repository`` is the session's quick build) and ``.venv/bin`` on ``PATH``,
which is what activating the environment does. docs/evidence/ is the report's own output,
not a page written here, and holds no blocks.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.readme_examples import parse_shown, quickstart, render, run, shape_problems
from service.manifest import Manifest
from tests.server import running_server
from tests.system import require

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNNABLE = frozenset({"sh", "bash", "python"})
NOT_RUN = frozenset({"text"})
HERE = "tests/test_readme.py"
SERVING = "tests/http/test_readme_serving.py::test_every_answer_has_the_shown_shape"
BENCH = "tests/benchmarks/test_bench.py::test_bench_measures_every_scenario_on_every_stack"
IMAGE = "tests/deploy/test_image.py::test_context_image_classifies_with_each_variant"


def pages() -> list[str]:
    """The README and every page of the site (docs/*.md), relative to the repository."""
    return ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


RUN_BY: dict[str, dict[str, tuple[str, str]]] = {
    "README.md": {
        "make serve": (
            "tests/scripts/test_serve_command.py::test_make_serve_binds_loopback_and_takes_host_and_port",
            (
                "`make serve` blocks and installs for minutes: its command line (`make -n`) is "
                "checked, and `headstart serve`, which it runs, is run in docs/api.md's entries"
            ),
        ),
        "curl -s -F image=@docs/digits/digit0.png 'localhost:8000/v1/models/mnist/classify?top_k=1'": (
            f"{HERE}::test_quickstart_curl",
            (
                "run here against the committed default models, its answer exactly the shown "
                "one; without them, against the quick build, in the shown shape"
            ),
        ),
        "make test ": (
            "Makefile",
            "`make test` is how this suite itself is run; `make test-fast` is its `-m 'not system'` part",
        ),
    },
    "docs/index.md": {},
    "docs/training.md": {
        "headstart models list --model-repository model_repository": (
            f"{HERE}::test_models_list_block",
            "run here on the quick build",
        ),
        "headstart build ": (
            "tests/scripts/test_training_commands.py::test_build_quick_exports_both_variants_and_prints_the_summary",
            (
                "the default build takes minutes and `download:` needs the network (fetched from "
                "a local mirror in tests/models/test_download.py); `--quick` is the session's "
                "quick build (tests/conftest.py::quick_repository)"
            ),
        ),
        "headstart build --arch cnn --method supervised --dataset mnist-5k:5-9": (
            "tests/scripts/test_training_commands.py::test_build_pre_trains_on_a_source_task_of_other_classes",
            (
                "the same build and the refused pretrain with `--quick` budgets on the tests' "
                "digits (their classes 0-4 as the source for 5-9); the digits-to-mnist-5k builds "
                "take minutes and run in the report's transfer panel"
            ),
        ),
        "headstart pretrain --arch mlp --method rbm": (
            "tests/scripts/test_training_commands.py::test_steps_chain_through_checkpoints",
            "the same four steps chained with `--quick` budgets",
        ),
        "headstart build --nproc 2 --quick": (
            "tests/scripts/test_training_commands.py::test_build_with_two_processes_writes_what_one_process_writes",
            (
                "two processes, on a tiny net; the torchrun line needs two machines and GPUs "
                "(tests/models/test_distributed.py runs torchrun's launcher on this one)"
            ),
        ),
        "python -m benchmarks.stream_memory": (
            "tests/benchmarks/test_stream_memory.py::test_stream_memory_reports_each_size",
            "the measured sizes take minutes; the test runs one small size",
        ),
    },
    "docs/api.md": {
        "headstart serve --model-repository model_repository": (
            f"{HERE}::test_serve_block",
            "run here on the quick build, on a free port",
        ),
        "gunicorn --config python:service.gunicorn_conf": (
            f"{HERE}::test_gunicorn_block",
            "run here on the quick build, on a free port",
        ),
        'curl -X POST -H "Authorization: Bearer $HEADSTART_ADMIN_TOKEN"': (
            "tests/http/test_live_repository_server.py::test_the_docs_load_command_runs_as_written",
            "needs a server with the admin token; run there against tiny models named mnist",
        ),
        "python -m benchmarks.realistic_digits": (
            "tests/benchmarks/test_realistic_digits.py::test_the_benchmark_reports_every_set_framed_and_not",
            "needs the default models; the test runs it on a few digits",
        ),
        "curl -s -F image=@docs/digits/digit0.png 'localhost:8000/v1/models/mnist/classify?top_k=3'": (
            SERVING,
            "run against a quick build; benchmarks.readme_examples writes the shown answers",
        ),
        "curl -s -F image=@docs/digits/digit0.png 'localhost:8000/v1/models/mnist/embed?normalize=true'": (
            SERVING,
            "run against a quick build; benchmarks.readme_examples writes the shown answers",
        ),
        "curl -s -F image=@docs/digits/digit0.png -F label=0": (
            SERVING,
            "run against a quick build; benchmarks.readme_examples writes the shown answers",
        ),
        "import numpy as np": (
            "tests/http/test_v2_readme.py::test_readme_snippet_classifies_a_digit",
            "the V2 snippet, run against a quick build on the committed digit",
        ),
    },
    "docs/configuration.md": {},
    "docs/experiments.md": {
        "export HEADSTART_ADMIN_TOKEN=": (
            f"{HERE}::test_experiment_blocks",
            "run here: the tokens, then `headstart serve` on the quick build, on a free port",
        ),
        "curl -s -o /dev/null -w '%{http_code}\\n' -X POST": (
            f"{HERE}::test_experiment_blocks",
            "run here against that server, its answers checked against the shown ones",
        ),
        "headstart experiments create digits-cli": (
            f"{HERE}::test_experiment_blocks",
            "run here against a server of its own, named by $HEADSTART_URL",
        ),
        "cp -r model_repository /tmp/rollout": (
            "tests/http/test_rollout.py",
            (
                "the same steps through the same routes on a two-worker server: a full build "
                "takes minutes, so the test places the committed models as the next versions "
                "with the build's own placement; tests/models/test_export.py exports a second "
                "version, tests/scripts/test_experiments_command.py parses the versioned arms"
            ),
        ),
        "headstart experiments simulate --json": (
            "tests/scripts/test_experiments_command.py::test_simulate_in_process",
            (
                "the stored run takes seconds but rewrites committed files; the test runs fewer "
                "experiments into a temporary folder, and tests/test_docs_figures.py holds the "
                "page to the stored run"
            ),
        ),
    },
    "docs/deploy.md": {
        "docker build -t headstart .": (
            "tests/deploy/test_image.py::test_image_trained_in_the_build_serves_each_variant",
            "no Docker engine here: podman builds and runs the same Dockerfile",
        ),
        "podman build --format docker -t headstart .": (
            IMAGE,
            "run with this machine's extra options (the podman block under 'What was exercised')",
        ),
        "docker build -t headstart --build-arg MODEL_SOURCE=context": (
            IMAGE,
            "no Docker engine here: podman builds MODEL_SOURCE=context from a quick build",
        ),
        "docker run --rm -p 8000:8000 --stop-timeout 35 -e HEADSTART_WORKERS=4": (
            "tests/deploy/test_image.py::test_read_only_repository_of_another_owner_serves",
            "no Docker engine here: podman mounts a repository read-only over the built-in one",
        ),
        "docker compose -f deploy/compose.yaml up --build": (
            "tests/deploy/test_manifests.py::test_compose_runs_replicas_of_the_image_built_here",
            "no Docker engine here: the compose file is validated, not run",
        ),
        "kubectl apply -k deploy/kubernetes": (
            "tests/deploy/test_manifests.py::test_kubernetes_manifest_matches_the_api_schema",
            "no cluster here: the manifests are validated against the API's types, not applied",
        ),
        "podman --runtime runc build --format docker --network host": (
            IMAGE,
            "the commands that test runs, with its base image, wheels and repository",
        ),
        "python -m tests.deploy.without_docker": (
            "tests/deploy/test_container_smoke.py::test_image_command_serves_classifies_and_drains_on_sigterm",
            "training in the stages takes minutes; the test builds the serving stages only",
        ),
    },
    "docs/performance.md": {
        "headstart bench --model-repository model_repository --out benchmarks/results/bench-cnn.json": (
            BENCH,
            "a bench takes minutes; the test runs every scenario briefly on the test models",
        ),
        "python -m benchmarks.breakdown": (
            "tests/benchmarks/test_bench.py::test_breakdown_times_every_stage_of_every_body_form",
            "run on the test models",
        ),
    },
    "docs/robustness.md": {
        ".venv/bin/pytest -s tests/adversarial": (
            "tests/adversarial",
            "it is a test suite: `make test` runs it",
        ),
    },
    "docs/evidence.md": {
        "headstart report --budget quick --out reports/quick   #": (
            "tests/scripts/test_report_command.py::test_every_figure_is_a_png_inlined_in_a_self_contained_page",
            "the budgets take tens of minutes; the test runs a tiny budget",
        ),
        "headstart report --budget quick --out reports/quick --jobs 2": (
            "tests/scripts/test_report_command.py::test_shards_split_the_sweep_and_a_plain_run_assembles_it",
            "jobs, shards and assembly on a tiny budget",
        ),
    },
    "docs/architecture.md": {
        "class Method(StrEnum):": (
            f"{HERE}::test_the_registry_excerpt_is_the_code",
            "an excerpt of models/methods.py, not a command: its lines are held to the file",
        ),
        "def pretrain(": (
            "tests/models/test_methods.py::test_every_method_module_has_the_one_signature",
            "the signature a new method's module must have; the test holds every module to it",
        ),
        'sae = Entry("sae"': (
            "tests/models/test_methods.py::test_valid_pairs_and_defaults_come_from_the_registry",
            "a line to add for a new method, in the registry's form (excerpt above)",
        ),
    },
}
"""Each page's runnable blocks, by the start of their first line: the test that runs each,
and why there."""


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    line: int
    """The line (1-based) of its opening fence."""
    lang: str
    text: str
    """Its lines, without the fence's indentation."""

    @property
    def first(self) -> str:
        return next((line.strip() for line in self.text.splitlines() if line.strip()), "")


_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[^`\s]*)\s*$")


def blocks(text: str, page: str = "README.md") -> list[Block]:
    """Every fenced block of ``text``, in order, indented ones (in list items) included."""
    found: list[Block] = []
    opened: tuple[int, str, str] | None = None
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if opened is None:
            if match:
                opened, body = (number, match["indent"], match["lang"]), []
        elif match and not match["lang"]:
            start, indent, lang = opened
            found.append(Block(start, lang, "\n".join(b.removeprefix(indent) for b in body)))
            opened = None
        else:
            body.append(line)
    assert opened is None, f"{page}:{opened[0]}: a fence that is never closed"
    return found


def _text(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


def block(page: str, start: str) -> Block:
    """The one runnable block of ``page`` whose first line starts with ``start``."""
    (found,) = [b for b in blocks(_text(page), page) if b.first.startswith(start)]
    return found


def _covering(block: Block, page: str) -> str | None:
    """The RUN_BY entry of ``block`` on ``page``: the longest that its first line starts with."""
    keys = [key for key in RUN_BY.get(page, {}) if block.first.startswith(key)]
    return max(keys, key=len) if keys else None


def _resolves(node: str) -> bool:
    path, _, name = node.partition("::")
    target = ROOT / path
    if not name:
        return target.exists()
    if not target.is_file():
        return False
    tree = ast.parse(target.read_text(encoding="utf-8"))
    return any(isinstance(n, ast.FunctionDef) and n.name == name.split("[")[0] for n in tree.body)


def problems(text: str, page: str = "README.md") -> list[str]:
    """What is wrong with the blocks of ``text``: one line each, saying where and what to do."""
    found = []
    for b in blocks(text, page):
        where = f"{page}:{b.line}: ```{b.lang} block `{b.first[:70]}`"
        if not b.lang:
            found.append(
                f"{page}:{b.line}: a fence without a language: ```text for output, a "
                "tree or a formula; ```sh or ```python for something to run"
            )
        elif b.lang in NOT_RUN:
            continue
        elif b.lang not in RUNNABLE:
            found.append(f"{where}: unknown language; use one of {sorted(RUNNABLE | NOT_RUN)}")
        elif _covering(b, page) is None:
            found.append(
                f"{where} is neither run nor listed: run it as written in a test (the cheap "
                f"ones run in {HERE}) and add its first line to RUN_BY[{page!r}] in {HERE} "
                "with that test's node id and why it runs there"
            )
    return found


def test_every_page_has_its_entry() -> None:
    assert sorted(RUN_BY) == sorted(pages()), "RUN_BY holds one entry per page, and only those"


@pytest.mark.parametrize("page", pages())
def test_every_block_is_run_or_listed(page: str) -> None:
    wrong = problems(_text(page), page)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("page", pages())
def test_every_listed_block_is_on_its_page_once(page: str) -> None:
    runnable = [b for b in blocks(_text(page), page) if b.lang in RUNNABLE]
    for key in RUN_BY.get(page, {}):
        count = sum(_covering(b, page) == key for b in runnable)
        assert count == 1, f"RUN_BY[{page!r}][{key!r}] is the entry of {count} blocks, not one"


def test_every_listed_test_exists() -> None:
    missing = [
        node for entries in RUN_BY.values() for node, _ in entries.values() if not _resolves(node)
    ]
    assert not missing, f"RUN_BY names tests that do not exist: {missing}"


def test_the_checks_catch_what_they_are_for() -> None:
    text = "```\nplain\n```\n\n  ```sh\n  unlisted-command --flag\n  ```\n"
    found = blocks(text)
    assert [(b.line, b.lang, b.first) for b in found] == [
        (1, "", "plain"),
        (5, "sh", "unlisted-command --flag"),
    ]
    assert _covering(found[1], "docs/training.md") is None
    listed = Block(1, "sh", "headstart build --nproc 2 --quick")
    assert _covering(listed, "docs/training.md") == "headstart build --nproc 2 --quick"
    assert _covering(listed, "docs/api.md") is None, "an entry covers its own page only"
    assert problems(text, "docs/x.md") == [
        (
            "docs/x.md:1: a fence without a language: ```text for output, a tree or a formula; "
            "```sh or ```python for something to run"
        ),
        (
            "docs/x.md:5: ```sh block `unlisted-command --flag` is neither run nor listed: run it "
            f"as written in a test (the cheap ones run in {HERE}) and add its first line to "
            f"RUN_BY['docs/x.md'] in {HERE} with that test's node id and why it runs there"
        ),
    ]
    assert problems("```text\nshown output\n```\n```sh\nmake serve\n```\n") == []
    assert _resolves(f"{HERE}::test_every_listed_test_exists")
    assert not _resolves(f"{HERE}::test_that_is_not_there")
    assert not _resolves("tests/no_such_file.py")


def test_the_registry_excerpt_is_the_code() -> None:
    excerpt = block("docs/architecture.md", "class Method(StrEnum):").text
    code = {line.rstrip() for line in (ROOT / "models" / "methods.py").read_text().splitlines()}
    shown = [line.rstrip() for line in excerpt.splitlines() if line.strip() not in ("", "...")]
    assert [line for line in shown if line not in code] == []


# --- the blocks run here -----------------------------------------------------------------------


def _activated(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment as a reader's shell has it after ``. .venv/bin/activate``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSTART_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def _command(line: str, repository: Path) -> list[str]:
    """One command line of a block, its program found as the activated shell would find it,
    the pages' ``model_repository`` replaced by ``repository`` and port 8000 by 0 (free)."""
    words = shlex.split(line, comments=True)
    program = shutil.which(words[0], path=_activated()["PATH"])
    assert program is not None, f"{words[0]} is not on the activated PATH"
    words = [str(repository) if w == "model_repository" else w for w in words]
    return [program, *("0" if w == "8000" else w for w in words[1:])]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_models_list_block(quick_repository: Path, tmp_path: Path) -> None:
    (tmp_path / "model_repository").symlink_to(quick_repository)
    result = subprocess.run(
        ["bash", "-c", block("docs/training.md", "headstart models list").text],
        cwd=tmp_path,
        env=_activated(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split()[:2] for line in result.stdout.splitlines()[1:]]
    assert rows == [["mnist", "pretrained"], ["mnist", "baseline"]]
    assert result.stderr == ""


def test_serve_block(quick_repository: Path) -> None:
    (line,) = block("docs/api.md", "headstart serve").text.splitlines()
    command = _command(line, quick_repository)
    with running_server(quick_repository, _activated(), command=command) as url:
        assert _get(f"{url}/health/ready")[0] == 200
        models = json.loads(_get(f"{url}/v1/models")[1])["models"]
        assert [m["name"] for m in models] == ["mnist"]


def test_gunicorn_block(quick_repository: Path) -> None:
    """The canonical command takes everything from the environment: port 0 is any free one."""
    (line,) = block("docs/api.md", "gunicorn --config").text.splitlines()
    assert "8000" not in line
    with running_server(
        quick_repository, _activated(), command=_command(line, quick_repository)
    ) as url:
        assert _get(f"{url}/health/ready")[0] == 200


def _swap_arms(line: str) -> str:
    """A shown line as the other arm would have answered it."""
    pairs = [
        ('"arm":"a","variant":"pretrained"', '"arm":"b","variant":"baseline"'),
        ("X-Experiment-Arm: a", "X-Experiment-Arm: b"),
        ("[1,0,", "[0,1,"),
    ]
    for one, other in pairs:
        if one in line:
            return line.replace(one, other)
        if other in line:
            return line.replace(other, one)
    return line


@pytest.mark.system
def test_experiment_blocks(quick_repository: Path, tmp_path: Path) -> None:
    for program, package in (("curl", "curl"), ("jq", "jq"), ("openssl", "openssl")):
        require(program, package)
    page = "docs/experiments.md"
    serve = block(page, "export HEADSTART_ADMIN_TOKEN=").text.splitlines()
    assert len(serve) == 2
    # The tokens, made as the block makes them.
    made = subprocess.run(
        [
            "bash",
            "-c",
            f'{serve[0]}\nprintf "%s %s" "$HEADSTART_ADMIN_TOKEN" "$HEADSTART_FEEDBACK_TOKEN"',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    admin, feedback = made.stdout.split()
    assert re.fullmatch(r"[0-9a-f]{32}", admin)
    assert re.fullmatch(r"[0-9a-f]{32}", feedback)
    assert admin != feedback
    tokens = {"HEADSTART_ADMIN_TOKEN": admin, "HEADSTART_FEEDBACK_TOKEN": feedback}
    before = _untracked()

    with running_server(
        quick_repository, _activated(tokens), command=_command(serve[1], quick_repository)
    ) as url:
        client = block(page, "curl -s -o /dev/null -w")
        result = subprocess.run(
            [
                "bash",
                "-e",
                "-o",
                "pipefail",
                "-c",
                client.text.replace("localhost:8000", url.removeprefix("http://")),
            ],
            cwd=ROOT,
            env=_activated({**tokens, "TMPDIR": str(tmp_path)}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        got = result.stdout.splitlines()
        shown = [line[1:].strip() for line in client.text.splitlines() if line.startswith("#")]
        arm = json.loads(got[1])["arm"]
        shown_arm = json.loads(shown[1])["arm"]
        expected = shown if arm == shown_arm else [_swap_arms(line) for line in shown]
        assert got == expected, f"{page}:{client.line}: answers differ from the shown ones"

    # The command-line example, on a server of its own, as a reader's fresh one would be.
    with running_server(quick_repository, _activated(tokens)) as url:
        cli = block(page, "headstart experiments create digits-cli")
        result = subprocess.run(
            ["bash", "-e", "-c", cli.text],
            cwd=tmp_path,
            env=_activated({**tokens, "HEADSTART_URL": url}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "created digits-cli on mnist (split)" in result.stdout
        assert re.search(r"^digits-cli\s+mnist\s+split\s+running", result.stdout, re.MULTILINE)
        assert "stopped digits-cli" in result.stdout
    assert _untracked() == before, "the examples left files in the checkout"


def _untracked() -> set[str]:
    """The files git sees as new in the checkout (what an example might leave behind)."""
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return set(listed.stdout.splitlines())


def _committed_defaults() -> Path | None:
    """The committed default models, when the checkout holds them."""
    repository = ROOT / "model_repository"
    return repository if (repository / "mnist").is_dir() else None


@pytest.mark.system
def test_quickstart_curl(quick_repository: Path) -> None:
    """The README's curl, from the checkout: the committed models' answer is the shown one to
    the last digit; a quick build's has its shape."""
    require("curl", "curl")
    (example,) = quickstart(README.read_text(encoding="utf-8"))
    shown = parse_shown(example.shown)
    repository = _committed_defaults() or quick_repository
    before = _untracked()
    with running_server(repository) as url:
        result = run(example, url.removeprefix("http://"))
    assert result.returncode == 0, result.stderr
    assert _untracked() == before
    regenerate = "python -m benchmarks.readme_examples --model-repository model_repository --update"
    if _committed_defaults() is not None:
        got = " ".join(line[1:].strip() for line in render(result.stdout.strip()))
        assert got == example.shown, (
            f"README.md:{example.line}: the committed models answer otherwise; {regenerate}"
        )
    classes = Manifest.model_validate_json(
        (repository / "mnist" / "pretrained" / "manifest.json").read_text(encoding="utf-8")
    ).class_names
    assert shape_problems(json.loads(result.stdout), shown, classes) == []


_HEADLINE = re.compile(
    r"pretrained [^*]*\*\*(?P<pretrained>[^*]+)\*\*,\s+baseline [^*]*\*\*(?P<baseline>[^*]+)\*\*"
)


def test_the_headline_is_the_committed_models() -> None:
    """The README's served-default figure is a marked placeholder until the default models are
    committed; from then on, each variant's test accuracy as its manifest records it."""
    found = _HEADLINE.search(README.read_text(encoding="utf-8"))
    assert found, "README.md: no 'pretrained **…**, baseline **…**' headline"
    repository = _committed_defaults()
    for variant in ("pretrained", "baseline"):
        quoted = found[variant]
        if repository is None:
            assert quoted == "TBD" or re.fullmatch(r"\d+\.\d%", quoted), quoted
            continue
        manifest = Manifest.model_validate_json(
            (repository / "mnist" / variant / "manifest.json").read_text(encoding="utf-8")
        )
        accuracy = f"{100 * manifest.test_metrics.accuracy:.1f}%"
        assert quoted == accuracy, (
            f"README.md: the {variant} default is {accuracy} by its manifest, quoted {quoted}"
        )
