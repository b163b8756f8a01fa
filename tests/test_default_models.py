"""The committed default models: present, verified, loadable, and trained by today's recipe.

``model_repository/mnist`` is committed so that ``make serve`` answers without torch or
training. These tests fail whenever it is absent or stale — its manifests record another
recipe than the one a plain ``headstart build`` trains now — and say how to bring it back in
step: ``make models``, then commit ``model_repository/mnist``. The comparison is a function
of any repository path (:func:`stale`); the tests at the end hold it to tampered copies of a
tiny repository, so they never depend on the committed models.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from models import defaults
from models.checkpoint import plain_json
from models.experiment import ExperimentConfig, build_recipe
from models.methods import Method
from models.modes import Mode
from scripts.cli import build_parser
from scripts.commands._training import experiment_from_args
from service.manifest import MANIFEST_FILE, ONNX_FILE, VARIANTS
from service.repository import Problem, scan_repository
from service.runtime import ModelStore
from tests.builders import write_repository

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "model_repository"
REBUILD = (
    f"rebuild them with `make models` (headstart build --model-repository model_repository) "
    f"and commit model_repository/{defaults.NAME}"
)

MEASURED_PRETRAINING = frozenset({"seconds", "final_loss", "knn_accuracy"})
"""What a pre-training run measured, recorded beside its settings: not part of the recipe."""
MEASURED_FINE_TUNING = frozenset({"outcome"})
"""What fine-tuning led to (best epoch, drift, the rate it kept): not part of the recipe."""


def default_config() -> ExperimentConfig:
    """What a plain ``headstart build`` trains: the command line's defaults."""
    return experiment_from_args(build_parser().parse_args(["build"]))


def expected_recipe(config: ExperimentConfig, variant: str) -> dict[str, Any]:
    """The recipe parts of the manifest that ``headstart build`` writes for ``variant`` of
    ``config``, in the manifest's own layout (``models/stages.py``, ``export_trained``)."""
    pretrained = variant == "pretrained"
    mode = config.mode if pretrained else Mode.supervised
    fine_tuning: dict[str, Any] = {"mode": str(mode), **dataclasses.asdict(config.finetune)}
    if mode.unlabeled:
        fine_tuning["semi"] = dataclasses.asdict(config.semi)
    settings: dict[str, Any] = {}
    if pretrained:
        settings = {
            **dataclasses.asdict(config.pretrain),
            "dataset": config.pretrain_dataset or config.dataset,
            "own_pool": config.pretrain_dataset is None,
        }
    recipe = {
        "architecture": {"kind": config.arch, "settings": dataclasses.asdict(config.arch_config)},
        "pretraining": {
            "method": str(config.method if pretrained else Method.none),
            "settings": settings,
        },
        "training": {
            "dataset": config.dataset,
            "labels_per_class": config.labels_per_class,
            "split_seed": config.split.split_seed,
            "seed": config.seed,
            "fine_tuning": fine_tuning,
        },
    }
    return plain_json(recipe)  # type: ignore[no-any-return]


def _differences(expected: Any, recorded: Any, where: str) -> list[str]:
    """Every path under ``where`` whose recorded value is not the expected one.

    Keys the manifest records beyond the expected ones are left alone: the measured ones, and
    any a newer exporter adds, which the recipe cannot judge.
    """
    if isinstance(expected, dict) and isinstance(recorded, dict):
        lines = []
        for key, value in expected.items():
            path = f"{where}.{key}"
            if key not in recorded:
                lines.append(f"{path} is not recorded; the recipe has {value!r}")
            else:
                lines.extend(_differences(value, recorded[key], path))
        return lines
    if expected != recorded:
        return [f"{where} is {recorded!r}; the recipe has {expected!r}"]
    return []


