"""models/artifacts.py: artefact-only inputs (NPR, Haar residual)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifake_lightning.errors import ConfigError
from cifake_lightning.models import ArtifactResidual


def _camera_like(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def test_npr_is_zero_for_nearest_upsampled_images_and_not_for_camera_like_ones():
    npr = ArtifactResidual("npr", factor=2, scale=1.0)
    camera = _camera_like()
    upsampled = F.interpolate(_camera_like(size=16), scale_factor=2, mode="nearest")
    assert npr(upsampled).abs().max() == 0  # every pixel equals its block's top-left neighbour
    assert npr(camera).abs().mean() > 0.2
    # bilinear upsampling leaves a smaller, structured residual than independent pixels
    bilinear = F.interpolate(_camera_like(size=16), scale_factor=2, mode="bilinear", align_corners=False)
    assert npr(bilinear).abs().mean() < 0.5 * npr(camera).abs().mean()
    assert npr(camera).shape == camera.shape


def test_haar_residual_is_the_detail_bands_only():
    haar = ArtifactResidual("haar", factor=2, scale=1.0)
    x = _camera_like()
    r = haar(x)
    # no approximation band left: every 2x2 block of the residual averages to zero
    assert F.avg_pool2d(r, 2).abs().max() < 1e-6
    flat = F.interpolate(_camera_like(size=16), scale_factor=2, mode="nearest")
    assert haar(flat).abs().max() < 1e-6
    assert torch.allclose(ArtifactResidual("haar", scale=4.0)(x), 4 * r)


def test_artifact_residual_rejects_bad_options():
    with pytest.raises(ConfigError, match="preprocess.kind"):
        ArtifactResidual("wavelet")
    with pytest.raises(ConfigError, match="preprocess.factor"):
        ArtifactResidual("npr", factor=1)
