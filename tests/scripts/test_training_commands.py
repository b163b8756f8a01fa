"""build, pretrain, finetune, evaluate and export on 300 real digits with tiny networks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from scripts.cli import main
from service.repository import load_variant, scan_repository
from tests.models.helpers import tiny_digits, write_idx, write_image_folder

TINY_MLP = ["--arch", "mlp", "--hidden", "32,16"]
TINY_CNN = ["--arch", "cnn", "--channels", "4,8", "--dense", "16"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("digits-idx")
    write_idx(folder, tiny_digits(30))
    return f"idx:{folder}"


def quick_pretrain(dataset: str, method: str, out: Path) -> None:
    """``headstart pretrain --quick`` of the tiny MLP; it must succeed."""
    code = main(
        [
            "pretrain",
            "--quick",
            "--dataset",
            dataset,
            *TINY_MLP,
            "--method",
            method,
            "--out",
            str(out),
        ]
    )
    assert code == 0


def test_build_pre_trains_on_a_source_task_of_other_classes(
    tmp_path: Path, dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's transfer build, on the tests' digits: 0-4 as the source task for 5-9."""
    repo = tmp_path / "repo"
    args = ["build", "--quick", *TINY_CNN, "--method", "supervised", "--name", "upper"]
    args += ["--dataset", f"{dataset}:5-9", "--pretrain-dataset", f"{dataset}:0-4"]
    assert main([*args, "--labels-per-class", "3", "--model-repository", str(repo)]) == 0
    assert "pretrained  supervised  3" in capsys.readouterr().out
    manifests = {e.variant: e.manifest for e in scan_repository(repo).entries}
    pretrained = manifests["pretrained"]
    assert pretrained.class_names == ["5", "6", "7", "8", "9"]
    assert pretrained.training.dataset == f"{dataset}:5-9"
    assert pretrained.pretraining.settings["dataset"] == f"{dataset}:0-4"
    # Every image of digits 0-4 in pre-training, and the target's own pool (the 5-9 images
    # that are neither test nor validation) in semi-supervised fine-tuning.
    assert pretrained.training.fine_tuning["mode"] == "fixmatch"
    assert pretrained.training.num_unlabeled == 150 + 105
    assert manifests["baseline"].pretraining.method == "none"
    code = main(["pretrain", "--quick", *TINY_CNN, "--method", "supervised", "--dataset",
                 dataset, "--out", str(tmp_path / "start.safetensors")])  # fmt: skip
    assert code == 1
    assert "give the source with --pretrain-dataset" in capsys.readouterr().err


