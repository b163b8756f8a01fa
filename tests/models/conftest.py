from __future__ import annotations

import pytest
import torch

from models.data import ImageSet, SplitConfig, make_splits
from models.experiment import Prepared
from tests.models.helpers import tiny_digits


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Keep torch's global RNG from leaking between tests."""
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits300() -> ImageSet:
    """300 real 8x8 digits, 30 per class."""
    return tiny_digits(30)


@pytest.fixture(scope="session")
def prepared(digits300: ImageSet) -> Prepared:
    return Prepared(data=digits300, splits=make_splits(digits300, SplitConfig(split_seed=0)))
