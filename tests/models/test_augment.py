from __future__ import annotations

import torch

from models.augment import random_contrast, random_stroke_width


def _stroke() -> torch.Tensor:
    image = torch.zeros(1, 1, 12, 12)
    image[0, 0, 2:10, 5:7] = 1.0  # a vertical bar, two pixels wide
    return image


def test_stroke_width_thickens_some_images_and_thins_others() -> None:
    images = _stroke().repeat(64, 1, 1, 1)
    out = random_stroke_width(images, torch.Generator().manual_seed(0), p=1.0)
    ink = out.sum(dim=(1, 2, 3))
    before = images[0].sum()
    assert (ink > before + 1).any()
    assert (ink < before - 1).any()
    assert out.min() >= 0
    assert out.max() <= 1


def test_stroke_width_with_p_zero_changes_nothing() -> None:
    images = _stroke().repeat(4, 1, 1, 1)
    assert torch.equal(random_stroke_width(images, torch.Generator(), p=0.0), images)


def test_contrast_ramps_darken_within_bounds() -> None:
    images = torch.ones(32, 1, 8, 8)
    out = random_contrast(images, torch.Generator().manual_seed(0), low=0.6)
    assert out.min() >= 0.6 - 1e-6
    assert out.max() <= 1 + 1e-6
    # A ramp: intensities vary inside one image, not only between images.
    assert (out.amax(dim=(2, 3)) - out.amin(dim=(2, 3)) > 0.05).any()
    assert torch.equal(random_contrast(images, torch.Generator(), low=1.0), images)
