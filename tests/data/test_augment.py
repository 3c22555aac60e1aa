"""data/augment.py: artefact-preserving augmentations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifake_lightning.data.augment import AugmentConfig, RandomPatchMask, RandomRot90, build_augmentation
from cifake_lightning.errors import ConfigError


def _camera_like(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def test_rot90_moves_pixels_only_and_patch_mask_zeroes_cells():
    x = _camera_like(n=64)
    torch.manual_seed(0)
    r = RandomRot90(1.0)(x)
    assert not torch.equal(r, x)
    assert torch.equal(r.flatten(1).sort(1).values, x.flatten(1).sort(1).values)  # same pixels per image
    m = RandomPatchMask(1.0, ratio=0.25, patch=4)(x + 0.01)
    zero = (m == 0).all(1).float()  # (B, H, W) masked pixels
    cells = F.avg_pool2d(zero[:, None], 4)
    assert set(cells.unique().tolist()) <= {0.0, 1.0}  # whole cells
    assert 0.15 < float(cells.mean()) < 0.35
    assert torch.equal(RandomPatchMask(0.0)(x), x)
    aug = build_augmentation(AugmentConfig(hflip=0.0, rot90=0.5, patch_mask=0.5))
    assert aug is not None and aug(x).shape == x.shape
    with pytest.raises(ConfigError, match="mask_ratio"):
        AugmentConfig(patch_mask=0.5, mask_ratio=1.5)


def test_real_blur_touches_real_images_only():
    from cifake_lightning.data.augment import blur_reals

    x = _camera_like(n=32)
    label = torch.arange(32) % 2
    out = blur_reals(x, label, p=1.0, sigma=(1.0, 1.0))
    assert torch.equal(out[label == 1], x[label == 1])  # fakes keep their traces
    assert (out[label == 0] - x[label == 0]).abs().mean() > 0.05  # every real blurred
    # blur smooths: neighbouring-pixel differences shrink
    diff = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert diff(out[label == 0]) < 0.6 * diff(x[label == 0])
    assert torch.equal(blur_reals(x, label, p=0.0, sigma=(1.0, 1.0)), x)
