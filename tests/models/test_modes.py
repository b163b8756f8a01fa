from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from models.errors import ConfigError
from models.modes import DEFAULT_MODE, Mode, SemiConfig, check_mode
from models.tuning import Tuner, tuner

ROOT = Path(__file__).resolve().parents[2]


def test_an_unknown_mode_lists_the_registered_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown fine-tuning mode 'mixmatch' .*supervised, fixmatch"
    ):
        check_mode("mixmatch")


def test_a_mode_reads_and_serialises_as_its_name() -> None:
    assert check_mode("fixmatch") is Mode.fixmatch
    assert f"{Mode.supervised}" == "supervised"
    assert DEFAULT_MODE.unlabeled  # the default pretrained variant learns from the pool too
    assert not Mode.supervised.unlabeled  # the baseline's mode uses the labels alone


@pytest.mark.parametrize("mode", list(Mode))
def test_every_mode_module_has_the_one_signature(mode: Mode) -> None:
    protocol = inspect.signature(Tuner.__call__, eval_str=True)
    expected = protocol.replace(parameters=list(protocol.parameters.values())[1:])  # no self
    found = inspect.signature(tuner(mode), eval_str=True)
    assert (
        found.replace(
            parameters=[
                p.replace(default=inspect.Parameter.empty) for p in found.parameters.values()
            ]
        )
        == expected
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ratio": 0}, "ratio must be >= 1"),
        ({"threshold": 1.5}, r"threshold must lie in \(0, 1\]"),
        ({"ema": 1.0}, r"decay must lie in \[0, 1\)"),
    ],
)
def test_a_bad_semi_supervised_setting_is_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SemiConfig(**changes)  # type: ignore[arg-type]
