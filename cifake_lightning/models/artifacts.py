"""Artefact-only inputs: preprocessing that removes image content and keeps a generator's local traces.

Both are `preprocess` modules of ImageClassifier (applied to [0, 1] images before normalisation, so
any backbone can take them, and attributions see them):

* ``ArtifactResidual(kind="npr")``: NPR, the neighbouring-pixel residual of Tan et al., "Rethinking the
  Up-Sampling Operations in CNN-based Generative Network for Generalizable Deepfake Detection", CVPR
  2024: x - up(down(x)) with nearest-neighbour down- and up-sampling by `factor`, i.e. every pixel
  minus the top-left pixel of its factor x factor block. An image made by nearest/transposed-conv
  upsampling has correlated neighbours inside each block, so its residual differs from a camera's.
* ``ArtifactResidual(kind="haar")``: the high-frequency wavelet bands of SAFE (Li et al., "Improving
  Synthetic Image Detection Towards Generalization: An Image Transformation Perspective", KDD 2025),
  here as the image rebuilt from the level-1 Haar detail bands (LH, HL, HH) with the approximation
  band removed: x minus the mean of its 2x2 block, upsampled back (same size, same channels).

`scale` multiplies the residual (it is small: a few grey levels) so that the backbone's first layer
sees values of order one; use it with ``normalize: none``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, check_choice

KINDS = ("npr", "haar")


class ArtifactResidual(nn.Module):
    """x -> scale * (x - up(down(x))), down = nearest (npr) or block mean (haar), up = nearest.

    Args:
        kind: npr | haar (see module docstring).
        factor: block size (2 as in both papers); image sides are cropped to a multiple of it.
        scale: gain applied to the residual.
    """

    def __init__(self, kind: str = "npr", factor: int = 2, scale: float = 4.0) -> None:
        super().__init__()
        check_choice("preprocess.kind", kind, KINDS)
        if factor < 2:
            raise ConfigError("preprocess.factor", f"must be >= 2, got {factor}")
        self.kind, self.factor, self.scale = kind, factor, float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.factor
        h, w = x.shape[-2] // f * f, x.shape[-1] // f * f
        if h != x.shape[-2] or w != x.shape[-1]:  # only then: a static graph for exports
            x = x[..., :h, :w]
        low = x[..., ::f, ::f] if self.kind == "npr" else F.avg_pool2d(x, f)
        return (x - F.interpolate(low, scale_factor=f, mode="nearest")) * self.scale

    def extra_repr(self) -> str:
        return f"kind={self.kind}, factor={self.factor}, scale={self.scale}"