def _recorded_recipe(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` without what training measured."""
    recorded = json.loads(json.dumps(manifest))
    settings = recorded.get("pretraining", {}).get("settings", {})
    for key in MEASURED_PRETRAINING:
        settings.pop(key, None)
    fine_tuning = recorded.get("training", {}).get("fine_tuning", {})
    for key in MEASURED_FINE_TUNING:
        fine_tuning.pop(key, None)
    return recorded  # type: ignore[no-any-return]


def _concerning(problems: list[Problem], repository: Path, name: str) -> list[str]:
    """The problems of ``repository`` as a whole and of model ``name``, one line each."""
    model_dir = repository / name
    return [
        str(problem)
        for problem in problems
        if problem.path in (repository, model_dir) or model_dir in problem.path.parents
    ]


def stale(repository: Path, config: ExperimentConfig, name: str = defaults.NAME) -> list[str]:
    """Why ``repository/name`` is not what ``headstart build`` exports for ``config``: one line
    per problem (a missing or unverified file, a recipe setting that differs); empty when the
    two variants are present, verified and trained by ``config``'s recipe."""
    listing = scan_repository(repository)
    model_dir = repository / name
    lines = _concerning(listing.problems, repository, name)
    if not model_dir.is_dir() and not lines:
        lines.append(f"{model_dir}: missing")
    for variant, entry in sorted(listing.models().get(name, {}).items()):
        manifest = json.loads((entry.directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        lines.extend(
            _differences(
                expected_recipe(config, variant),
                _recorded_recipe(manifest),
                f"{name}/{variant}",
            )
        )
    return lines


def _stale_message(lines: list[str]) -> str:
    listed = "\n  ".join(lines)
    return (
        f"the committed default models in model_repository/{defaults.NAME} are missing or not "
        f"what a plain `headstart build` trains now; {REBUILD}:\n  {listed}"
    )


# The committed models. These fail, on purpose, until model_repository/mnist is committed.


def test_the_command_line_default_is_the_default_config_with_the_build_recipe() -> None:
    assert default_config() == build_recipe(ExperimentConfig())


def test_committed_default_models_follow_the_default_recipe() -> None:
    lines = stale(COMMITTED, default_config())
    assert not lines, _stale_message(lines)


def test_committed_default_models_load_in_the_service() -> None:
    store = ModelStore.load(COMMITTED)
    loaded = store.models.get(defaults.NAME, {})
    unavailable = _concerning(store.problems, COMMITTED, defaults.NAME)
    assert not unavailable, _stale_message(unavailable)
    assert sorted(loaded) == sorted(VARIANTS), _stale_message(
        [f"loaded variants: {sorted(loaded)}"]
    )


# The comparison itself, on a tiny repository made to carry the default recipe.


@pytest.fixture
def in_step(tmp_path: Path) -> Path:
    """A repository whose two tiny variants record exactly the default recipe."""
    root = write_repository(tmp_path / "repo", (defaults.NAME,))
    for variant in VARIANTS:
        path = root / defaults.NAME / variant / MANIFEST_FILE
        manifest = json.loads(path.read_text())
        recipe = expected_recipe(default_config(), variant)
        manifest["architecture"] = recipe["architecture"]
        manifest["pretraining"] = recipe["pretraining"]
        manifest["training"].update(recipe["training"])
        path.write_text(json.dumps(manifest, indent=2))
    return root


def _edit(root: Path, variant: str, *keys: str, value: Any) -> None:
    path = root / defaults.NAME / variant / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    node = manifest
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    path.write_text(json.dumps(manifest, indent=2))


def test_a_repository_with_the_default_recipe_is_in_step(in_step: Path) -> None:
    assert stale(in_step, default_config()) == []


def test_what_training_measured_is_not_part_of_the_recipe(in_step: Path) -> None:
    settings = ("pretraining", "settings")
    _edit(in_step, "pretrained", *settings, "seconds", value=812.5)
    _edit(in_step, "pretrained", *settings, "final_loss", value={"contrastive": 4.2})
    _edit(in_step, "pretrained", *settings, "knn_accuracy", value=[0.8, 0.9])
    _edit(in_step, "baseline", "training", "fine_tuning", "outcome", value={"best_epoch": 7})
    _edit(in_step, "baseline", "headstart_version", value="0.0.1")
    assert stale(in_step, default_config()) == []


@pytest.mark.parametrize(
    ("variant", "keys", "value", "named"),
    [
        (
            "pretrained",
            ("pretraining", "settings", "temperature"),
            0.2,
            "mnist/pretrained.pretraining.settings.temperature is 0.2; the recipe has 0.5",
        ),
        ("pretrained", ("pretraining", "method"), "cae", "mnist/pretrained.pretraining.method"),
        (
            "pretrained",
            ("training", "fine_tuning", "semi", "threshold"),
            0.9,
            "mnist/pretrained.training.fine_tuning.semi.threshold",
        ),
        (
            "pretrained",
            ("training", "fine_tuning", "mode"),
            "supervised",
            "mnist/pretrained.training.fine_tuning.mode",
        ),
        (
            "baseline",
            ("training", "fine_tuning", "lr_choices"),
            [0.001],
            "mnist/baseline.training.fine_tuning.lr_choices",
        ),
        (
            "baseline",
            ("training", "labels_per_class"),
            20,
            "mnist/baseline.training.labels_per_class",
        ),
        ("baseline", ("training", "seed"), 1, "mnist/baseline.training.seed"),
        ("baseline", ("training", "split_seed"), 3, "mnist/baseline.training.split_seed"),
        ("baseline", ("training", "dataset"), "digits", "mnist/baseline.training.dataset"),
        (
            "baseline",
            ("architecture", "settings", "dense"),
            64,
            "mnist/baseline.architecture.settings.dense",
        ),
    ],
)
def test_a_changed_recipe_setting_is_stale_and_named(
    in_step: Path, variant: str, keys: tuple[str, ...], value: Any, named: str
) -> None:
    _edit(in_step, variant, *keys, value=value)
    lines = stale(in_step, default_config())
    assert len(lines) == 1, lines
    assert lines[0].startswith(named), lines


def test_a_setting_the_manifest_lacks_is_stale(in_step: Path) -> None:
    path = in_step / defaults.NAME / "pretrained" / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    del manifest["training"]["fine_tuning"]["semi"]["ema"]
    path.write_text(json.dumps(manifest))
    assert stale(in_step, default_config()) == [
        "mnist/pretrained.training.fine_tuning.semi.ema is not recorded; the recipe has 0.99"
    ]


def test_a_real_quick_build_records_the_quick_recipe(quick_repository: Path) -> None:
    # Holds expected_recipe to the exporter: a build's manifests carry its recipe as read here.
    assert stale(quick_repository, default_config().quick()) == []
    lines = stale(quick_repository, default_config())
    assert "mnist/pretrained.pretraining.settings.epochs is 1; the recipe has 30" in lines


def test_a_quick_build_is_stale_against_the_default_recipe(in_step: Path) -> None:
    # The other way round: the repository holds the default recipe, the code asks for the
    # quick one, as if a smoke build had been committed.
    lines = stale(in_step, default_config().quick())
    assert "mnist/pretrained.pretraining.settings.epochs is 30; the recipe has 1" in lines
    assert any(line.startswith("mnist/baseline.training.fine_tuning.max_epochs") for line in lines)


def test_a_graph_that_does_not_match_its_hash_is_stale(in_step: Path) -> None:
    onnx_path = in_step / defaults.NAME / "baseline" / ONNX_FILE
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    (line,) = stale(in_step, default_config())
    assert line.startswith(f"{onnx_path}: sha256 ")
    assert "does not match the manifest's" in line


def test_a_missing_variant_or_repository_is_stale(in_step: Path, tmp_path: Path) -> None:
    shutil.rmtree(in_step / defaults.NAME / "baseline")
    assert stale(in_step, default_config()) == [
        f"{in_step / defaults.NAME / 'baseline'}: variant 'baseline' is missing"
    ]
    assert stale(tmp_path / "nowhere", default_config()) == [
        f"{tmp_path / 'nowhere'}: model repository does not exist"
    ]
    (tmp_path / "empty").mkdir()
    assert stale(tmp_path / "empty", default_config()) == [
        f"{tmp_path / 'empty' / 'mnist'}: missing"
    ]


def test_the_failure_names_the_rebuild_command() -> None:
    message = _stale_message(["mnist/pretrained.pretraining.settings.epochs is 1; ..."])
    assert "make models" in message
    assert "commit model_repository/mnist" in message