def test_build_quick_exports_both_variants_and_prints_the_summary(
    tmp_path: Path, dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    args = ["build", "--quick", "--dataset", dataset, *TINY_CNN, "--method", "contrastive"]
    code = main(
        [*args, "--labels-per-class", "3", "--name", "digits", "--model-repository", str(repo)]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("VARIANT"))
    assert lines[header].split() == [
        "VARIANT",
        "METHOD",
        "LABELS/CLASS",
        "TEST",
        "ACC",
        "TEST",
        "NLL",
    ]
    assert lines[header + 1].split()[:3] == ["pretrained", "contrastive", "3"]
    assert lines[header + 2].split()[:3] == ["baseline", "none", "3"]
    listing = scan_repository(repo)
    assert listing.problems == []
    manifests = {e.variant: e.manifest for e in listing.entries}
    assert manifests["pretrained"].pretraining.method == "contrastive"
    assert manifests["pretrained"].training.dataset == dataset
    recipes = {v: dict(m.training.fine_tuning) for v, m in manifests.items()}
    outcomes = {v: r.pop("outcome") for v, r in recipes.items()}
    # The pretrained variant learns from the pool too; the supervised recipe is the same.
    assert recipes["pretrained"].pop("mode") == "fixmatch"
    assert recipes["baseline"].pop("mode") == "supervised"
    assert recipes["pretrained"].pop("semi")["ratio"] >= 1
    assert recipes["pretrained"] == recipes["baseline"]
    assert set(outcomes["pretrained"]["drift"]) == {"convs.0", "convs.1", "dense", "head"}
    accuracy = float(lines[header + 1].split()[3])
    assert manifests["pretrained"].test_metrics.accuracy == pytest.approx(accuracy, abs=1e-4)

    # A second build with --if-missing finds both variants and trains nothing.
    before = (repo / "digits" / "pretrained" / "model.onnx").stat().st_mtime_ns
    assert main(["build", "--if-missing", "--name", "digits", "--model-repository", str(repo)]) == 0
    assert "already holds both variants" in capsys.readouterr().out
    assert (repo / "digits" / "pretrained" / "model.onnx").stat().st_mtime_ns == before


def test_build_with_two_processes_writes_what_one_process_writes(
    tmp_path: Path, dataset: str
) -> None:
    """``--nproc 2`` goes through torch's launcher (gloo on 127.0.0.1) to the same models."""
    args = ["build", "--quick", "--dataset", dataset, "--device", "cpu", "--hidden", "16,16"]
    manifests = {}
    for nproc in (1, 2):
        repo = tmp_path / f"repo{nproc}"
        assert main([*args, "--nproc", str(nproc), "--model-repository", str(repo)]) == 0
        listing = scan_repository(repo)
        assert listing.problems == []
        manifests[nproc] = {e.variant: e.manifest for e in listing.entries}
    assert set(manifests[2]) == set(manifests[1]) == {"pretrained", "baseline"}
    for variant, one in manifests[1].items():
        two = manifests[2][variant]
        assert two.test_metrics.accuracy == one.test_metrics.accuracy
        assert two.test_metrics.nll == pytest.approx(one.test_metrics.nll, abs=1e-4)
        assert two.test_metrics.confusion_matrix == one.test_metrics.confusion_matrix
        assert two.pretraining.method == one.pretraining.method


def test_a_failing_worker_is_one_line_and_a_failed_build(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    args = ["build", "--quick", "--nproc", "2", "--dataset", f"idx:{missing}"]
    assert main([*args, "--model-repository", str(tmp_path / "repo")]) == 1
    err = capfd.readouterr().err
    # The first rank to fail says why; the launcher may stop the other before it does.
    assert f"headstart: error: {missing}: IDX folder does not exist" in err
    assert re.search(
        r"headstart: error: training process rank [01] of 2 failed with exit code 1", err
    )
    assert "Traceback" not in err
    assert not (tmp_path / "repo").exists()


def test_if_missing_builds_when_a_variant_is_absent(
    tmp_path: Path, dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    common = ["--quick", "--dataset", dataset, *TINY_MLP, "--model-repository", str(repo)]
    assert main(["build", *common, "--method", "dae", "--labels-per-class", "2"]) == 0
    import shutil

    shutil.rmtree(repo / "mnist" / "baseline")
    capsys.readouterr()
    assert main(["build", "--if-missing", *common, "--labels-per-class", "2"]) == 0
    assert "built mnist" in capsys.readouterr().out
    assert {e.variant for e in scan_repository(repo).entries} == {"pretrained", "baseline"}


@pytest.mark.parametrize("method", ["rbm", "none"])
def test_steps_chain_through_checkpoints(
    tmp_path: Path, dataset: str, method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    start, tuned, repo = (
        tmp_path / "start.safetensors",
        tmp_path / "tuned.safetensors",
        tmp_path / "repo",
    )
    quick_pretrain(dataset, method, start)
    assert (
        main(
            [
                "finetune",
                "--checkpoint",
                str(start),
                "--labels-per-class",
                "4",
                "--quick",
                "--out",
                str(tuned),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tuned), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_examples"] == 60
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(tuned),
                "--name",
                "steps",
                "--model-repository",
                str(repo),
            ]
        )
        == 0
    )
    variant = "baseline" if method == "none" else "pretrained"
    entry = load_variant(repo / "steps" / variant, model="steps", variant=variant)
    assert entry.manifest.pretraining.method == method
    assert entry.manifest.training.labels_per_class == 4
    assert entry.manifest.test_metrics.accuracy == pytest.approx(metrics["accuracy"])
    assert main(["evaluate", "--checkpoint", str(tuned)]) == 0
    assert "per-class accuracy (60 test images)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def one_class_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("one-class")
    data = tiny_digits(2)
    write_image_folder(root, data)
    for extra in sorted(p for p in root.iterdir() if p.name != "0"):
        for f in extra.iterdir():
            f.unlink()
        extra.rmdir()
    return f"folder:{root}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build", "--dataset", "cifar10"], "unknown dataset 'cifar10' (expected one of: mnist-5k"),
        (["build", "--method", "pca"], "unknown method 'pca'"),
        (
            ["build", "--arch", "cnn", "--method", "rbm"],
            (
                "method 'rbm' does not apply to arch 'cnn' (valid: mlp: rbm, dae, supervised, "
                "none; cnn: cae, contrastive, vicreg, supervised, none)"
            ),
        ),
        (["build", "--name", "my-model"], "--name 'my-model' is not a valid model name"),
        (["build", "--seed", "-1"], "seed must be a non-negative integer, got -1"),
        (["build", "--split-seed", "-2"], "split seed must be a non-negative integer, got -2"),
        (["build", "--labels-per-class", "0"], "labels per class must be at least 1, got 0"),
        (
            ["build", "--dataset", "idx:/headstart-absent-idx"],
            "/headstart-absent-idx: IDX folder does not exist",
        ),
        (
            [
                "pretrain",
                "--dataset",
                "digits",
                "--arch",
                "cnn",
                "--channels",
                "4,4,4,4",
                "--out",
                "x",
            ],
            "4 pooling blocks do not fit 8x8",
        ),
        (
            ["finetune", "--checkpoint", "/nonexistent.safetensors", "--out", "x"],
            "/nonexistent.safetensors: checkpoint does not exist",
        ),
    ],
)
def test_bad_input_is_one_clear_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main([*args, "--model-repository", str(tmp_path)] if args[0] == "build" else args) == 1
    err = capsys.readouterr().err
    assert err.startswith("headstart: error: ")
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_too_many_labels_and_one_class_are_clear(
    dataset: str, one_class_folder: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    common = ["build", "--quick", *TINY_MLP, "--model-repository", str(tmp_path)]
    assert main([*common, "--dataset", dataset, "--labels-per-class", "50"]) == 1
    assert (
        "--labels-per-class 50 is larger than the unlabeled pool of class '0' (21 images)"
        in capsys.readouterr().err
    )
    assert main([*common, "--dataset", one_class_folder]) == 1
    assert (
        "needs one sub-folder per class and at least 2 classes, found 1" in capsys.readouterr().err
    )


def test_corrupt_idx_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, _ = write_idx(tmp_path / "idx", tiny_digits(5))
    images.write_bytes(b"\x1f\x8b\x08 truncated gzip")
    assert (
        main(["pretrain", "--dataset", f"idx:{tmp_path / 'idx'}", "--out", str(tmp_path / "x")])
        == 1
    )
    assert f"headstart: error: {images}: cannot be read" in capsys.readouterr().err


def test_finetune_refuses_a_finetuned_checkpoint(
    tmp_path: Path, dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    start = tmp_path / "s.safetensors"
    quick_pretrain(dataset, "none", start)
    assert main(["export", "--checkpoint", str(start), "--model-repository", str(tmp_path)]) == 1
    assert (
        "is a 'pretrained' checkpoint, this step needs a 'finetuned' one" in capsys.readouterr().err
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu_is_clear(
    dataset: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert (
        main(["pretrain", "--dataset", dataset, "--device", "cuda", "--out", str(tmp_path / "x")])
        == 1
    )
    assert "torch sees no CUDA GPU" in capsys.readouterr().err


def test_a_quick_build_never_lands_on_the_default_repository_unasked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEADSTART_MODEL_REPOSITORY", raising=False)
    assert main(["build", "--quick"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("headstart: error: --quick builds models far from trained: give ")
    assert err.count("\n") == 1


def test_training_without_the_train_extra_says_how_to_install_it() -> None:
    from scripts.commands._training import guarded
    from scripts.errors import CommandError

    def needs_torch(_: object) -> int:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    with pytest.raises(CommandError, match=r"training needs torch, which this environment lacks"):
        guarded(needs_torch)(None)  # type: ignore[arg-type]


def test_a_repository_that_cannot_take_the_next_version_is_said_before_training(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stray = tmp_path / "mnist" / "pretrained" / "notes.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("mine")
    assert main(["build", "--quick", "--model-repository", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("headstart: error: ")
    assert "holds no model and no numbered version, but other files" in captured.err
    assert captured.out == ""  # no plan, no training: nothing was started
    assert stray.read_text() == "mine"
