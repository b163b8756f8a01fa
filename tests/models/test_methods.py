from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from models.errors import ConfigError
from models.methods import DEFAULT_METHOD, VALID_METHODS, Method, check_pairing
from models.pretraining import Trainer, trainer

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("arch", "method", "message"),
    [
        (
            "cnn",
            "rbm",
            r"method 'rbm' does not apply to arch 'cnn' \(valid: mlp: rbm, dae, supervised, none; ",
        ),
        (
            "mlp",
            "contrastive",
            "valid: mlp: rbm, dae, supervised, none; cnn: cae, contrastive, vicreg, supervised, none",
        ),
        (
            "mlp",
            "pca",
            "unknown method 'pca' .*rbm, dae, cae, contrastive, vicreg, supervised, none",
        ),
        ("resnet", "none", "unknown architecture 'resnet'"),
    ],
)
def test_invalid_pairings_list_the_valid_ones(arch: str, method: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_pairing(arch, method)


def test_valid_pairs_and_defaults_come_from_the_registry() -> None:
    assert {
        "mlp": (Method.rbm, Method.dae, Method.supervised, Method.none),
        "cnn": (Method.cae, Method.contrastive, Method.vicreg, Method.supervised, Method.none),
    } == VALID_METHODS
    for arch, method in DEFAULT_METHOD.items():
        assert method in VALID_METHODS[arch]


def test_a_method_reads_and_serialises_as_its_name() -> None:
    method = check_pairing("mlp", "dae")
    assert method is Method.dae
    assert method == "dae"
    assert f"{method}" == "dae"
    assert check_pairing("cnn", Method.none) is Method.none


@pytest.mark.parametrize("method", [m for m in Method if m.module is not None])
def test_every_method_module_has_the_one_signature(method: Method) -> None:
    protocol = inspect.signature(Trainer.__call__, eval_str=True)
    expected = protocol.replace(parameters=list(protocol.parameters.values())[1:])  # no self
    assert inspect.signature(trainer(method), eval_str=True) == expected


def test_the_registry_and_the_command_line_import_without_torch() -> None:
    # The runtime image has no torch, yet runs headstart, whose --help lists the methods.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # any "import torch" now raises ImportError
        from scripts.cli import build_parser
        build = build_parser()._subparsers._group_actions[0].choices["build"]
        text = " ".join(build.format_help().split())
        assert "cnn: cae, contrastive, vicreg, supervised, none" in text, text
        assert "{supervised,fixmatch}" in text, text  # the fine-tuning modes' registry too
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
