"""The Dockerfile and .dockerignore: lint-clean, and in agreement with the code."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from service.app import create_app
from service.grpc.port import DEFAULT_PORT as GRPC_PORT
from service.server_command import GUNICORN_ARGS
from service.settings import Settings
from tests.deploy import dockerfile
from tests.deploy.dockerfile import ROOT, healthcheck_module, requirements_module

HADOLINT = Path(sys.executable).with_name("hadolint")


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.is_file(), f"hadolint not installed next to {sys.executable} (dev extra)"
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_hadolint_passes() -> None:
    result = _hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    # Guard for the test above: the same invocation must fail on an unpinned root image.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\nCMD gunicorn app:app\n")
    result = _hadolint(bad)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged image
    assert "DL3025" in result.stdout  # shell-form CMD


def test_base_image_is_pinned_by_version_tag() -> None:
    image = dockerfile.global_args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", image), image
    names: set[str] = set()
    for stage in dockerfile.stages():
        assert (
            stage.base
            in {"${PYTHON_IMAGE}", "scratch", "models-${MODEL_SOURCE:-committed}"} | names
        ), f"stage {stage.name} starts from {stage.base}"
        if stage.name:
            names.add(stage.name)


def test_model_source_choices_are_stages() -> None:
    default = dockerfile.global_args()["MODEL_SOURCE"]
    names = {stage.name for stage in dockerfile.stages()}
    assert default == "committed"
    assert {"models-committed", "models-build", "models-context", "model-repository"} <= names


def test_committed_models_stage_copies_the_repository_and_trains_nothing() -> None:
    # The default image takes the committed models: its build never installs torch.
    stage = next(s for s in dockerfile.stages() if s.name == "models-committed")
    assert stage.base == "${PYTHON_IMAGE}"
    assert stage.all("COPY") == ["model_repository/ /models/"]
    runs = stage.all("RUN")
    assert all("pip" not in run and "headstart" not in run for run in runs)
    # A checkout without the default models fails here, naming the way out.
    assert any("/models/mnist/pretrained/manifest.json" in run for run in runs)
    assert any("make models" in run and "MODEL_SOURCE=build" in run for run in runs)


def test_models_build_stage_runs_headstart_build() -> None:
    stage = next(s for s in dockerfile.stages() if s.name == "models-build")
    runs = stage.all("RUN")
    assert any("headstart build --model-repository /models ${BUILD_OPTIONS}" in r for r in runs)
    assert 'BUILD_OPTIONS=""' in stage.all("ARG")


def _runtime() -> dockerfile.Stage:
    last = dockerfile.stages()[-1]
    assert last.name == "runtime"
    return last


def test_runtime_stage_has_no_training_dependencies() -> None:
    runtime = _runtime()
    sources = {args.split()[0] for args in runtime.all("COPY") if args.startswith("--from=")}
    assert sources == {"--from=serve-env", "--from=models"}
    serve_env = next(s for s in dockerfile.stages() if s.name == "serve-env")
    runs = serve_env.all("RUN")
    # The service and its PostgreSQL driver, so replicas can share one experiments database.
    assert any("python requirements.py postgres > requirements.txt" in run for run in runs)
    assert all("train" not in run and "torch" not in run for run in runs)
    # The build itself proves torch is absent from the final image.
    assert any('! python -c "import torch"' in run for run in runtime.all("RUN"))


@pytest.mark.parametrize("stage_name", ["train", "serve-env"])
def test_dependencies_install_before_the_source_arrives(stage_name: str) -> None:
    # So that a change to the code reuses the cached dependency layer.
    stage = next(s for s in dockerfile.stages() if s.name == stage_name)
    steps = [(kw, args) for kw, args in stage.instructions if kw in {"RUN", "COPY"}]
    assert "-r requirements.txt" in steps[0][1]
    assert steps[1] == ("COPY", "--from=source /src /src")
    assert "--no-deps ." in steps[2][1]
    assert "pip check" in steps[2][1]


def test_requirements_script_lists_base_and_extras(tmp_path: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = requirements_module().requirements
    base = requirements(ROOT / "pyproject.toml", [])
    assert base == project["dependencies"]
    assert not any(r.startswith("torch") for r in base)
    train = requirements(ROOT / "pyproject.toml", ["train"])
    assert train == base + project["optional-dependencies"]["train"]
    assert any(r.startswith("torch==") for r in train)
    with pytest.raises(SystemExit, match="no extra gpu"):
        requirements(ROOT / "pyproject.toml", ["gpu"])


def test_runtime_runs_gunicorn_as_pid_1_with_the_canonical_command() -> None:
    runtime = _runtime()
    assert not runtime.all("ENTRYPOINT")
    assert dockerfile.exec_form(runtime.last("CMD")) == ["gunicorn", *GUNICORN_ARGS]


def test_runtime_user_is_not_root() -> None:
    user = _runtime().last("USER")
    uid = user.split(":")[0]
    assert uid not in {"root", "0"}
    assert uid.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"


def test_exposed_ports_are_the_settings_defaults() -> None:
    runtime = _runtime()
    default_port = Settings.model_fields["port"].default
    assert runtime.last("EXPOSE") == f"{default_port} {GRPC_PORT}"
    assert runtime.env()["HEADSTART_PORT"] == str(default_port)
    assert "HEADSTART_GRPC_PORT" not in runtime.env()  # gRPC's default follows the port's


def test_environment_names_are_settings_fields() -> None:
    fields = {f"HEADSTART_{name.upper()}" for name in Settings.model_fields}
    env = _runtime().env()
    headstart_vars = {key for key in env if key.startswith("HEADSTART_")}
    assert headstart_vars, "the image sets no HEADSTART_* variable"
    assert headstart_vars <= fields, headstart_vars - fields
    # The repository the image copies in is the one the service reads.
    copies = [args for args in _runtime().all("COPY") if args.startswith("--from=models ")]
    assert copies == [f"--from=models /models {env['HEADSTART_MODEL_REPOSITORY']}"]


def test_healthcheck_probes_readiness_with_the_shipped_script(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = _runtime()
    check = runtime.last("HEALTHCHECK")
    command = dockerfile.exec_form(check[check.index("CMD") + len("CMD") :].strip())
    assert f"deploy/healthcheck.py {command[-1]}" in runtime.all("COPY")
    monkeypatch.setenv("HEADSTART_HOST", runtime.env()["HEADSTART_HOST"])
    monkeypatch.setenv("HEADSTART_PORT", runtime.env()["HEADSTART_PORT"])
    url = healthcheck_module().ready_url()
    assert url == "http://127.0.0.1:8000/health/ready"
    app = create_app(Settings(model_repository=repository))
    assert "/health/ready" in {rule.rule for rule in app.url_map.iter_rules()}


CONTEXT_OUT = [
    "model_repository/mnist-mlp/pretrained/model.onnx",
    "model_repository/other/baseline/manifest.json",
    "model_repository/mnist/.pretrained-k2x9q1/model.onnx",
    "model_repository/mnist/.baseline-old/manifest.json",
    ".venv/bin/python",
    "service/__pycache__/app.cpython-311.pyc",
    "models/nets.pyc",
    ".mypy_cache/3.11/service/app.meta.json",
    ".ruff_cache/CACHEDIR.TAG",
    ".pytest_cache/v/cache/lastfailed",
    "runs/mnist/metrics.json",
    "reports/report.html",
    ".git/HEAD",
    "headstart.egg-info/PKG-INFO",
    "build/lib/service/app.py",
]


@pytest.mark.parametrize("path", CONTEXT_OUT)
def test_dockerignore_keeps_generated_files_out(path: str) -> None:
    assert dockerfile.ignored(path)


@pytest.mark.parametrize(
    "path",
    [
        f"model_repository/mnist/{v}/{f}"
        for v in ("pretrained", "baseline")
        for f in ("model.onnx", "manifest.json")
    ],
)
def test_dockerignore_lets_the_committed_default_models_in(path: str) -> None:
    assert not dockerfile.ignored(path)


def test_dockerignore_keeps_every_file_the_build_copies() -> None:
    copied = []
    for stage in dockerfile.stages():
        for args in stage.all("COPY"):
            if not args.startswith("--from="):
                copied.extend(args.split()[:-1])
    assert "pyproject.toml" in copied
    tracked = subprocess.run(
        ["git", "ls-files", *copied], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert any(path.startswith("service/") for path in tracked)
    for path in tracked:
        assert not dockerfile.ignored(path), f"{path} is copied but left out of the context"


def test_dockerignore_matcher_follows_docker_rules() -> None:
    # Guard for the two tests above: last match wins, parents count, "!" re-includes.
    rules = "*\n!service/\n**/__pycache__\n"
    assert dockerfile.ignored("README.md", rules)
    assert not dockerfile.ignored("service/app.py", rules)
    assert dockerfile.ignored("service/__pycache__/app.pyc", rules)
    assert dockerfile.ignored("services/app.py", rules)
